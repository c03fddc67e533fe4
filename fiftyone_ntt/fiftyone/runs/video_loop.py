"""The loop of one segmentation run over the frames of a video collection, once its claim is
held: register the run, fill video metadata and frame documents, decode the frames still to
do, predict one frame at a time, write ``frames.<field>`` every ``batch_size`` frames,
heartbeat, record the state at the start and at the end.

The image path (:mod:`~fiftyone_ntt.fiftyone.runs.image_loop`) and this one share the run plan, the
claim, the run record and the resume rule: a frame whose ``Detections`` carry this run's
fingerprint (``ntt_run``) is done. Frames are decoded with OpenCV's bundled FFmpeg
(:mod:`~fiftyone_ntt.fiftyone.dataset.media`), no system ``ffmpeg``.

A split run (``shard`` ``(i, n)``, :mod:`~fiftyone_ntt.fiftyone.runs.shards`) takes the
``i``-th of ``n`` ranges of the sorted video ids: a shard is a set of whole videos, so the
tracks of a video are made by one worker, and the shards together write what an unsplit run
writes.

With ``keyframe_every`` K > 1 (:class:`Tracking`) a video is one unit: No Time to Train runs
on every K-th frame and SAM 2's video memory carries its detections between
(:func:`fiftyone_ntt.tracking.track_video`, docs/method.md §17); each detection gets its track
id as ``Detection.index`` and ``ntt_track_source`` (``"detected"`` or ``"propagated"``); the
summary gets ``tracking`` (per video: its tracks and their frame spans). Resume is per video:
a video with any frame not done is redone whole (its tracks need every frame).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import fiftyone as fo

from fiftyone_ntt.fiftyone.banks.index import get_bank_info, load_bank
from fiftyone_ntt.fiftyone.dataset.fields import RUN_ATTRIBUTE
from fiftyone_ntt.fiftyone.dataset.labels import predictions_to_detections
from fiftyone_ntt.fiftyone.dataset.media import (
    FRAMES,
    VideoDecodeError,
    frame_field_name,
    iter_frames,
    video_metadata,
)
from fiftyone_ntt.fiftyone.runs.claims import HEARTBEAT_SECONDS, heartbeat, schema_turn
from fiftyone_ntt.fiftyone.runs.config import run_config_for
from fiftyone_ntt.fiftyone.runs.image_loop import (
    RunPlan,
    free_memory,
    is_out_of_memory,
    predict_retrying_oom,
    register_shared_run,
    run_outcome,
)
from fiftyone_ntt.fiftyone.runs.output_field import reload_schema
from fiftyone_ntt.fiftyone.runs.record import record_run
from fiftyone_ntt.fiftyone.runs.shards import shard_view
from fiftyone_ntt.tracking import FrameFailure, TrackBook, track_video

__all__ = [
    "TRACK_SOURCE_ATTRIBUTE",
    "Tracking",
    "check_video_request",
    "frame_counts",
    "is_video",
    "run_video_segmentation",
]


#: The attribute of a frame detection saying whether No Time to Train found it on a keyframe
#: (``"detected"``) or SAM 2 carried it from one (``"propagated"``).
TRACK_SOURCE_ATTRIBUTE = "ntt_track_source"
#: Track spans listed per video in a run's summary at most (the count is always there).
MAX_LISTED_TRACKS = 200


@dataclass(frozen=True)
class Tracking:
    """How a video run tracks: No Time to Train on every ``keyframe_every``-th frame, the
    ``propagator`` carrying at most ``max_objects`` tracks between keyframes."""

    keyframe_every: int
    max_objects: int
    propagator: Any

    def identity(self) -> dict[str, Any]:
        """What a run records (and fingerprints) of its tracking."""
        return {
            "keyframe_every": self.keyframe_every,
            "max_objects": self.max_objects,
            "propagator": dict(getattr(self.propagator, "identity", {}) or {}),
        }


def is_video(collection: Any) -> bool:
    """Whether ``collection`` holds videos (a video dataset, or a view of one)."""
    return getattr(collection, "media_type", None) == "video"


def check_video_request(collection: Any, out_field: Any) -> Any:
    """The frame field name a video run writes (``frames.`` prefix optional in
    ``out_field``); refuse what the frame path does not do.

    Raises:
        ValueError: a clips/patches view.
    """
    if getattr(collection, "_is_clips", False) or getattr(collection, "_is_patches", False):
        raise ValueError(
            "a clips or patches view of a video dataset cannot be segmented; segment the "
            "dataset or a view of whole videos (e.g. dataset.select(ids)), or its frames as "
            "images: dataset.to_frames(sample_frames=True)"
        )
    return frame_field_name(out_field) if isinstance(out_field, str) else out_field


def _register(plan: RunPlan) -> None:

    dataset, field = plan.dataset, plan.out_field
    run_config = run_config_for(plan, FRAMES + field, media_type="video")
    with schema_turn(dataset):
        reload_schema(dataset)
        if not dataset.has_frame_field(field):
            dataset.add_frame_field(
                field, fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections
            )
        register_shared_run(plan, field, run_config)


def _prepare_videos(plan: RunPlan, failures: list[dict[str, Any]]) -> Any:
    """Fill missing video metadata (OpenCV, no ffprobe) and the frame documents of every
    frame; return the target view without the videos that cannot be decoded (reported)."""

    dataset, target = plan.dataset, plan.collection
    if plan.shard is not None:
        target = shard_view(target, plan.shard)  # whole videos
    ids, paths, counts = target.values(["id", "filepath", "metadata.total_frame_count"])
    readable, metadata = [], {}
    for sample_id, path, count in zip(ids, paths, counts):
        if count:
            readable.append(sample_id)
            continue
        try:
            found = video_metadata(path)
        except (ValueError, OSError) as error:
            failures.append({"sample_id": sample_id, "filepath": path, "error": str(error)})
            continue
        if not found.total_frame_count:
            failures.append(
                {
                    "sample_id": sample_id,
                    "filepath": path,
                    "error": f"video {path!r} has no frame OpenCV can count; re-encode it",
                }
            )
            continue
        metadata[sample_id] = found
        readable.append(sample_id)
    if metadata:
        dataset.set_values("metadata", metadata, key_field="id")
    # a select on the target keeps its stages (e.g. a filter on frames)
    target = target.select(readable, ordered=True) if len(readable) < len(ids) else target
    if readable:
        # empty frame documents for frames that have none, existing ones untouched
        dataset._ensure_frames(view=dataset.select(readable))
    return target


def _reference_frames(plan: RunPlan, target: Any) -> set[str]:
    """Ids of the frames holding one of the bank's references (frame-level ground truth)."""
    gt = plan.gt_field or ""
    if not (plan.skip_references and gt.startswith(FRAMES)):
        return set()
    if not plan.dataset.has_frame_field(frame_field_name(gt)):
        return set()
    wanted = set(plan.bank.reference_ids)
    frame_ids, label_ids = target.values(["frames.id", f"{gt}.detections.id"])
    return {
        frame_id
        for frames, labels in zip(frame_ids, label_ids)
        for frame_id, ids in zip(frames, labels)
        if ids and wanted.intersection(ids)
    }


