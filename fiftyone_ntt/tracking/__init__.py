"""Tracks in videos (docs/method.md §17): No Time to Train detects on keyframes, a
:class:`~fiftyone_ntt.tracking.protocol.Propagator` (SAM 2's video memory,
:mod:`fiftyone_ntt.models.sam2.video`) carries each keyframe detection through the frames up to
the next keyframe, and :class:`~fiftyone_ntt.tracking.tracks.TrackBook` keeps the identities.
No FiftyOne here: the adapter is :mod:`fiftyone_ntt.fiftyone.runs.video_loop`."""

from fiftyone_ntt.tracking.loop import FrameFailure, TrackedFrame, track_video
from fiftyone_ntt.tracking.metrics import count_id_switches
from fiftyone_ntt.tracking.protocol import Propagator
from fiftyone_ntt.tracking.tracks import (
    Track,
    TrackBook,
    check_keyframe_every,
    check_max_objects,
    mask_iou,
)

__all__ = [
    "FrameFailure",
    "Propagator",
    "Track",
    "TrackBook",
    "TrackedFrame",
    "check_keyframe_every",
    "check_max_objects",
    "count_id_switches",
    "mask_iou",
    "track_video",
]
