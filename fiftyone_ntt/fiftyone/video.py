"""Video datasets, frame by frame: decode frames and read video metadata, references from
frame labels, evaluation on frame-level ground truth. Segmenting the frames is
:func:`fiftyone_ntt.fiftyone.segment` on a video collection (the loop:
:mod:`~fiftyone_ntt.fiftyone.video_runner`).

Frames are decoded with OpenCV (``cv2.VideoCapture``), whose ``opencv-python-headless`` wheel
bundles FFmpeg's libraries (FiftyOne itself depends on that wheel): no system ``ffmpeg`` or
``ffprobe`` is needed, and video metadata is read the same way (:func:`video_metadata`).

Frame numbers are FiftyOne's: 1-based. Each frame's predictions are a ``Detections`` with
instance masks and the run's fingerprint (``ntt_run``): a frame holding it is done and skipped
on the next run (resume per frame); frame fields holding labels of something else are never
overwritten unless asked.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

__all__ = [
    "VideoDecodeError",
    "check_frame_references",
    "collect_frame_instances",
    "evaluate_frames",
    "frame_references",
    "iter_frames",
    "segment_frames",
    "video_metadata",
]


class VideoDecodeError(ValueError):
    """A video file that OpenCV's bundled FFmpeg cannot open."""


def _open(path: str) -> Any:
    import cv2

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise VideoDecodeError(
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


def _tagged_frame_labels(
    collection: Any, field: str, tags: Sequence[str]
) -> list[tuple[str, dict[int, list[Any]]]]:
    """``[(filepath, {frame number: [labels tagged with one of tags]})]`` per video."""
    out = []
    for sample in collection.select_fields(f"frames.{field}"):
        tagged = {}
        for number, frame in sample.frames.items():
            labels = frame[field] if frame.has_field(field) else None
            found = [
                d for d in (labels.detections if labels else []) if set(d.tags or []) & set(tags)
            ]
            if found:
                tagged[number] = found
        if tagged:
            out.append((sample.filepath, tagged))
    return out


def check_frame_references(
    collection: Any,
    gt_field: str | None,
    tag: str = "ntt:ref",
    neg_tag: str = "ntt:neg",
    classes: Sequence[str] | None = None,
) -> tuple[dict[str, dict[str, int]], list[tuple[str, str]]]:
    """The build check of a video collection (as :func:`~.bank_inputs.validate_build`):
    ``({class: {"references", "box_only", "negatives"}}, [(parameter, problem)])`` of the
    tagged labels of the frame field ``gt_field`` (``frames.`` prefix optional)."""
    import fiftyone as fo

    field = _frame_field(collection, gt_field or "")
    schema = collection.get_frame_field_schema() or {}
    if not field or getattr(schema.get(field), "document_type", None) is not fo.Detections:
        frame_fields = sorted(
            f"frames.{k}"
            for k, v in schema.items()
            if getattr(v, "document_type", None) is fo.Detections
        )
        return {}, [
            (
                "gt_field",
                f"ground-truth field {gt_field!r} is not a frame-level Detections field of "
                f"this video dataset; choose one of {frame_fields}",
            )
        ]
    summary: dict[str, dict[str, int]] = {}
    both = []
    for _, frames in _tagged_frame_labels(collection, field, (tag, neg_tag)):
        for labels in frames.values():
            for det in labels:
                row = summary.setdefault(
                    str(det.label), {"references": 0, "box_only": 0, "negatives": 0}
                )
                if tag in det.tags and neg_tag in det.tags:
                    both.append(str(det.id))
                elif tag in det.tags:
                    row["references"] += 1
                    row["box_only"] += int(det.mask is None)
                else:
                    row["negatives"] += 1
    summary = {c: v for c, v in summary.items() if v["references"]}
    problems = []
    if classes:
        missing = [c for c in classes if c not in summary]
        if missing:
            problems.append(
                (
                    "classes",
                    f"classes {missing} have no reference tagged {tag!r} in frames.{field}; "
                    "tag at least one instance of each, or leave them out",
                )
            )
        summary = {c: v for c, v in summary.items() if c in classes}
    elif not summary:
        problems.append(
            (
                "gt_field",
                f"no label of frames.{field} is tagged {tag!r} in this view; tag a few frame "
                "labels as references (or build the bank on an image dataset)",
            )
        )
    if both:
        problems.append(
            ("fields", f"frame labels {both[:5]} are tagged both {tag!r} and {neg_tag!r}")
        )
    return summary, problems


def collect_frame_instances(
    collection: Any,
    gt_field: str,
    tag: str = "ntt:ref",
    neg_tag: str = "ntt:neg",
    classes: Sequence[str] | None = None,
) -> tuple[list[Any], list[Any], dict[str, str]]:
    """``(references, negatives, {label id: "frames.<field>"})`` of the tagged labels of a
    frame-level ``Detections`` field, decoding only the frames that hold them (as
    :func:`~.bank_inputs.collect_instances` for images)."""
    from .labels import detection_to_reference

    _check_video(collection)
    field = _frame_field(collection, gt_field)
    wanted = None if not classes else set(classes)
    positives, negatives, where = [], [], {}
    for path, tagged in _tagged_frame_labels(collection, field, (tag, neg_tag)):
        for number, image in iter_frames(path, tagged):
            for det in tagged[number]:
                is_pos = tag in det.tags and (wanted is None or det.label in wanted)
                if not is_pos and neg_tag not in det.tags:
                    continue
                (positives if is_pos else negatives).append(detection_to_reference(det, image))
                where[str(det.id)] = f"frames.{field}"
    return positives, negatives, where


def frame_references(collection: Any, gt_field: str, tag: str = "ntt:ref") -> list[Any]:
    """:class:`~fiftyone_ntt.types.Reference` objects of the ``tag``-ged labels of a frame-level
    ``Detections`` field (``gt_field`` or ``frames.<gt_field>``), decoding only the frames that
    hold them. Build a bank with :func:`fiftyone_ntt.fiftyone.build_bank` (which does this
    on a video collection) or :func:`fiftyone_ntt.memory_bank.build_memory_bank`.

    Raises:
        ValueError: not a video collection, or no tagged label in ``frames.<gt_field>``.
    """
    references, _, _ = collect_frame_instances(collection, gt_field, tag, neg_tag=tag)
    if not references:
        raise ValueError(
            f"no label of frames.{_frame_field(collection, gt_field)} is tagged {tag!r}; tag "
            "a few frame labels as references (or build the bank from image references)"
        )
    return references


def segment_frames(collection: Any, bank: Any, out_field: str = "ntt", **kwargs: Any) -> dict:
    """Segment every frame of a video collection into ``frames.<out_field>``:
    :func:`fiftyone_ntt.fiftyone.segment` (same arguments and summary, counted in frames),
    refusing a collection that does not hold videos."""
    from .segment import segment

    _check_video(collection)
    kwargs.setdefault("progress", None)
    return segment(collection, bank, out_field, **kwargs)


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