def run_video_segmentation(
    plan: RunPlan,
    progress: Callable[[int, int], None] | None,
    tracking: Tracking | None = None,
) -> dict:
    """Run the plan over the frames of the videos; return the summary (as
    :func:`~.segment.segment`, counted in frames: ``total``, ``done_before``,
    ``processed``, ``failed``; plus ``videos`` and ``references_skipped`` frames; with
    ``tracking``, also ``tracking``: its settings, ``keyframes`` segmented and per video
    (by sample id) ``tracks`` and the first :data:`MAX_LISTED_TRACKS` ``spans``)."""

    dataset, field = plan.dataset, plan.out_field
    failures: list[dict[str, Any]] = []
    _register(plan)
    target = _prepare_videos(plan, failures)
    references = _reference_frames(plan, target)
    ids, paths, frame_ids, numbers, marks = target.values(
        ["id", "filepath", "frames.id", "frames.frame_number", f"frames.{field}.{RUN_ATTRIBUTE}"]
    )
    todo: list[tuple[str, str, dict[int, str]]] = []
    total = done_before = 0
    for sample_id, path, f_ids, f_numbers, f_marks in zip(ids, paths, frame_ids, numbers, marks):
        pending_frames = {}
        for frame_id, number, mark in zip(f_ids, f_numbers, f_marks):
            if frame_id in references:
                continue
            total += 1
            if mark == plan.fingerprint and not plan.overwrite:
                done_before += 1
            else:
                pending_frames[int(number)] = frame_id
        if tracking is not None and pending_frames:
            # resume per video: its tracks need all its frames, redone together
            done_before -= sum(1 for i in f_ids if i not in references) - len(pending_frames)
            pending_frames = {int(n): i for i, n in zip(f_ids, f_numbers) if i not in references}
        if pending_frames:
            todo.append((sample_id, path, pending_frames))
    to_do = total - done_before
    counts = {"processed": 0, "detections": 0, "keyframes": 0}
    videos: dict[str, Any] = {}
    lock = plan.lock

    def record(status: str) -> dict[str, Any]:
        summary = {
            "run_key": field,
            "out_field": FRAMES + field,
            "bank_key": plan.bank_key,
            "bank_version": plan.bank.origin.get("bank_version"),
            "status": status,
            "shard": None if plan.shard is None else list(plan.shard),
            "run_fingerprint": plan.fingerprint,
            "unit": "frames",
            "videos": len(ids),
            "references_skipped": len(references),
            **run_outcome(plan, total, done_before, counts, failures),
        }
        if tracking is not None:
            summary["tracking"] = {
                **tracking.identity(),
                "keyframes": counts["keyframes"],
                "videos": videos,
            }
        record_run(dataset, field, summary, plan.shard)
        return summary

    record("running")
    pending: dict[str, Any] = {}

    def flush() -> None:
        if pending:
            dataset.set_values(f"{FRAMES}{field}", dict(pending), key_field="frames.id")
            pending.clear()

    def fail(sample_id: str, path: str, number: int, error: str) -> None:
        failures.append(
            {"sample_id": sample_id, "filepath": path, "frame_number": number, "error": error}
        )

    status = "interrupted"
    done = 0
    beat = time.monotonic()
    try:
        for sample_id, path, frames in todo:
            decoded: set[int] = set()
            reason = None
            try:
                for number, detections, error in _frame_outputs(
                    plan, tracking, path, frames, counts, videos, sample_id
                ):
                    decoded.add(number)
                    if number not in frames:
                        continue  # a reference frame: seen by the tracker, not written
                    if error is not None:
                        fail(sample_id, path, number, error)
                    else:
                        pending[frames[number]] = detections
                        counts["processed"] += 1
                        counts["detections"] += len(detections.detections)
                    done += 1
                    if len(pending) >= plan.batch_size:
                        flush()
                    if time.monotonic() - beat > HEARTBEAT_SECONDS:
                        lock.update(heartbeat(dataset, field, lock, plan.shard))
                        beat = time.monotonic()
                    if progress is not None:
                        progress(done, to_do)
            except VideoDecodeError as error:
                reason = f"{error}; skipped"
            for number in sorted(set(frames) - decoded):
                fail(
                    sample_id,
                    path,
                    number,
                    reason
                    or f"frame {number} of {path!r} could not be decoded (the stream ends at "
                    f"frame {max(decoded, default=0)}); skipped: re-encode the video",
                )
                done += 1
                if progress is not None:
                    progress(done, to_do)
        status = "completed"
    finally:
        try:
            flush()
        finally:
            summary = record(status)
    return summary


