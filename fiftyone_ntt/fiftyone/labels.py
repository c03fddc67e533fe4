"""Conversions between FiftyOne labels and the library's types.

FiftyOne's convention: relative ``[x, y, w, h]`` boxes in ``[0, 1]`` and instance masks
cropped to the box. The library's: absolute-pixel ``XYXY`` boxes (exclusive ``x2``/``y2``)
and full-image boolean masks. Only this module converts between the two.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fiftyone_ntt.types import Predictions, Reference

__all__ = [
    "detection_box_xyxy",
    "detection_full_mask",
    "detection_to_reference",
    "predictions_to_detections",
]


def detection_box_xyxy(detection: Any, width: int, height: int) -> tuple[float, ...]:
    """Absolute pixel ``XYXY`` box of a ``fo.Detection`` in a ``width x height`` image."""
    x, y, w, h = (float(v) for v in detection.bounding_box)
    return (x * width, y * height, (x + w) * width, (y + h) * height)


def detection_full_mask(detection: Any, width: int, height: int) -> np.ndarray | None:
    """Full-image ``(height, width)`` bool mask of a ``fo.Detection``, or None without mask.

    The box-cropped mask is placed (and, if its size differs from the box, resized) the way
    FiftyOne renders it (:meth:`fiftyone.core.labels.Detection.to_segmentation`).
    """
    if not detection.has_mask:
        return None
    segmentation = detection.to_segmentation(frame_size=(width, height), target=255)
    return np.asarray(segmentation.get_mask()) > 0


def detection_to_reference(detection: Any, image: np.ndarray) -> Reference:
    """A :class:`~fiftyone_ntt.types.Reference` from a ``fo.Detection`` and its RGB image.

    The label id is the reference id; a detection without mask gives a box-only reference
    (its mask is then made by SAM 2 box prompting when the bank is built).
    """
    height, width = image.shape[:2]
    mask = detection_full_mask(detection, width, height)
    if mask is not None and not mask.any():
        mask = None  # an empty drawn mask: fall back to the box
    return Reference(
        image=image,
        class_name=str(detection.label),
        ref_id=str(detection.id),
        mask=mask,
        box=detection_box_xyxy(detection, width, height),
    )


def predictions_to_detections(predictions: Predictions, **attributes: Any) -> Any:
    """``fo.Detections`` of :class:`~fiftyone_ntt.types.Predictions`.

    Each detection has ``label``, ``confidence``, a relative ``[x, y, w, h]`` box and the
    mask cropped to its box (FiftyOne's convention).

    Args:
        predictions: detections of one image.
        **attributes: extra attributes set on the ``fo.Detections`` container.
    """
    import fiftyone as fo

    height, width = predictions.image_size
    detections = []
    labels = predictions.labels
    for i in range(len(predictions)):
        x1, y1, x2, y2 = (float(v) for v in predictions.boxes[i])
        c1, r1 = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
        c2, r2 = min(width, int(np.ceil(x2))), min(height, int(np.ceil(y2)))
        if c2 <= c1 or r2 <= r1:
            continue
        detections.append(
            fo.Detection(
                label=labels[i],
                confidence=float(predictions.scores[i]),
                bounding_box=[c1 / width, r1 / height, (c2 - c1) / width, (r2 - r1) / height],
                mask=np.ascontiguousarray(predictions.masks[i, r1:r2, c1:c2]),
            )
        )
    return fo.Detections(detections=detections, **attributes)
