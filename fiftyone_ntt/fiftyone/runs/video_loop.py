"""The loop of one segmentation run over the frames of a video collection, once its claim is
held: register the run, fill video metadata and frame documents, decode the frames still to
do, predict one frame at a time, write ``frames.<field>`` every ``batch_size`` frames,
heartbeat, record the state at the start and at the end.

The image path (:mod:`~fiftyone_ntt.fiftyone.runs.image_loop`) and this one share the run plan, the
claim, the run record and the resume rule: a frame whose ``Detections`` carry this run's
fingerprint (``ntt_run``) is done. Frames are decoded with OpenCV's bundled FFmpeg
(:mod:`~fiftyone_ntt.fiftyone.dataset.media`), no system ``ffmpeg``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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
from fiftyone_ntt.fiftyone.runs.image_loop import RunPlan, predict_retrying_oom, run_outcome
from fiftyone_ntt.fiftyone.runs.output_field import reload_schema
from fiftyone_ntt.fiftyone.runs.record import record_run

__all__ = [
    "check_video_request",
    "frame_counts",
    "is_video",
    "run_video_segmentation",
]


def is_video(collection: Any) -> bool:
    """Whether ``collection`` holds videos (a video dataset, or a view of one)."""
    return getattr(collection, "media_type", None) == "video"


def check_video_request(collection: Any, out_field: Any, shard: Any) -> Any:
    """The frame field name a video run writes (``frames.`` prefix optional in
    ``out_field``); refuse what the frame path does not do.

    Raises:
        ValueError: ``shard`` given (a video run is not split), or a clips/patches view.
    """
    if shard is not None:
        raise ValueError(
            f"shard={tuple(shard)!r}: split runs are for image datasets; segment a video "
            "collection in one run (leave shard out, num_shards=1), or segment views of "
            "different videos into different fields"
        )
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
        # cleanup=False: re-registering must not delete the predictions already written
        dataset.register_run(field, run_config, overwrite=True, cleanup=False)


def _prepare_videos(plan: RunPlan, failures: list[dict[str, Any]]) -> Any:
    """Fill missing video metadata (OpenCV, no ffprobe) and the frame documents of every
    frame; return the target view without the videos that cannot be decoded (reported)."""

    dataset, target = plan.dataset, plan.collection
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


def run_video_segmentation(plan: RunPlan, progress: Callable[[int, int], None] | None) -> dict:
    """Run the plan over the frames of the videos; return the summary (as
    :func:`~.segment.segment`, counted in frames: ``total``, ``done_before``,
    ``processed``, ``failed``; plus ``videos`` and ``references_skipped`` frames)."""

    dataset, field, segmenter = plan.dataset, plan.out_field, plan.segmenter
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
        if pending_frames:
            todo.append((sample_id, path, pending_frames))
    to_do = total - done_before
    counts = {"processed": 0, "detections": 0}
    lock = plan.lock

    def record(status: str) -> dict[str, Any]:
        summary = {
            "run_key": field,
            "out_field": FRAMES + field,
            "bank_key": plan.bank_key,
            "bank_version": plan.bank.origin.get("bank_version"),
            "status": status,
            "shard": None,
            "run_fingerprint": plan.fingerprint,
            "unit": "frames",
            "videos": len(ids),
            "references_skipped": len(references),
            **run_outcome(plan, total, done_before, counts, failures),
        }
        record_run(dataset, field, summary, None)
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
                for number, image in iter_frames(path, sorted(frames)):
                    decoded.add(number)
                    predictions, error = predict_retrying_oom(
                        segmenter,
                        image,
                        f"frame {number} of {path!r}",
                        "free memory or run on another device",
                    )
                    if error is not None:
                        fail(sample_id, path, number, error)
                    else:
                        pending[frames[number]] = predictions_to_detections(
                            predictions, **{RUN_ATTRIBUTE: plan.fingerprint}
                        )
                        counts["processed"] += 1
                        counts["detections"] += len(predictions)
                    done += 1
                    if len(pending) >= plan.batch_size:
                        flush()
                    if time.monotonic() - beat > HEARTBEAT_SECONDS:
                        lock.update(heartbeat(dataset, field, lock, None))
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
