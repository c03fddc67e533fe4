"""Video datasets, frame by frame: decode frames and read video metadata, references from
frame labels, evaluation on frame-level ground truth. Segmenting the frames is
:func:`fiftyone_ntt.fiftyone.runs.job` on a video collection (the loop:
:mod:`~fiftyone_ntt.fiftyone.runs.video_loop`).

Frames are decoded with OpenCV (``cv2.VideoCapture``), whose ``opencv-python-headless`` wheel
bundles FFmpeg's libraries (FiftyOne itself depends on that wheel): no system ``ffmpeg`` or
``ffprobe`` is needed, and video metadata is read the same way (:func:`video_metadata`).

Frame numbers are FiftyOne's: 1-based. Each frame's predictions are a ``Detections`` with
instance masks and the run's fingerprint (``ntt_run``): a frame holding it is done and skipped
on the next run (resume per frame); frame fields holding labels of something else are never
overwritten unless asked.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import fiftyone as fo
import numpy as np

__all__ = [
    "VideoDecodeError",
    "iter_frames",
    "video_metadata",
]


class VideoDecodeError(ValueError):
    """A video file that OpenCV's bundled FFmpeg cannot open."""


def _open(path: str) -> Any:
    # deferred: OpenCV loads only when this runs
    import cv2

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise VideoDecodeError(
            f"cannot decode video {path!r} (missing file, or a codec OpenCV's bundled FFmpeg "
            "does not read); re-encode it, e.g. to H.264 MP4 or VP9 WebM"
        )
    return capture


def video_metadata(path: str) -> Any:
    """``fo.VideoMetadata`` of a video file read by OpenCV (no ffprobe needed).

    ``total_frame_count`` is counted by decoding the stream (frames in decode order, what
    :func:`iter_frames` numbers): OpenCV's own count is the duration times a nominal rate,
    wrong for a variable frame rate (too few frames, or too many); ``duration`` is the last
    frame's timestamp plus one frame at the average rate.
    """

    # deferred: OpenCV loads only when this runs
    import cv2

    capture = _open(path)
    try:
        rate = float(capture.get(cv2.CAP_PROP_FPS)) or None
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        frames, last_ms = 0, 0.0
        while capture.grab():  # demux and decode, no colour conversion
            frames += 1
            last_ms = float(capture.get(cv2.CAP_PROP_POS_MSEC))
        duration = frames / rate if rate else None
        if frames > 1 and last_ms > 0:
            duration = last_ms / 1000 * frames / (frames - 1)
        return fo.VideoMetadata(
            size_bytes=os.path.getsize(path),
            frame_width=width,
            frame_height=height,
            frame_rate=rate,
            total_frame_count=frames,
            duration=duration,
        )
    finally:
        capture.release()


def iter_frames(path: str, frame_numbers: Sequence[int] | None = None) -> Iterator[tuple[int, Any]]:
    """``(frame_number, RGB uint8 (H, W, 3))`` for the frames of a video, in order.

    Args:
        path: the video file.
        frame_numbers: only these 1-based frames (decoding still reads through the others,
            which is what sequential codecs need); default all.
    """

    wanted = None if frame_numbers is None else set(int(n) for n in frame_numbers)
    last = None if wanted is None else max(wanted, default=0)
    capture = _open(path)
    try:
        number = 0
        while last is None or number < last:
            ok, bgr = capture.read()
            if not ok:
                break
            number += 1
            if wanted is None or number in wanted:
                yield number, np.ascontiguousarray(bgr[:, :, ::-1])
    finally:
        capture.release()


def check_video_collection(collection: Any) -> None:
    if getattr(collection, "media_type", None) != "video":
        raise ValueError(
            f"{collection._root_dataset.name!r} holds {collection.media_type} samples, not "
            "videos; use fiftyone_ntt.fiftyone.runs.job for images"
        )


def ensure_video_metadata(sample: Any) -> Any:
    if sample.metadata is None or not getattr(sample.metadata, "frame_width", None):
        sample.metadata = video_metadata(sample.filepath)
        sample.save()
    return sample.metadata


#: FiftyOne's prefix of frame-level fields.
FRAMES = "frames."


def frame_field_name(field: str | None) -> str | None:
    """``"frames.ntt"`` → ``"ntt"``; a name without the prefix is returned as it is."""
    if field and field.startswith(FRAMES):
        return field[len(FRAMES) :]
    return field
