"""COCO annotations → :class:`~fiftyone_ntt.types.Reference` objects: masks from polygons or
RLE, or box-only references (docs/method.md §2.3, §3). Nothing here imports FiftyOne.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from fiftyone_ntt.coco.files import CocoFormatError, image_path, load_record_image, positive_int
from fiftyone_ntt.types import Reference


class InvalidAnnotationsError(CocoFormatError):
    """Annotations cannot be used as references; ``problems`` lists ``(annotation id, image
    id, reason)`` of each."""

    def __init__(self, message: str, problems: list[tuple[Any, Any, str]]) -> None:
        super().__init__(message)
        self.problems = problems


class InvalidAnnotationsWarning(UserWarning):
    """Annotations that cannot be references were skipped (``skip_invalid=True``);
    ``problems`` lists ``(annotation id, image id, reason)`` of each."""

    def __init__(self, message: str, problems: list[tuple[Any, Any, str]]) -> None:
        super().__init__(message)
        self.problems = problems


def _polygon_problem(polygon: Any) -> str | None:
    """Why a COCO polygon (``[x1, y1, x2, y2, ...]``) cannot be a mask, or None."""
    if not isinstance(polygon, list):
        return f"is {type(polygon).__name__}, not a list of coordinates"
    if not polygon:
        return "is empty"
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in polygon):
        return "holds values that are not numbers"
    if not all(math.isfinite(v) for v in polygon):
        return "holds NaN or infinite coordinates"
    if len(polygon) % 2:
        return f"has an odd number of coordinates ({len(polygon)}); they come in x, y pairs"
    if len(polygon) < 6:
        return f"has fewer than 3 points ({len(polygon) // 2})"
    return None


def _segmentation_problem(segm: Any) -> str | None:
    """Why an annotation's ``segmentation`` is unusable, or None (also for none at all: no
    ``segmentation``, ``None`` or ``[]`` make a box-only annotation)."""
    if segm is None:
        return None
    if isinstance(segm, list):
        for k, polygon in enumerate(segm):
            problem = _polygon_problem(polygon)
            if problem:
                return f"polygon {k} of its segmentation {problem}"
        return None
    if isinstance(segm, dict):
        missing = [key for key in ("counts", "size") if key not in segm]
        if missing:
            return f"its RLE segmentation has no {' or '.join(repr(k) for k in missing)}"
        return None
    return (
        f"its segmentation is {type(segm).__name__}; it must be a list of polygons or an RLE "
        "dict with 'counts' and 'size'"
    )


def has_segmentation(ann: Mapping[str, Any]) -> bool:
    segm = ann.get("segmentation")
    if segm is None:
        return False
    if isinstance(segm, list):
        return any(_polygon_problem(p) is None for p in segm)
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

    if not has_segmentation(ann):
        return None
    segm = ann["segmentation"]
    try:
        if isinstance(segm, list):
            polygons = [[float(v) for v in p] for p in segm if _polygon_problem(p) is None]
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
        used = {str(a["category_id"]) for a in coco.get("annotations", ())}
        category_ids = [c for c in names if str(c) in used]
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


def annotation_problem(
    ann: Mapping[str, Any],
    categories: Mapping[int, str],
    height: int | None = None,
    width: int | None = None,
) -> str | None:
    """Why an annotation cannot be a reference, or None: the one set of rules for COCO
    references (issue 19.6).

    Refused: a category id that is not in ``categories``; a box that is not finite or has a
    width or height <= 0; a segmentation that is neither polygons nor RLE, a polygon that
    is empty, has an odd number of coordinates or fewer than 3 points, an RLE without
    ``counts``/``size``; and, when the image size is known, a segmentation that cannot be
    decoded at that size or covers no pixel. No segmentation (absent, ``None`` or ``[]``)
    is a box-only annotation, which is fine.

    Args:
        ann: the annotation.
        categories: ``{category id: name}`` of the file.
        height, width: the image size, to decode the segmentation; None skips that rule.
    """
    try:
        category_id = int(ann["category_id"])
    except (TypeError, ValueError):
        return f"its category id {ann['category_id']!r} is not an integer"
    if category_id not in categories:
        return (
            f"its category id {category_id} is not in the file's 'categories' (ids "
            f"{sorted(categories)})"
        )
    bbox = ann.get("bbox")
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError):
        return f"its bbox {bbox!r} is not [x, y, width, height]"
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        return f"its box {bbox} is not finite (NaN or infinity)"
    if w <= 0 or h <= 0:
        return f"its box {bbox} has width {w:g} and height {h:g}; both must be > 0"
    problem = _segmentation_problem(ann.get("segmentation"))
    if problem or height is None or width is None:
        return problem
    try:
        mask = annotation_to_mask(ann, height, width)
    except CocoFormatError as error:
        return str(error).removeprefix(f"annotation {ann.get('id')!r}: ")
    if mask is not None and not mask.any():
        return "its segmentation covers no pixel of the image (a degenerate polygon or RLE)"
    return None


def _size(record: Mapping[str, Any], image_dir: str | os.PathLike) -> tuple[int, int] | None:
    """``(height, width)`` of an image record: its own, else the file's header (None when
    the file cannot be read: loading it reports that)."""
    width, height = record.get("width"), record.get("height")
    if positive_int(width) and positive_int(height):
        return int(height), int(width)
    from PIL import Image

    try:
        with Image.open(image_path(record, image_dir)) as img:
            return img.size[1], img.size[0]
    except (OSError, ValueError, CocoFormatError):
        return None


def _listing(problems: Sequence[tuple[Any, Any, str]], limit: int = 20) -> str:
    text = "; ".join(
        f"annotation {ann_id!r} (image {image_id!r}): {reason}"
        for ann_id, image_id, reason in problems[:limit]
    )
    return text + (f"; ... ({len(problems) - limit} more)" if len(problems) > limit else "")


def invalid_annotations(
    coco: Mapping[str, Any],
    image_dir: str | os.PathLike | None = None,
    *,
    category_ids: Sequence[int] | None = None,
    include_crowd: bool = False,
) -> list[tuple[Any, Any, str]]:
    """The annotations :func:`iter_references` would use (or drop, for an unknown category)
    that cannot be references, as ``(annotation id, image id, reason)`` in file order (see
    :func:`annotation_problem`). With ``image_dir`` (or image sizes in the records),
    segmentations are decoded to find empty ones."""
    names = {int(c["id"]): str(c["name"]) for c in coco.get("categories", ())}
    wanted = None if category_ids is None else {int(c) for c in category_ids}
    images = {record["id"]: record for record in coco.get("images", ())}
    sizes: dict[Any, tuple[int, int] | None] = {}
    problems = []
    for ann in coco.get("annotations", ()):
        if ann.get("iscrowd", 0) and not include_crowd:
            continue
        try:
            category_id = int(ann["category_id"])
        except (TypeError, ValueError):
            category_id = None
        if wanted is not None and category_id in names and category_id not in wanted:
            continue
        record = images.get(ann["image_id"])
        if record is not None and ann["image_id"] not in sizes:
            sizes[ann["image_id"]] = (
                _size(record, image_dir)
                if image_dir is not None
                else (
                    (int(record["height"]), int(record["width"]))
                    if positive_int(record.get("width")) and positive_int(record.get("height"))
                    else None
                )
            )
        size = sizes.get(ann["image_id"]) or (None, None)
        problem = annotation_problem(ann, names, *size)
        if problem:
            problems.append((ann["id"], ann["image_id"], problem))
    return problems


def iter_references(
    coco: Mapping[str, Any],
    image_dir: str | os.PathLike,
    *,
    category_ids: Sequence[int] | None = None,
    include_crowd: bool = False,
    skip_invalid: bool = False,
) -> Iterator[Reference]:
    """Yield a :class:`~fiftyone_ntt.types.Reference` per annotation, in file order.

    * ``class_name`` = the category's name, ``ref_id`` = ``str(annotation id)``.
    * ``mask`` = the decoded segmentation, or ``None`` for box-only annotations (the bank
      builder then segments the box with SAM2).
    * ``box`` = COCO ``[x, y, w, h]`` -> ``(x, y, x + w, y + h)`` as floats. The core
      truncates it with ``int()`` for the context crop as the research code does (docs/method.md §3
      step 1); nothing is rounded here.

    Every annotation is checked before the first is yielded (:func:`invalid_annotations`):
    one that cannot be a reference (an unknown category, a broken polygon, a NaN or
    negative-size box, a mask that covers nothing, ...) is refused with the others, never
    dropped or replaced by a box mask without a word.

    An image is loaded once for consecutive annotations of the same image (only the last one
    is kept in memory, so the annotations of one image should be contiguous, as is usual).

    Args:
        coco: a checked annotation dict (:func:`load_coco`).
        image_dir: the image folder.
        category_ids: use only these categories; ``None`` uses all.
        include_crowd: also yield ``iscrowd=1`` annotations (skipped by default: a crowd
            region is not one instance).
        skip_invalid: leave out the annotations that cannot be references instead of
            refusing them; they are reported in an :class:`InvalidAnnotationsWarning`
            (count, ids and reasons; ``.problems`` holds them).

    Raises:
        fiftyone_ntt.images.ImageLoadError: an image cannot be read.
        InvalidAnnotationsError: annotations that cannot be references (all of them listed
            with their ids and reasons), unless ``skip_invalid``.
        CocoFormatError: other bad records (unknown image ids, size mismatches).
    """
    names = _category_names(coco, category_ids)
    problems = invalid_annotations(
        coco, image_dir, category_ids=category_ids, include_crowd=include_crowd
    )
    if problems and not skip_invalid:
        raise InvalidAnnotationsError(
            f"{len(problems)} annotation(s) cannot be used as references: "
            f"{_listing(problems)}; fix them, or leave them out with skip_invalid=True "
            "(command line: --skip-invalid-annotations)",
            problems,
        )
    if problems:
        warnings.warn(
            InvalidAnnotationsWarning(
                f"skipped {len(problems)} annotation(s) that cannot be used as references: "
                f"{_listing(problems)}",
                problems,
            ),
            stacklevel=2,
        )
    skip = {ann_id for ann_id, _, _ in problems}
    images = {record["id"]: record for record in coco.get("images", ())}
    cached_id: Any = object()
    cached_image: np.ndarray | None = None
    for ann in coco.get("annotations", ()):
        if ann["id"] in skip:
            continue
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
        mask = annotation_to_mask(ann, height, width)  # checked above: None or not empty
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
    skip_invalid: bool = False,
) -> list[Reference]:
    """All references of a COCO dict as a list (see :func:`iter_references`)."""
    return list(
        iter_references(
            coco,
            image_dir,
            category_ids=category_ids,
            include_crowd=include_crowd,
            skip_invalid=skip_invalid,
        )
    )
