"""COCO-format input and output: annotation files, references, results, evaluation.

Nothing here imports FiftyOne. pycocotools is imported inside the functions that need it.

* :func:`load_coco` reads an annotation file with errors that name the file and the key,
  and repairs image records whose width/height are missing or 0 from the image files
  (a crash users of the research code reported, method §11).
* :func:`iter_references` / :func:`load_references` turn annotations into
  :class:`~fiftyone_ntt.types.Reference` objects (mask from polygons or RLE, or box-only).
* :func:`predictions_to_coco` writes standard COCO results (method §6), with the paper's
  1-px-short boxes or exact ones.
* :func:`evaluate` runs pycocotools' ``COCOeval`` as the research code does (method §2.4,
  §6), also on box-only ground truth (§11 user issue #29), and :func:`format_table` prints it.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fiftyone_ntt.types import Predictions, Reference

__all__ = [
    "STAT_NAMES",
    "CocoFormatError",
    "annotation_to_mask",
    "evaluate",
    "format_table",
    "image_path",
    "iter_references",
    "load_coco",
    "load_record_image",
    "load_references",
    "load_results",
    "predictions_to_coco",
    "repair_image_sizes",
    "restrict_to_categories",
    "validate_coco",
    "write_json",
]

#: Names of the 12 numbers of ``COCOeval.summarize()``, in its order.
STAT_NAMES = (
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "AR1",
    "AR10",
    "AR100",
    "ARs",
    "ARm",
    "ARl",
)

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
    return _validate_results(results, str(path))


def _validate_results(results: Any, source: str) -> list[dict[str, Any]]:
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
    """Write JSON atomically: a temporary file in the same folder, then a rename.

    A reader never sees a half-written file, and an interrupted write leaves the previous file
    intact. Missing parent folders are created.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=indent)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
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
    (as the research code's PIL loader sees them, method §1.3). Modifies ``coco`` in place.

    Returns:
        The ids of the repaired image records.

    Raises:
        FileNotFoundError: the file of a record that needs repair does not exist.
        CocoFormatError: the file cannot be read as an image.
    """
    from PIL import Image, UnidentifiedImageError

    repaired = []
    for record in coco.get("images", ()):
        if _positive_int(record.get("width")) and _positive_int(record.get("height")):
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


def _positive_int(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def load_record_image(record: Mapping[str, Any], image_dir: str | os.PathLike) -> np.ndarray:
    """Load the image of a COCO record in the pixel frame its annotations use.

    COCO annotations refer to stored pixels, so the file is read without EXIF rotation
    (method §1.3, as the research code's PIL loader). If the record's width/height only match
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
    if not (_positive_int(width) and _positive_int(height)):
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


# ------------------------------------------------------------------------------------------
# annotations -> references


def _has_segmentation(ann: Mapping[str, Any]) -> bool:
    segm = ann.get("segmentation")
    if segm is None:
        return False
    if isinstance(segm, list):
        return any(isinstance(p, list) and len(p) >= 6 for p in segm)
    if isinstance(segm, dict):
        return "counts" in segm and "size" in segm
    return False


def annotation_to_mask(ann: Mapping[str, Any], height: int, width: int) -> np.ndarray | None:
    """The binary mask of an annotation, as pycocotools' ``COCO.annToMask`` computes it.

    Polygons (a list of ``[x1, y1, x2, y2, ...]``), uncompressed RLE (``counts`` a list) and
    compressed RLE (``counts`` a string) are accepted. Polygons with fewer than 3 points are
    ignored (pycocotools would read a 2-point polygon as a box).

    Args:
        ann: the annotation.
        height: image height in pixels.
        width: image width in pixels.

    Returns:
        ``(height, width)`` bool, or ``None`` when the annotation has no segmentation
        (a box-only annotation).

    Raises:
        CocoFormatError: an RLE whose size differs from the image, or an unreadable
            segmentation.
    """
    from pycocotools import mask as mask_utils

    if not _has_segmentation(ann):
        return None
    segm = ann["segmentation"]
    try:
        if isinstance(segm, list):
            polygons = [[float(v) for v in p] for p in segm if isinstance(p, list) and len(p) >= 6]
            rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
        else:
            size = [int(v) for v in segm["size"]]
            if size != [height, width]:
                raise CocoFormatError(
                    f"annotation {ann.get('id')!r}: RLE size {size} differs from the image size "
                    f"[{height}, {width}] (height, width); fix the image record or the mask"
                )
            if isinstance(segm["counts"], list):
                rle = mask_utils.frPyObjects(segm, height, width)
            else:
                counts = segm["counts"]
                rle = {
                    "size": size,
                    "counts": counts.encode("utf-8") if isinstance(counts, str) else counts,
                }
        with warnings.catch_warnings():
            # pycocotools' Cython decode trips a numpy 2 DeprecationWarning (harmless noise).
            warnings.simplefilter("ignore", DeprecationWarning)
            return mask_utils.decode(rle).astype(bool)
    except CocoFormatError:
        raise
    except Exception as error:  # pycocotools raises bare Exceptions on bad input
        raise CocoFormatError(
            f"annotation {ann.get('id')!r}: cannot decode its segmentation ({error}); fix or "
            "remove it (an annotation without 'segmentation' is used as box-only)"
        ) from None


def _category_names(coco: Mapping[str, Any], category_ids: Sequence[int] | None) -> dict[int, str]:
    names = {int(c["id"]): str(c["name"]) for c in coco.get("categories", ())}
    if category_ids is None:
        # Every category that has annotations (unused ones cannot clash).
        used = {int(a["category_id"]) for a in coco.get("annotations", ())}
        category_ids = [c for c in names if c in used]
    wanted: dict[int, str] = {}
    for cid in category_ids:
        if int(cid) not in names:
            raise CocoFormatError(
                f"category id {cid!r} is not in the file's categories; known ids: {sorted(names)}"
            )
        wanted[int(cid)] = names[int(cid)]
    seen: dict[str, int] = {}
    for cid, name in wanted.items():
        if name in seen:
            raise CocoFormatError(
                f"categories {seen[name]} and {cid} are both named {name!r}; class names must "
                "be unique: rename one of them or select only one"
            )
        seen[name] = cid
    return wanted


def iter_references(
    coco: Mapping[str, Any],
    image_dir: str | os.PathLike,
    *,
    category_ids: Sequence[int] | None = None,
    include_crowd: bool = False,
) -> Iterator[Reference]:
    """Yield a :class:`~fiftyone_ntt.types.Reference` per annotation, in file order.

    * ``class_name`` = the category's name, ``ref_id`` = ``str(annotation id)``.
    * ``mask`` = the decoded segmentation, or ``None`` for box-only annotations (the bank
      builder then segments the box with SAM2).
    * ``box`` = COCO ``[x, y, w, h]`` -> ``(x, y, x + w, y + h)`` as floats. The core
      truncates it with ``int()`` for the context crop, as the research code does (method §3
      step 1); nothing is rounded here.

    An image is loaded once for consecutive annotations of the same image (only the last one
    is kept in memory, so the annotations of one image should be contiguous, as is usual).

    Args:
        coco: a checked annotation dict (:func:`load_coco`), with image sizes known.
        image_dir: the image folder.
        category_ids: use only these categories; ``None`` uses all.
        include_crowd: also yield ``iscrowd=1`` annotations (skipped by default: a crowd
            region is not one instance).

    Raises:
        fiftyone_ntt.images.ImageLoadError: an image cannot be read.
        CocoFormatError: bad records (unknown image ids, size mismatches, empty masks are
            not raised: an annotation whose mask decodes empty is used as box-only).
    """
    names = _category_names(coco, category_ids)
    images = {record["id"]: record for record in coco.get("images", ())}
    cached_id: Any = object()
    cached_image: np.ndarray | None = None
    for ann in coco.get("annotations", ()):
        category_id = int(ann["category_id"])
        if category_id not in names:
            continue
        if ann.get("iscrowd", 0) and not include_crowd:
            continue
        record = images.get(ann["image_id"])
        if record is None:
            raise CocoFormatError(
                f"annotation {ann['id']!r} refers to image_id {ann['image_id']!r}, which has no "
                "record in 'images'; add the record or remove the annotation"
            )
        if ann["image_id"] != cached_id:
            cached_image = load_record_image(record, image_dir)
            cached_id = ann["image_id"]
        height, width = cached_image.shape[:2]
        mask = annotation_to_mask(ann, height, width)
        if mask is not None and not mask.any():
            mask = None  # a degenerate polygon: fall back to the box (SAM2 box prompt)
        x, y, w, h = (float(v) for v in ann["bbox"])
        try:
            reference = Reference(
                image=cached_image,
                class_name=names[category_id],
                ref_id=str(ann["id"]),
                mask=mask,
                box=(x, y, x + w, y + h),
            )
        except ValueError as error:  # e.g. a box with no area inside the image
            raise CocoFormatError(f"annotation {ann['id']!r}: {error}") from None
        yield reference


def load_references(
    coco: Mapping[str, Any],
    image_dir: str | os.PathLike,
    *,
    category_ids: Sequence[int] | None = None,
    include_crowd: bool = False,
) -> list[Reference]:
    """All references of a COCO dict as a list (see :func:`iter_references`)."""
    return list(
        iter_references(coco, image_dir, category_ids=category_ids, include_crowd=include_crowd)
    )


# ------------------------------------------------------------------------------------------
# predictions -> results


def predictions_to_coco(
    predictions: Predictions,
    image_id: Any,
    category_ids: Sequence[int],
    box_convention: Literal["paper", "exact"] = "exact",
) -> list[dict[str, Any]]:
    """Standard COCO results for one image (method §6).

    Args:
        predictions: the detections, in descending score order (kept as is).
            ``boxes`` are XYXY with exclusive ``x2``/``y2``.
        image_id: the COCO image id.
        category_ids: COCO category id of each class index (``category_ids[class_id]``).
        box_convention: ``"exact"`` writes ``[x1, y1, x2 - x1, y2 - y1]``, the true pixel
            extent; ``"paper"`` writes ``[x1, y1, (x2 - 1) - x1, (y2 - 1) - y1]``, 1 px short
            in width and height as the research code does (inclusive max index, method §6,
            §11 Behavioural 7).

    Returns:
        One dict per detection: ``image_id``, ``category_id``, ``bbox`` (xywh floats),
        ``score`` (float), ``segmentation`` (compressed RLE of the full-resolution mask,
        ``counts`` as a UTF-8 string).
    """
    from pycocotools import mask as mask_utils

    if box_convention not in ("paper", "exact"):
        raise ValueError(f"box_convention={box_convention!r}; use 'paper' or 'exact'")
    category_ids = list(category_ids)
    if predictions.class_names and len(category_ids) != len(predictions.class_names):
        raise ValueError(
            f"{len(category_ids)} category ids for {len(predictions.class_names)} classes "
            f"{list(predictions.class_names)}; give one COCO category id per bank class"
        )
    if len(predictions) and int(predictions.class_ids.max()) >= len(category_ids):
        raise ValueError(
            f"class index {int(predictions.class_ids.max())} has no category id "
            f"(only {len(category_ids)} given)"
        )
    if not len(predictions):
        return []
    shrink = 1.0 if box_convention == "paper" else 0.0
    masks = np.asfortranarray(predictions.masks.transpose(1, 2, 0).astype(np.uint8))
    rles = mask_utils.encode(masks)
    results = []
    for i, rle in enumerate(rles):
        x1, y1, x2, y2 = (float(v) for v in predictions.boxes[i])
        counts = rle["counts"]
        results.append(
            {
                "image_id": image_id,
                "category_id": int(category_ids[int(predictions.class_ids[i])]),
                "bbox": [x1, y1, (x2 - shrink) - x1, (y2 - shrink) - y1],
                "score": float(predictions.scores[i]),
                "segmentation": {
                    "size": [int(v) for v in rle["size"]],
                    "counts": counts.decode("utf-8") if isinstance(counts, bytes) else counts,
                },
            }
        )
    return results


# ------------------------------------------------------------------------------------------
# evaluation


def restrict_to_categories(coco: Mapping[str, Any], category_ids: Sequence[int]) -> dict[str, Any]:
    """A copy whose annotations are only those of ``category_ids`` (method §2.4).

    Crowd annotations of those categories are kept (COCOeval ignores them); the image list
    and the category list are unchanged, so every image is still evaluated and detections of
    the other categories meet no ground truth and do not count in the mean.
    """
    wanted = {int(c) for c in category_ids}
    known = {int(c["id"]) for c in coco.get("categories", ())}
    unknown = sorted(wanted - known)
    if unknown:
        raise CocoFormatError(
            f"category id(s) {unknown} are not in the ground truth's categories; known ids: "
            f"{sorted(known)}"
        )
    out = dict(coco)
    out["annotations"] = [
        ann for ann in coco.get("annotations", ()) if int(ann["category_id"]) in wanted
    ]
    return out


def _empty_results(coco_gt: Any) -> Any:
    """A results object with no detections (pycocotools' ``loadRes([])`` raises)."""
    from pycocotools.coco import COCO

    res = COCO()
    res.dataset = {
        "images": list(coco_gt.dataset["images"]),
        "categories": copy.deepcopy(coco_gt.dataset.get("categories", [])),
        "annotations": [],
    }
    res.createIndex()
    return res


def _per_class(cocoeval: Any, names: Mapping[int, str], report_ids: Sequence[int]) -> list:
    precision = cocoeval.eval["precision"]  # [T, R, K, A, M]
    cat_ids = list(cocoeval.params.catIds)
    area_all = list(cocoeval.params.areaRngLbl).index("all")
    max_dets = len(cocoeval.params.maxDets) - 1
    rows = []
    for cid in report_ids:
        row: dict[str, Any] = {"category_id": int(cid), "name": names.get(int(cid), str(cid))}
        if cid in cat_ids:
            k = cat_ids.index(cid)
            p = precision[:, :, k, area_all, max_dets]
            for key, values in (("AP", p), ("AP50", p[0]), ("AP75", p[5])):
                valid = values[values > -1]
                row[key] = float(np.mean(valid)) if valid.size else None
        else:
            row.update(AP=None, AP50=None, AP75=None)
        rows.append(row)
    return rows


def evaluate(
    gt: Mapping[str, Any] | str | os.PathLike,
    results: Sequence[Mapping[str, Any]] | str | os.PathLike,
    *,
    category_ids: Sequence[int] | None = None,
    image_ids: Sequence[Any] | None = None,
    iou_types: Sequence[str] | None = None,
    image_dir: str | os.PathLike | None = None,
    verbose: bool = False,
) -> dict[str, Any]:
    """COCO AP of results against ground truth, as the research code evaluates (method §6).

    ``COCOeval`` runs with default parameters and ``params.imgIds`` = every ground-truth
    image (or ``image_ids``), so images without any object of the evaluated classes still
    count their detections as false positives (method §2.4, §11 Behavioural 8).

    Args:
        gt: a COCO annotation dict or file. Not modified.
        results: a COCO results list or file. Not modified. May be empty (AP 0).
        category_ids: evaluate only these classes: the ground truth keeps only their
            annotations (crowd included), all images and the category list stay (method §2.4).
        image_ids: evaluate on these images only; default all.
        iou_types: ``("bbox", "segm")`` by default; when the ground truth has no segmentation
            (box-only data) only ``bbox`` is evaluated and a note says so (method §11, issue
            #29).
        image_dir: image folder used to repair records with width/height 0 (needed for
            segm evaluation of polygon ground truth).
        verbose: let pycocotools print its usual output.

    Returns:
        ``{"iou_types": [...], "notes": [...], "num_images": int, "num_results": int,
        "category_ids": [...] | None, <iou_type>: {"stats": {name: float}, "per_class":
        [{"category_id", "name", "AP", "AP50", "AP75"}]}}``. Stats follow pycocotools
        (fractions in [0, 1], ``-1`` when undefined); a per-class value is ``None`` when the
        class has no ground truth.

    Raises:
        CocoFormatError: malformed inputs, unknown category ids, result image ids that are
            not in the ground truth, or ``segm`` requested on box-only ground truth.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if isinstance(gt, (str, os.PathLike)):
        gt_source = str(gt)
        gt_dict = load_coco(gt)
    else:
        gt_source = "ground truth"
        gt_dict = validate_coco(gt, source=gt_source)
    gt_dict = dict(gt_dict)
    gt_dict["images"] = [dict(r) for r in gt_dict["images"]]
    if image_dir is not None:
        repair_image_sizes(gt_dict, image_dir)
    if category_ids is not None:
        category_ids = [int(c) for c in category_ids]
        gt_dict = restrict_to_categories(gt_dict, category_ids)
    # COCOeval writes into annotation dicts ("ignore", RLE segmentations): work on copies.
    gt_dict["annotations"] = copy.deepcopy(gt_dict["annotations"])
    if isinstance(results, (str, os.PathLike)):
        results_list = load_results(results)
    else:
        results_list = _validate_results(list(results), "results")
    results_list = copy.deepcopy(results_list)

    notes: list[str] = []
    annotations = gt_dict["annotations"]
    with_segm = sum(_has_segmentation(a) for a in annotations)
    if iou_types is None:
        iou_types = ["bbox", "segm"]
        if annotations and with_segm < len(annotations):
            iou_types = ["bbox"]
            if with_segm == 0:
                notes.append(
                    "the ground truth has no segmentation (box-only data): only bbox AP is "
                    "evaluated"
                )
            else:
                notes.append(
                    f"{len(annotations) - with_segm} of {len(annotations)} ground-truth "
                    "annotations have no segmentation: only bbox AP is evaluated"
                )
    else:
        iou_types = list(dict.fromkeys(iou_types))
        bad = [t for t in iou_types if t not in ("bbox", "segm")]
        if bad:
            raise ValueError(f"iou_types {bad} not supported; use 'bbox' and/or 'segm'")
        if "segm" in iou_types and with_segm < len(annotations):
            raise CocoFormatError(
                f"{len(annotations) - with_segm} of {len(annotations)} ground-truth annotations "
                "have no segmentation, so segm AP is undefined; evaluate iou_types=['bbox'] or "
                "add masks to the ground truth"
            )
    for ann in annotations:
        if "area" not in ann:  # COCOeval needs it for the area ranges; box area here
            _, _, w, h = ann["bbox"]
            ann["area"] = float(w) * float(h)
    if "segm" in iou_types:
        unsized = [
            r["id"]
            for r in gt_dict["images"]
            if not (_positive_int(r.get("width")) and _positive_int(r.get("height")))
        ]
        if unsized:
            raise CocoFormatError(
                f"{len(unsized)} ground-truth image record(s) have no width/height (e.g. ids "
                f"{unsized[:5]}); pass the image folder so they are read from the files"
            )

    gt_image_ids = [r["id"] for r in gt_dict["images"]]
    known_images = set(gt_image_ids)
    stray = sorted({d["image_id"] for d in results_list} - known_images, key=str)
    if stray:
        raise CocoFormatError(
            f"{len(stray)} result image id(s) are not in the ground truth (e.g. {stray[:5]}); "
            "use the image ids of the ground-truth file when predicting"
        )
    if "segm" in iou_types:
        sizes = {r["id"]: [r.get("height"), r.get("width")] for r in gt_dict["images"]}
        for i, det in enumerate(results_list):
            segm = det.get("segmentation")
            if isinstance(segm, dict) and list(segm.get("size", ())) != sizes[det["image_id"]]:
                raise CocoFormatError(
                    f"result [{i}] (image {det['image_id']!r}) has a mask of size "
                    f"{segm.get('size')} but the image is {sizes[det['image_id']]} (height, "
                    "width); the results were made on other images or another resolution"
                )
    if image_ids is None:
        eval_ids = sorted(gt_image_ids, key=lambda v: (isinstance(v, str), v))
    else:
        eval_ids = list(image_ids)
        missing = [i for i in eval_ids if i not in known_images]
        if missing:
            raise CocoFormatError(
                f"image id(s) {missing[:5]} are not in the ground truth; choose ids from its "
                "'images'"
            )

    names = {int(c["id"]): str(c["name"]) for c in gt_dict["categories"]}
    report_ids = category_ids if category_ids is not None else sorted(names)
    output: dict[str, Any] = {
        "iou_types": list(iou_types),
        "notes": notes,
        "num_images": len(eval_ids),
        "num_results": len(results_list),
        "category_ids": category_ids,
    }
    stream = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with stream:
        coco_gt = COCO()
        coco_gt.dataset = gt_dict
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results_list) if results_list else _empty_results(coco_gt)
        for iou_type in iou_types:
            cocoeval = COCOeval(coco_gt, coco_dt, iou_type)
            cocoeval.params.imgIds = eval_ids
            cocoeval.evaluate()
            cocoeval.accumulate()
            cocoeval.summarize()
            output[iou_type] = {
                "stats": {
                    name: float(v) for name, v in zip(STAT_NAMES, cocoeval.stats, strict=True)
                },
                "per_class": _per_class(cocoeval, names, report_ids),
            }
    return output


def format_table(result: Mapping[str, Any], *, per_class: bool = True) -> str:
    """A plain-text table of :func:`evaluate`'s output, numbers in percent.

    Undefined values (pycocotools' ``-1``, classes without ground truth) print as ``-``.
    """

    def cell(value: float | None) -> str:
        return "-" if value is None or value < 0 else f"{100 * value:.1f}"

    lines = []
    header = f"{'iou':<6}" + "".join(f"{name:>7}" for name in STAT_NAMES)
    lines.append(header)
    lines.append("-" * len(header))
    for iou_type in result["iou_types"]:
        stats = result[iou_type]["stats"]
        lines.append(f"{iou_type:<6}" + "".join(f"{cell(stats[name]):>7}" for name in STAT_NAMES))
    if per_class and result["iou_types"]:
        rows = result[result["iou_types"][0]]["per_class"]
        width = max([len("class")] + [len(f"{r['name']} ({r['category_id']})") for r in rows])
        lines.append("")
        columns = "".join(f"{t + ' AP':>9}{t + ' AP50':>11}" for t in result["iou_types"])
        lines.append(f"{'class':<{width}}" + columns)
        lines.append("-" * (width + len(columns)))
        for i, row in enumerate(rows):
            label = f"{row['name']} ({row['category_id']})"
            values = ""
            for iou_type in result["iou_types"]:
                r = result[iou_type]["per_class"][i]
                values += f"{cell(r['AP']):>9}{cell(r['AP50']):>11}"
            lines.append(f"{label:<{width}}" + values)
    for note in result.get("notes", ()):
        lines.append(f"note: {note}")
    return "\n".join(lines)
