"""A tracking metric where ground truth has instance ids: ID switches (docs/method.md §17.4).

Computed here (CLEAR-MOT's definition, without a new dependency): on each frame, ground-truth
instances and predicted tracks of the same label are matched one to one by mask IoU at least
``iou_threshold`` (greedy, highest IoU first). An ID switch is counted when a ground-truth
instance is matched to a track other than the one it was last matched to.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from fiftyone_ntt.tracking.tracks import mask_iou

__all__ = ["count_id_switches", "match_frame"]

#: One frame's instances: ``(instance_or_track_id, label, full-image bool mask)``.
Instances = Sequence[tuple[object, str, np.ndarray]]


def match_frame(
    truth: Instances, predicted: Instances, iou_threshold: float = 0.5
) -> dict[object, object]:
    """Ground-truth id -> matched predicted track id on one frame."""
    if not truth or not predicted:
        return {}
    iou = mask_iou(np.stack([m for *_, m in truth]), np.stack([m for *_, m in predicted]))
    same = np.array([[t[1] == p[1] for p in predicted] for t in truth])
    iou = np.where(same, iou, 0.0)
    pairs = sorted((-float(iou[g, p]), g, p) for g, p in zip(*np.nonzero(iou >= iou_threshold)))
    used_truth: set[int] = set()
    used_pred: set[int] = set()
    matches: dict[object, object] = {}
    for _, g, p in pairs:
        if g in used_truth or p in used_pred:
            continue
        used_truth.add(g)
        used_pred.add(p)
        matches[truth[g][0]] = predicted[p][0]
    return matches


def count_id_switches(
    frames: Iterable[tuple[Instances, Instances]], iou_threshold: float = 0.5
) -> dict[str, int]:
    """ID switches over the frames of one video, in order.

    Args:
        frames: ``(truth, predicted)`` per frame, each a list of ``(id, label, mask)``.
        iou_threshold: the least mask IoU of a match.

    Returns:
        ``{"id_switches", "matches", "truth_instances"}``: switches, matched pairs over all
        frames, and instances of ground truth over all frames.
    """
    last: dict[object, object] = {}
    switches = matched = instances = 0
    for truth, predicted in frames:
        instances += len(truth)
        for truth_id, track_id in match_frame(truth, predicted, iou_threshold).items():
            matched += 1
            if truth_id in last and last[truth_id] != track_id:
                switches += 1
            last[truth_id] = track_id
    return {"id_switches": switches, "matches": matched, "truth_instances": instances}
