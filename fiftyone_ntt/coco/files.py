"""COCO files: reading and validating annotation and result files, writing JSON, and the
image files their records name.

Errors name the file and the key (:class:`CocoFormatError`); image records whose
width/height are missing or 0 are repaired from the image files (a crash users of the
research code reported, docs/method.md §11.3). Nothing here imports FiftyOne.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fiftyone_ntt.files import atomic_write

_GT_KEYS = ("images", "annotations", "categories")


class CocoFormatError(ValueError):
    """A COCO file or record is malformed; the message names the file, the record and the key."""


# ------------------------------------------------------------------------------------------
# reading and writing files


def _read_json(path: str | os.PathLike, what: str) -> Any:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist; check the path")
    if path.is_dir():
        raise CocoFormatError(f"{what} {str(path)!r} is a folder; give the .json file inside it")
    try:
        with path.open("rb") as f:
            return json.load(f)
    except json.JSONDecodeError as error:
        raise CocoFormatError(
            f"{what} {str(path)!r} is not valid JSON ({error.msg} at line {error.lineno}, "
            f"column {error.colno}); fix or regenerate the file"
        ) from None
    except UnicodeDecodeError:
        raise CocoFormatError(
            f"{what} {str(path)!r} is not a UTF-8 text file; give a COCO .json file"
        ) from None


def validate_coco(
    coco: Any, *, source: str = "annotation dict", require: Sequence[str] = _GT_KEYS
) -> dict[str, Any]:
    """Check the structure pycocotools and this library rely on.

    Args:
        coco: the parsed JSON.
        source: how to name it in error messages (usually the path).
        require: top-level keys that must be present (lists).

    Returns:
        ``coco`` itself.

    Raises:
        CocoFormatError: the first problem found, naming the key and record index.
    """
    if not isinstance(coco, dict):
        hint = " (this looks like a results file)" if isinstance(coco, list) else ""
        raise CocoFormatError(
            f"{source} must be a JSON object with keys {list(require)}, got "
            f"{type(coco).__name__}{hint}; give a COCO annotation file"
        )
    for key in require:
        if key not in coco:
            raise CocoFormatError(
                f"{source} has no {key!r} key (it has {sorted(coco)}); a COCO annotation file "
                f"needs {list(require)}"
            )
    for key in ("images", "annotations", "categories"):
        if key in coco and not isinstance(coco[key], list):
            raise CocoFormatError(
                f"{source}: {key!r} must be a list, got {type(coco[key]).__name__}"
            )
    record_keys = {
        "images": ("id",),
        "annotations": ("id", "image_id", "category_id", "bbox"),
        "categories": ("id", "name"),
    }
    for key, needed in record_keys.items():
        for i, record in enumerate(coco.get(key, ())):
            if not isinstance(record, dict):
                raise CocoFormatError(f"{source}: {key}[{i}] is not a JSON object")
            for field in needed:
                if field not in record:
                    raise CocoFormatError(
                        f"{source}: {key}[{i}] has no {field!r} key; every {key[:-1]} record "
                        f"needs {list(needed)}"
                    )
    _check_unique_ids(coco, source)
    for i, ann in enumerate(coco.get("annotations", ())):
        bbox = ann["bbox"]
        if (
            not isinstance(bbox, (list, tuple))
            or len(bbox) != 4
            or not all(isinstance(v, (int, float)) for v in bbox)
        ):
            raise CocoFormatError(
                f"{source}: annotations[{i}] (id {ann['id']!r}) has bbox {bbox!r}; it must "
                "be [x, y, width, height] in pixels"
            )
    return coco


def _check_unique_ids(coco: Mapping[str, Any], source: str) -> None:
    """Refuse records of ``images``, ``annotations`` or ``categories`` that share an id.

    Two image records with one id make references embedded from the wrong image and targets
    written twice; two annotations or categories with one id make one of them vanish from
    every index pycocotools and this library build (issue 19.5).
    """
    for key, what in (
        ("images", "image"),
        ("annotations", "annotation"),
        ("categories", "category"),
    ):
        counts: dict[Any, int] = {}
        for record in coco.get(key, ()):
            value = record["id"]
            value = value if isinstance(value, (int, str)) else repr(value)
            counts[value] = counts.get(value, 0) + 1
        repeated = sorted(
            (v for v, n in counts.items() if n > 1), key=lambda v: (type(v) is str, v)
        )
        if repeated:
            total = sum(counts[v] for v in repeated)
            raise CocoFormatError(
                f"{source}: {what} id(s) {repeated[:10]}{' ...' if len(repeated) > 10 else ''} "
                f"appear more than once in {key!r} ({total} records for {len(repeated)} ids); "
                f"each {what} record needs its own id: remove the duplicate records or give "
                "them new ids"
            )


def load_coco(
    path: str | os.PathLike,
    *,
    image_dir: str | os.PathLike | None = None,
    require: Sequence[str] = _GT_KEYS,
) -> dict[str, Any]:
    """Read and check a COCO annotation file.

    Args:
        path: the ``.json`` file.
        image_dir: the image folder; when given, image records with a missing or 0
            width/height are repaired from the files (:func:`repair_image_sizes`).
        require: top-level keys that must exist (a targets file may need only
            ``("images",)``).

    Raises:
        FileNotFoundError: no such file.
        CocoFormatError: invalid JSON or a missing key (named with the path).
    """
    coco = validate_coco(_read_json(path, "annotation file"), source=str(path), require=require)
    if image_dir is not None:
        repair_image_sizes(coco, image_dir)
    return coco


def load_results(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a COCO results file (a JSON list of detections) and check each entry.

    Raises:
        FileNotFoundError: no such file.
        CocoFormatError: not a list, or an entry without ``image_id``, ``category_id``,
            ``score`` or any of ``bbox``/``segmentation``.
    """
    results = _read_json(path, "results file")
    return validate_results(results, str(path))