def _frame_outputs(
    plan: RunPlan,
    tracking: Tracking | None,
    path: str,
    frames: dict[int, str],
    counts: dict[str, int],
    videos: dict[str, Any],
    sample_id: str,
):
    """``(frame_number, fo.Detections or None, error or None)`` of one video, in order:
    every wanted frame segmented on its own, or (``tracking``) all frames up to the last
    wanted one through the keyframe loop."""
    segmenter, marks = plan.segmenter, {RUN_ATTRIBUTE: plan.fingerprint}

    def detect(image: Any, number: int) -> Any:
        predictions, error = predict_retrying_oom(
            segmenter,
            image,
            f"frame {number} of {path!r}",
            "free memory or run on another device",
        )
        if error is not None:
            raise FrameFailure(error)
        return predictions

    if tracking is None:
        for number, image in iter_frames(path, sorted(frames)):
            try:
                predictions = detect(image, number)
            except FrameFailure as error:
                yield number, None, str(error)
                continue
            yield number, predictions_to_detections(predictions, **marks), None
        return

    numbered = iter_frames(path, range(1, max(frames) + 1))
    keyed = _Numbered(numbered)
    book = TrackBook()
    tracked = track_video(
        keyed,
        _KeyframeSegmenter(segmenter, detect, keyed, counts),
        _GuardedPropagator(tracking.propagator, path),
        keyframe_every=tracking.keyframe_every,
        max_objects=tracking.max_objects,
        book=book,
    )
    try:
        for frame in tracked:
            if frame.error is not None:
                yield frame.frame_number, None, frame.error
                continue
            yield frame.frame_number, _tracked_detections(frame, marks), None
    finally:
        spans = [t.summary(segmenter.class_names) for t in book.tracks]
        videos[sample_id] = {"tracks": len(spans), "spans": spans[:MAX_LISTED_TRACKS]}


