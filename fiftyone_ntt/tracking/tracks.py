"""Track bookkeeping (docs/method.md §17.2): which keyframe detection continues which track.

At a keyframe, each detection is matched to a live track of the same class whose latest mask
overlaps it with mask IoU at least ``iou_threshold`` (greedy, highest IoU first; ties by
track id then detection order, so the result is deterministic). A matched detection keeps the
track's id; an unmatched one starts a new track (ids count up from 1 per video). A live track
that no detection matches is *missed* on that keyframe; after ``max_missed`` keyframes in a row
without a match it ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fiftyone_ntt.types import Predictions

__all__ = ["Track", "TrackBook", "check_keyframe_every", "check_max_objects", "mask_iou"]


def check_keyframe_every(value: Any) -> int:
    """``value`` as a positive integer, or a clear error."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(
            f"keyframe_every={value!r} must be a positive integer: No Time to Train runs on "
            "every K-th frame and SAM 2 carries its detections through the frames between "
            "(1: every frame, as without tracking; e.g. 5 or 10)"
        )
    return int(value)


def check_max_objects(value: Any) -> int:
    """``value`` as a positive integer, or a clear error."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(
            f"max_objects={value!r} must be a positive integer: tracks SAM 2's video memory "
            "carries at a time (its memory grows with each, see docs/benchmarks.md; e.g. 16)"
        )
    return int(value)


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)`` IoU of ``(N, H, W)`` and ``(M, H, W)`` bool masks (0 where both are empty)."""
    a = np.asarray(a, dtype=bool).reshape(len(a), -1).astype(np.float32)
    b = np.asarray(b, dtype=bool).reshape(len(b), -1).astype(np.float32)
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


@dataclass
class Track:
    """One object across frames.

    Attributes:
        track_id: its id in the video (1, 2, ...), written as ``Detection.index``.
        class_id: index into the bank's classes.
        score: the score of its latest keyframe detection.
        mask: its latest full-image mask (detected or propagated).
        first_frame, last_frame: frame numbers of its first and latest appearance.
        frames: on how many frames it was drawn.
        detected: on how many keyframes it was detected.
        missed: keyframes in a row on which no detection matched it.
        since_detection: frames since its latest detection (for the score decay).
    """

    track_id: int
    class_id: int
    score: float
    mask: np.ndarray
    first_frame: int
    last_frame: int
    frames: int = 1
    detected: int = 1
    missed: int = 0
    since_detection: int = 0
    ended: bool = False

    def summary(self, class_names: tuple[str, ...]) -> dict[str, Any]:
        return {
            "track_id": self.track_id,
            "label": class_names[self.class_id] if class_names else str(self.class_id),
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
            "frames": self.frames,
            "keyframes_detected": self.detected,
        }


@dataclass
class TrackBook:
    """The tracks of one video and the matching rule.

    Args:
        iou_threshold: the least mask IoU for a detection to continue a track.
        max_missed: keyframes in a row without a match after which a track ends.
    """

    iou_threshold: float = 0.5
    max_missed: int = 1
    tracks: list[Track] = field(default_factory=list)
    next_id: int = 1

    def __post_init__(self) -> None:
        if not 0.0 < float(self.iou_threshold) <= 1.0:
            raise ValueError(
                f"iou_threshold={self.iou_threshold!r} must be in (0, 1]: the least mask IoU "
                "for a keyframe detection to continue a track (e.g. 0.5)"
            )
        if (
            isinstance(self.max_missed, bool)
            or int(self.max_missed) != self.max_missed
            or (self.max_missed < 1)
        ):
            raise ValueError(
                f"max_missed={self.max_missed!r} must be a positive integer: keyframes in a "
                "row without a match after which a track ends (e.g. 1 or 2)"
            )

    @property
    def live(self) -> list[Track]:
        return [t for t in self.tracks if not t.ended]

    def match(self, predictions: Predictions, frame_number: int) -> np.ndarray:
        """Ids for the keyframe ``predictions`` (in their order), starting tracks as needed;
        live tracks not matched are missed (and end after ``max_missed``)."""
        live = self.live
        n = len(predictions)
        ids = np.zeros(n, dtype=np.int64)
        taken: set[int] = set()
        if n and live:
            iou = mask_iou(predictions.masks, np.stack([t.mask for t in live]))
            same = predictions.class_ids[:, None] == np.array([t.class_id for t in live])[None]
            iou = np.where(same, iou, 0.0)
            pairs = [
                (-float(iou[d, k]), live[k].track_id, d, k)
                for d, k in zip(*np.nonzero(iou >= self.iou_threshold))
            ]
            used_tracks: set[int] = set()
            for _, _, d, k in sorted(pairs):
                if d in taken or k in used_tracks:
                    continue
                taken.add(d)
                used_tracks.add(k)
                ids[d] = live[k].track_id
                self._detected(live[k], predictions, d, frame_number)
            for k, track in enumerate(live):
                if k not in used_tracks:
                    track.missed += 1
                    if track.missed >= self.max_missed:
                        track.ended = True
        elif live:
            for track in live:
                track.missed += 1
                if track.missed >= self.max_missed:
                    track.ended = True
        for d in range(n):
            if d not in taken:
                ids[d] = self._start(predictions, d, frame_number)
        return ids

    def _detected(self, track: Track, predictions: Predictions, d: int, frame: int) -> None:
        track.score = float(predictions.scores[d])
        track.mask = predictions.masks[d]
        track.last_frame = frame
        track.frames += 1
        track.detected += 1
        track.missed = 0
        track.since_detection = 0

    def _start(self, predictions: Predictions, d: int, frame: int) -> int:
        track = Track(
            track_id=self.next_id,
            class_id=int(predictions.class_ids[d]),
            score=float(predictions.scores[d]),
            mask=predictions.masks[d],
            first_frame=frame,
            last_frame=frame,
        )
        self.next_id += 1
        self.tracks.append(track)
        return track.track_id

    def by_id(self, track_id: int) -> Track:
        for track in self.tracks:
            if track.track_id == track_id:
                return track
        raise KeyError(track_id)
