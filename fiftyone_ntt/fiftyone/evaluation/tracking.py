"""A tracking metric for video predictions where the ground truth has instance ids
(``Detection.index`` on frame labels): ID switches per video and in all
(:func:`fiftyone_ntt.tracking.count_id_switches`, CLEAR-MOT's definition, computed here:
docs/method.md §17.4). The per-frame COCO evaluation is
:func:`~fiftyone_ntt.fiftyone.evaluation.evaluate.evaluate_frames`."""

from __future__ import annotations

from typing import Any

import numpy as np

from fiftyone_ntt.fiftyone.dataset.labels import detection_box_xyxy, detection_full_mask
from fiftyone_ntt.fiftyone.dataset.media import FRAMES, frame_field_name
from fiftyone_ntt.tracking import count_id_switches

__all__ = ["count_track_switches"]


def _instances(labels: Any, width: int, height: int) -> list[tuple[Any, str, np.ndarray]]:
    out = []
    for detection in getattr(labels, "detections", None) or []:
        mask = detection_full_mask(detection, width, height)
        if mask is None:  # a box only: its pixels
            x1, y1, x2, y2 = (round(v) for v in detection_box_xyxy(detection, width, height))
            mask = np.zeros((height, width), dtype=bool)
            mask[max(0, y1) : y2, max(0, x1) : x2] = True
        out.append((detection.index, detection.label, mask))
    return out


def count_track_switches(
    collection: Any, pred_field: str, gt_field: str, iou_threshold: float = 0.5
) -> dict[str, Any]:
    """ID switches of the tracks in frame field ``pred_field`` against the instance ids of
    frame field ``gt_field`` (both with or without the ``frames.`` prefix).

    Returns:
        ``{"id_switches", "matches", "truth_instances", "videos": {sample_id: {...}}}``.

    Raises:
        ValueError: not a video collection, a field that is not a frame field, or ground
            truth without instance ids (``Detection.index``) or predictions without track ids.
    """
    if getattr(collection, "media_type", None) != "video":
        raise ValueError(
            f"track switches are counted on videos; {collection.name!r} holds "
            f"{collection.media_type} samples"
        )
    names = {}
    for role, field in (("predictions", pred_field), ("ground truth", gt_field)):
        name = frame_field_name(field)
        if not collection.has_frame_field(name):
            raise ValueError(
                f"{field!r} is not a frame field of {collection.name!r}; give the "
                f"{role} as frames.<field>"
            )
        names[role] = name
    pred, gt = names["predictions"], names["ground truth"]
    for role, name in (("predictions", pred), ("ground truth", gt)):
        indexes = collection.distinct(f"{FRAMES}{name}.detections.index")
        if not indexes:
            what = "instance ids" if role == "ground truth" else "track ids"
            raise ValueError(
                f"the {role} {FRAMES}{name} has no {what} (Detection.index); ID switches need "
                "both (segment with keyframe_every > 1 for tracks)"
            )
    totals = {"id_switches": 0, "matches": 0, "truth_instances": 0}
    videos: dict[str, Any] = {}
    for sample in collection.select_fields([f"{FRAMES}{pred}", f"{FRAMES}{gt}", "metadata"]):
        width = int(sample.metadata.frame_width)
        height = int(sample.metadata.frame_height)
        frames = (
            (_instances(frame[gt], width, height), _instances(frame[pred], width, height))
            for _, frame in sorted(sample.frames.items())
        )
        counted = count_id_switches(frames, iou_threshold)
        videos[sample.id] = counted
        for key in totals:
            totals[key] += counted[key]
    return {**totals, "videos": videos}
