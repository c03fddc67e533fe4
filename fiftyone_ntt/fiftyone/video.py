"""Video datasets, frame by frame: decode frames, segment each one with a memory bank, write
``frames.<field>``, resume per frame, references from frames, evaluation on frame-level ground
truth.

Frames are decoded with OpenCV (``cv2.VideoCapture``), whose ``opencv-python-headless`` wheel
bundles FFmpeg's libraries (FiftyOne itself depends on that wheel): no system ``ffmpeg`` or
``ffprobe`` is needed, and video metadata is read the same way (:func:`video_metadata`).

Frame numbers are FiftyOne's: 1-based. Each frame's predictions are a ``Detections`` with
instance masks and the attribute ``ntt_bank`` (the bank's fingerprint): a frame whose field
holds this bank's predictions is done and skipped on the next run (resume per frame); frames
holding labels of something else are never overwritten unless asked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

__all__ = [
    "evaluate_frames",
    "frame_references",
    "iter_frames",
    "segment_frames",
    "video_metadata",
]


def _open(path: str) -> Any:
    import cv2

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(
            f"cannot decode video {path!r} (missing file, or a codec OpenCV's bundled FFmpeg "
            "does not read); re-encode it, e.g. to H.264 MP4 or VP9 WebM"
        )
    return capture


def video_metadata(path: str) -> Any:
    """``fo.VideoMetadata`` of a video file read by OpenCV (no ffprobe needed)."""
    import os

    import cv2
    import fiftyone as fo

    capture = _open(path)
    try:
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        rate = float(capture.get(cv2.CAP_PROP_FPS)) or None
        return fo.VideoMetadata(
            size_bytes=os.path.getsize(path),
            frame_width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            frame_height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            frame_rate=rate,
            total_frame_count=frames,
            duration=frames / rate if rate else None,
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


def _check_video(collection: Any) -> None:
    if getattr(collection, "media_type", None) != "video":
        raise ValueError(
            f"{collection._root_dataset.name!r} holds {collection.media_type} samples, not "
            "videos; use fiftyone_ntt.fiftyone.segment for images"
        )


def _frame_field(collection: Any, field: str) -> str:
    name = field[len("frames.") :] if field.startswith("frames.") else field
    return name


def _ensure_metadata(sample: Any) -> Any:
    if sample.metadata is None or not getattr(sample.metadata, "frame_width", None):
        sample.metadata = video_metadata(sample.filepath)
        sample.save()
    return sample.metadata


def frame_references(collection: Any, gt_field: str, tag: str = "ntt:ref") -> list[Any]:
    """:class:`~fiftyone_ntt.types.Reference` objects of the ``tag``-ged labels of a frame-level
    ``Detections`` field (``gt_field`` or ``frames.<gt_field>``), decoding only the frames that
    hold them. Build a bank with :func:`fiftyone_ntt.memory_bank.build_memory_bank`.

    Raises:
        ValueError: not a video collection, or no tagged label in ``frames.<gt_field>``.
    """
    from .labels import detection_to_reference

    _check_video(collection)
    field = _frame_field(collection, gt_field)
    references = []
    for sample in collection:
        tagged = {
            number: [d for d in (frame[field].detections if frame[field] else []) if tag in d.tags]
            for number, frame in sample.frames.items()
            if frame.has_field(field)
        }
        tagged = {n: dets for n, dets in tagged.items() if dets}
        for number, image in iter_frames(sample.filepath, tagged):
            references += [detection_to_reference(d, image) for d in tagged[number]]
    if not references:
        raise ValueError(
            f"no label of frames.{field} is tagged {tag!r}; tag a few frame labels as "
            "references (or build the bank from image references)"
        )
    return references


def segment_frames(
    collection: Any,
    bank: Any,
    out_field: str = "ntt",
    *,
    config: Any = None,
    encoder: Any = None,
    proposer: Any = None,
    overwrite: bool = False,
    save_every: int = 10,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, int]:
    """Segment every frame of a video collection and write ``frames.<out_field>``.

    Args:
        collection: a video dataset or view.
        bank: a :class:`~fiftyone_ntt.memory_bank.MemoryBank` (built from image or frame
            references, on any dataset).
        out_field: frame-level field to write (``frames.`` prefix optional).
        config: pipeline settings (default: the bank's stored config, else ``default``).
        encoder, proposer: models to use instead of loading the configured ones.
        overwrite: also redo frames that hold this field from another bank or source.
        save_every: frames between saves; a killed run loses at most this many frames.
        progress: ``progress(done, total)`` per frame.

    Returns:
        ``{"videos", "frames", "segmented", "skipped_done"}``.

    Raises:
        ValueError: not videos; ``out_field`` holds labels this bank did not write (and not
            ``overwrite``); or a bad video file.
    """
    from fiftyone_ntt.config import NTTConfig, get_preset
    from fiftyone_ntt.segmenter import Segmenter

    from .labels import predictions_to_detections
    from .models import get_models

    _check_video(collection)
    field = _frame_field(collection, out_field)
    if config is None:
        stored = bank.metadata.get("config")
        config = NTTConfig.from_dict(stored) if stored else get_preset("default")
    if encoder is None or proposer is None:
        loaded = get_models(config.models)
        encoder, proposer = encoder or loaded[0], proposer or loaded[1]
    segmenter = Segmenter(encoder, proposer, bank, config)
    mark = bank.fingerprint
    foreign = _foreign_frames(collection, field, mark)
    if foreign and not overwrite:
        raise ValueError(
            f"frames.{field} already holds labels not written by this bank in {foreign} "
            "frame(s); choose another output field, or pass overwrite=True to replace them"
        )
    total = sum(_frame_count(s) for s in collection)
    stats = {"videos": 0, "frames": 0, "segmented": 0, "skipped_done": 0}
    for sample in collection:
        stats["videos"] += 1
        metadata = _ensure_metadata(sample)
        done = {
            n
            for n, frame in sample.frames.items()
            if frame.has_field(field)
            and frame[field] is not None
            and getattr(frame[field], "ntt_bank", None) == mark
        }
        pending = 0
        for number, image in iter_frames(sample.filepath):
            stats["frames"] += 1
            if number in done:
                stats["skipped_done"] += 1
            else:
                predictions = segmenter.predict(image)
                sample.frames[number][field] = predictions_to_detections(predictions, ntt_bank=mark)
                stats["segmented"] += 1
                pending += 1
                if pending >= save_every:
                    sample.save()
                    pending = 0
            if progress is not None:
                progress(stats["frames"], total)
        if pending:
            sample.save()
        del metadata
    return stats


def _frame_count(sample: Any) -> int:
    metadata = sample.metadata
    count = getattr(metadata, "total_frame_count", None) if metadata is not None else None
    return int(count) if count else 0


def _foreign_frames(collection: Any, field: str, mark: str) -> int:
    """Frames whose ``field`` holds labels that this bank did not write."""
    if not collection.has_frame_field(field):
        return 0
    values = collection.values(f"frames.{field}")
    return sum(
        1
        for frames in values
        for labels in frames
        if labels is not None and getattr(labels, "ntt_bank", None) != mark
    )


def evaluate_frames(
    collection: Any, pred_field: str, gt_field: str, eval_key: str = "ntt_eval", **kwargs: Any
) -> Any:
    """COCO-style evaluation of frame-level predictions against frame-level ground truth
    (FiftyOne's ``evaluate_detections`` on ``frames.<pred>`` / ``frames.<gt>``, instance masks).

    Video metadata is filled from the files first (frame sizes, without ffprobe).

    Returns:
        FiftyOne's ``DetectionResults``; per-frame ``<eval_key>_tp/fp/fn`` are stored on the
        frames, as FiftyOne does.
    """
    _check_video(collection)
    for sample in collection:
        _ensure_metadata(sample)
    pred = _frame_field(collection, pred_field)
    gt = _frame_field(collection, gt_field)
    kwargs.setdefault("use_masks", True)
    kwargs.setdefault("compute_mAP", True)
    return collection.evaluate_detections(
        f"frames.{pred}", gt_field=f"frames.{gt}", eval_key=eval_key, **kwargs
    )
