"""COCO files into FiftyOne datasets (pixel-exact masks) and predictions back to COCO
results."""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import fiftyone as fo
import numpy as np

from fiftyone_ntt.coco import annotation_to_mask, image_path
from fiftyone_ntt.fiftyone.dataset.labels import detection_box_xyxy, detection_full_mask
from fiftyone_ntt.fiftyone.protocols.specs import GT_FIELD, category_names

# ------------------------------------------------------------------------------------------
# FiftyOne import


def _detection(fo, ann: Mapping[str, Any], name: str, width: int, height: int):

    x, y, w, h = (float(v) for v in ann["bbox"])
    attrs = {
        "coco_id": ann["id"],
        "iscrowd": int(bool(ann.get("iscrowd", 0))),
        "category_id": int(ann["category_id"]),
    }
    mask = None
    if ann.get("segmentation"):
        full = annotation_to_mask(ann, height, width)
        if full is not None and full.any():
            # crop to an integer box holding both the bbox and the mask, so the mask is
            # stored pixel-exact (FiftyOne stretches a mask over its box)
            ys, xs = np.nonzero(full)
            x1 = max(0, min(math.floor(x), int(xs.min())))
            y1 = max(0, min(math.floor(y), int(ys.min())))
            x2 = min(width, max(math.ceil(x + w), int(xs.max()) + 1))
            y2 = min(height, max(math.ceil(y + h), int(ys.max()) + 1))
            mask = np.ascontiguousarray(full[y1:y2, x1:x2].astype(bool))
            x, y, w, h = x1, y1, x2 - x1, y2 - y1
            attrs["coco_bbox"] = [float(v) for v in ann["bbox"]]
    return fo.Detection(
        label=name,
        bounding_box=[x / width, y / height, w / width, h / height],
        mask=mask,
        **attrs,
    )


def import_coco(
    name: str,
    coco: Mapping[str, Any],
    image_dir: str | os.PathLike,
    image_ids: Sequence[Any] | None = None,
    *,
    gt_field: str = GT_FIELD,
    log: Callable[[str], None] | None = None,
) -> Any:
    """Load or create the persistent dataset ``name`` and add the images of ``coco`` (only
    ``image_ids``, default all) that it does not hold yet, with their annotations in
    ``gt_field`` (masks pixel-exact, ``coco_id``/``iscrowd``/``category_id`` attributes).

    Samples carry ``coco_id`` (the image id) and their metadata from the record.
    """

    if fo.dataset_exists(name):
        dataset = fo.load_dataset(name)
    else:
        dataset = fo.Dataset(name, persistent=True)
    have = (
        set(dataset.values("coco_id")) if len(dataset) and dataset.has_field("coco_id") else set()
    )
    records = {r["id"]: r for r in coco["images"]}
    wanted = list(records) if image_ids is None else list(dict.fromkeys(image_ids))
    unknown = [i for i in wanted if i not in records]
    if unknown:
        raise ValueError(f"image id(s) {unknown[:5]} have no record in the annotation file")
    todo = [i for i in wanted if i not in have]
    if not todo:
        return dataset
    names = category_names(coco)
    by_image: dict[Any, list] = defaultdict(list)
    todo_set = set(todo)
    for ann in coco["annotations"]:
        if ann["image_id"] in todo_set:
            by_image[ann["image_id"]].append(ann)
    if log:
        log(f"importing {len(todo)} image(s) into dataset {name!r}")
    batch: list = []
    for image_id in todo:
        record = records[image_id]
        width, height = int(record["width"]), int(record["height"])
        detections = [
            _detection(
                fo, ann, names.get(int(ann["category_id"]), str(ann["category_id"])), width, height
            )
            for ann in by_image[image_id]
        ]
        batch.append(
            fo.Sample(
                filepath=str(image_path(record, image_dir).resolve()),
                coco_id=image_id,
                metadata=fo.ImageMetadata(width=width, height=height),
                **{gt_field: fo.Detections(detections=detections)},
            )
        )
        if len(batch) >= 500:
            dataset.add_samples(batch, progress=False)
            batch = []
    if batch:
        dataset.add_samples(batch, progress=False)
    return dataset


# ------------------------------------------------------------------------------------------
# results


def full_mask(det, box, width, height, fallback) -> np.ndarray | None:
    """Full-image mask of a detection; the crop is pasted directly when it has the box's
    pixel size (as ``segment`` writes it), else FiftyOne's rendering (resize) is used."""
    if det.mask is None:
        return fallback(det, width, height)
    x1, y1, x2, y2 = box
    crop = np.asarray(det.mask)
    if crop.ndim == 2 and crop.shape == (y2 - y1, x2 - x1) and x1 >= 0 and y1 >= 0:
        if x2 <= width and y2 <= height:
            full = np.zeros((height, width), dtype=np.uint8)
            full[y1:y2, x1:x2] = crop.astype(bool)
            return full
    return fallback(det, width, height)


def results_from_field(
    collection: Any,
    pred_field: str,
    category_ids: Mapping[str, int],
    *,
    box_convention: str = "paper",
) -> list[dict[str, Any]]:
    """COCO results of the predictions in ``pred_field`` (image id = the sample's
    ``coco_id``), with the paper's box convention (``[x1, y1, x2 - 1 - x1, y2 - 1 - y1]``,
    docs/method.md §6) or the exact extent; masks as compressed RLE at full resolution."""
    # deferred: pycocotools (optional) loads only when this runs
    from pycocotools import mask as mask_utils

    if box_convention not in ("paper", "exact"):
        raise ValueError(f"box_convention={box_convention!r}; use 'paper' or 'exact'")
    shrink = 1.0 if box_convention == "paper" else 0.0
    results = []
    view = collection.select_fields([pred_field, "coco_id", "metadata"])
    for sample in view:
        detections = sample[pred_field]
        if detections is None:
            continue
        width, height = sample.metadata.width, sample.metadata.height
        for det in detections.detections:
            x1, y1, x2, y2 = (round(v) for v in detection_box_xyxy(det, width, height))
            entry = {
                "image_id": sample["coco_id"],
                "category_id": int(category_ids[str(det.label)]),
                "bbox": [float(x1), float(y1), (x2 - shrink) - x1, (y2 - shrink) - y1],
                "score": float(det.confidence if det.confidence is not None else 1.0),
            }
            mask = full_mask(det, (x1, y1, x2, y2), width, height, detection_full_mask)
            if mask is not None:
                rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
                counts = rle["counts"]
                entry["segmentation"] = {
                    "size": [int(v) for v in rle["size"]],
                    "counts": counts.decode() if isinstance(counts, bytes) else counts,
                }
            results.append(entry)
    return results
