"""Side-by-side PNGs (ground truth left, predictions right) of a FiftyOne view; the drawing is
:func:`fiftyone_ntt.export.side_by_side` (docs/method.md §8)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fiftyone_ntt.export import Instance, save_side_by_side, side_by_side
from fiftyone_ntt.fiftyone.dataset.labels import detection_box_xyxy, detection_full_mask
from fiftyone_ntt.images import load_image

__all__ = ["export_side_by_side"]


def _instances(detections: Any, width: int, height: int, with_scores: bool) -> list:

    out = []
    for det in detections.detections if detections is not None else []:
        out.append(
            Instance(
                label=str(det.label),
                box=detection_box_xyxy(det, width, height),
                mask=detection_full_mask(det, width, height),
                score=(
                    float(det.confidence)
                    if with_scores and det.confidence is not None
                    else (1.0 if with_scores else None)
                ),
            )
        )
    return out


def export_side_by_side(
    collection: Any,
    out_dir: str | os.PathLike,
    gt_field: str,
    pred_field: str,
    *,
    threshold: float = 0.5,
    labels: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[Path]:
    """Write one PNG per sample of ``collection`` to ``out_dir``: ``gt_field`` on the left,
    ``pred_field`` (confidence above ``threshold``) on the right.

    File names are the image's base name with ``.png``; a repeated name gets the sample id.

    Args:
        collection: dataset or view.
        out_dir: output folder (created).
        gt_field, pred_field: ``Detections`` fields.
        threshold: score threshold of the drawn predictions (research code default 0.5).
        labels: label order fixing the colours (default: the sorted labels of both fields).
        limit: at most this many samples.

    Returns:
        The written files.
    """

    if labels is None:
        names: set[str] = set()
        for field in (gt_field, pred_field):
            names.update(str(v) for v in collection.distinct(f"{field}.detections.label"))
        labels = sorted(names)
    view = collection.select_fields([gt_field, pred_field])
    if limit is not None:
        view = view.limit(int(limit))
    out_dir = Path(out_dir)
    written: list[Path] = []
    used: set[str] = set()
    for sample in view:
        image = load_image(sample.filepath)
        height, width = image.shape[:2]
        gt = _instances(sample[gt_field], width, height, with_scores=False)
        preds = _instances(sample[pred_field], width, height, with_scores=True)
        picture = side_by_side(image, gt, preds, labels=labels, threshold=threshold)
        name = Path(sample.filepath).stem + ".png"
        if name in used:
            name = f"{Path(sample.filepath).stem}-{sample.id}.png"
        used.add(name)
        written.append(save_side_by_side(out_dir / name, picture))
    return written