def validate_results(results: Any, source: str) -> list[dict[str, Any]]:
    if not isinstance(results, list):
        raise CocoFormatError(
            f"{source} must be a JSON list of detections (COCO results format), got "
            f"{type(results).__name__}"
        )
    for i, det in enumerate(results):
        if not isinstance(det, dict):
            raise CocoFormatError(f"{source}: entry [{i}] is not a JSON object")
        for key in ("image_id", "category_id", "score"):
            if key not in det:
                raise CocoFormatError(
                    f"{source}: entry [{i}] has no {key!r} key; COCO results need image_id, "
                    "category_id, score and bbox and/or segmentation"
                )
        if "bbox" not in det and "segmentation" not in det:
            raise CocoFormatError(f"{source}: entry [{i}] has neither 'bbox' nor 'segmentation'")
    return results


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = None) -> Path:
    """Write JSON atomically (:func:`fiftyone_ntt.files.atomic_write`): a temporary file in
    the same folder, then a rename.

    A reader never sees a half-written file, and an interrupted write leaves the previous file
    intact. Missing parent folders are created. The file gets the permissions ``open()`` would
    give it (``0o666 & ~umask`` when new).

    Returns:
        The path written.
    """
    path = Path(path)
    with atomic_write(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=indent)
    return path


# ------------------------------------------------------------------------------------------
# images


def image_path(record: Mapping[str, Any], image_dir: str | os.PathLike) -> Path:
    """The file of an image record: ``image_dir / record["file_name"]``.

    Raises:
        CocoFormatError: the record has no ``file_name``.
    """
    name = record.get("file_name")
    if not name:
        raise CocoFormatError(
            f"image record {record.get('id')!r} has no 'file_name'; add the file name relative "
            "to the image folder"
        )
    return Path(image_dir) / str(name)


def repair_image_sizes(coco: dict[str, Any], image_dir: str | os.PathLike) -> list[Any]:
    """Fill in missing or 0 ``width``/``height`` of image records from the image files.

    Files are opened with PIL and only their header is read (no full decode). The stored
    pixel size is used, without EXIF rotation, because COCO annotations refer to stored pixels
    (as the research code's PIL loader sees them, docs/method.md §1.3). Modifies ``coco`` in place.

    Returns:
        The ids of the repaired image records.

    Raises:
        FileNotFoundError: the file of a record that needs repair does not exist.
        CocoFormatError: the file cannot be read as an image.
    """
    from PIL import Image, UnidentifiedImageError

    repaired = []
    for record in coco.get("images", ()):
        if positive_int(record.get("width")) and positive_int(record.get("height")):
            continue
        path = image_path(record, image_dir)
        if not path.is_file():
            raise FileNotFoundError(
                f"image record {record.get('id')!r} has no width/height and its file "
                f"{str(path)!r} does not exist; fix the image folder or the record"
            )
        try:
            with Image.open(path) as img:
                width, height = img.size
        except (UnidentifiedImageError, OSError) as error:
            raise CocoFormatError(
                f"image record {record.get('id')!r} has no width/height and its file "
                f"{str(path)!r} cannot be read ({error}); fix or remove the image"
            ) from None
        record["width"], record["height"] = int(width), int(height)
        repaired.append(record.get("id"))
    return repaired


def positive_int(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def load_record_image(record: Mapping[str, Any], image_dir: str | os.PathLike) -> np.ndarray:
    """Load the image of a COCO record in the pixel frame its annotations use.

    COCO annotations refer to stored pixels, so the file is read without EXIF rotation
    (docs/method.md §1.3, as the research code's loader). If the record's width/height only match
    the EXIF-rotated image (the annotation tool applied the rotation), the rotated image is
    returned instead.

    Returns:
        RGB ``uint8`` ``(H, W, 3)``.

    Raises:
        fiftyone_ntt.images.ImageLoadError: missing or unreadable file.
        CocoFormatError: the file's size differs from the record's width/height.
    """
    from fiftyone_ntt.images import load_image

    path = image_path(record, image_dir)
    image = load_image(path, exif_transpose=False)
    width, height = record.get("width"), record.get("height")
    if not (positive_int(width) and positive_int(height)):
        return image
    expected = (int(height), int(width))
    if image.shape[:2] == expected:
        return image
    if image.shape[:2] == expected[::-1]:
        rotated = load_image(path, exif_transpose=True)
        if rotated.shape[:2] == expected:
            return rotated
    raise CocoFormatError(
        f"image {str(path)!r} is {image.shape[1]}x{image.shape[0]} pixels but its record "
        f"(id {record.get('id')!r}) says {width}x{height}; fix the record's width/height (or "
        "set them to 0 to have them read from the file)"
    )