class _Numbered:
    """The frame iterator, remembering the number of the frame last handed out."""

    def __init__(self, frames: Any) -> None:
        self.frames, self.number = frames, 0

    def __iter__(self):
        for number, image in self.frames:
            self.number = number
            yield number, image


class _KeyframeSegmenter:
    """The segmenter as the keyframe loop calls it: out-of-memory retried once, then a
    :class:`~fiftyone_ntt.tracking.FrameFailure`; keyframes counted."""

    def __init__(self, segmenter: Any, detect: Callable, frames: _Numbered, counts: dict) -> None:
        self.class_names = segmenter.class_names
        self.detect, self.frames, self.counts = detect, frames, counts

    def predict(self, image: Any) -> Any:
        self.counts["keyframes"] += 1
        return self.detect(image, self.frames.number)


class _GuardedPropagator:
    """The propagator with out-of-memory turned into a frame failure (the track goes on from
    the next frame)."""

    def __init__(self, propagator: Any, path: str) -> None:
        self.propagator, self.path = propagator, path
        self.max_objects = propagator.max_objects
        self.identity = getattr(propagator, "identity", {})

    def start_video(self) -> None:
        self.propagator.start_video()

    def end_video(self) -> None:
        self.propagator.end_video()

    def seed(self, image: Any, masks: Any) -> None:
        self._guard(self.propagator.seed, image, masks)

    def propagate(self, image: Any) -> Any:
        return self._guard(self.propagator.propagate, image)

    def _guard(self, call: Callable, *args: Any) -> Any:
        try:
            return call(*args)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            free_memory()
            raise FrameFailure(
                f"out of memory propagating tracks in {self.path!r} ({error}); skipped: "
                "lower max_objects or run on another device"
            ) from error


def _tracked_detections(frame: Any, marks: dict[str, Any]) -> Any:
    """``fo.Detections`` of a tracked frame: ``index`` = track id, ``ntt_track_source``."""
    detections = []
    for k, (track_id, source) in enumerate(zip(frame.track_ids.tolist(), frame.sources)):
        for detection in predictions_to_detections(frame.predictions[[k]]).detections:
            detection.index = int(track_id)
            detection[TRACK_SOURCE_ATTRIBUTE] = source
            detections.append(detection)
    return fo.Detections(detections=detections, **marks)


def frame_counts(collection: Any, bank_key: str | None, skip_references: bool = True) -> dict:
    """What a run would segment, before it runs: ``videos``, ``total`` frames (from the
    video metadata where known, else the frame documents), ``references`` (frames holding
    one of the bank's references, skipped when ``skip_references``), ``to_segment``,
    ``unit`` ``"frames"``."""

    counts, stored = collection.values(["metadata.total_frame_count", "frames.id"])
    total = sum(int(c) if c else len(f or []) for c, f in zip(counts, stored))
    skipped = 0
    if skip_references and bank_key:
        dataset = collection._root_dataset
        gt = get_bank_info(dataset, bank_key).get("gt_field") or ""
        if gt.startswith(FRAMES) and dataset.has_frame_field(frame_field_name(gt)):
            wanted = set(load_bank(dataset, bank_key).reference_ids)
            labels = collection.values(f"{gt}.detections.id")
            skipped = sum(
                1 for frames in labels for ids in frames or [] if ids and wanted.intersection(ids)
            )
    return {
        "videos": len(counts),
        "total": total,
        "references": skipped,
        "to_segment": max(0, total - skipped),
        "unit": "frames",
    }
