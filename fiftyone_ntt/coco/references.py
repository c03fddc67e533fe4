"""COCO annotations → :class:`~fiftyone_ntt.types.Reference` objects: masks from polygons or
RLE, or box-only references (method §2.3, §3). Nothing here imports FiftyOne.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from fiftyone_ntt.coco.files import CocoFormatError, load_record_image
from fiftyone_ntt.types import Reference


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
