"""The loop of one segmentation run (a whole field or one shard) once its claim is held:
register the run, read images ahead, predict in batches, write every ``batch_size``
samples, heartbeat, record the state at the start and at the end."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import fiftyone as fo
from fiftyone import ViewField as F

from fiftyone_ntt.config import NTTConfig
from fiftyone_ntt.fiftyone.curation.references import reference_sample_ids
from fiftyone_ntt.fiftyone.dataset.fields import RUN_ATTRIBUTE
from fiftyone_ntt.fiftyone.dataset.labels import predictions_to_detections
from fiftyone_ntt.fiftyone.runs.cancel import cancel_requested
from fiftyone_ntt.fiftyone.runs.claims import HEARTBEAT_SECONDS, heartbeat, schema_turn
from fiftyone_ntt.fiftyone.runs.config import run_config_for
from fiftyone_ntt.fiftyone.runs.output_field import reload_schema
from fiftyone_ntt.fiftyone.runs.record import record_run
from fiftyone_ntt.fiftyone.runs.shards import shard_view
from fiftyone_ntt.images import ImageLoadError, load_image

__all__ = ["RUN_ATTRIBUTE", "RunPlan", "is_out_of_memory", "run_segmentation"]


@dataclass
class RunPlan:
    """What one run writes and with what (resolved by :func:`~.segment.segment`)."""

    collection: Any
    dataset: Any
    bank: Any
    bank_key: str | None
    out_field: str
    gt_field: str | None
    config: NTTConfig
    segmenter: Any
    models: dict[str, Any]
    fingerprint: str
    lock: dict[str, Any]
    shard: tuple[int, int] | None
    skip_references: bool
    overwrite: bool
    batch_size: int
    batch_images: int
    prefetch: int
    started: float


def is_out_of_memory(error: BaseException) -> bool:
    """Whether an exception is an out-of-memory error of torch (CUDA or CPU allocator)."""
    # deferred: torch loads only when this runs
    import torch

    kinds = tuple(
        k
        for k in (
            getattr(torch, "OutOfMemoryError", None),
            getattr(torch.cuda, "OutOfMemoryError", None),
        )
        if isinstance(k, type)
    )
    if kinds and isinstance(error, kinds):
        return True
    return isinstance(error, (RuntimeError, MemoryError)) and (
        isinstance(error, MemoryError) or "out of memory" in str(error).lower()
    )


def free_memory() -> None:
    # deferred: torch loads only when this runs
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def predict_retrying_oom(
    segmenter: Any, image: Any, what: str, fix: str, where: str = ""
) -> tuple[Any, str | None]:
    """Predictions of one image, retried once after freeing memory when memory runs out.

    Args:
        image: ``(H, W, 3)`` uint8.
        what: the image in the message, e.g. ``"image 'a.jpg'"`` or ``"frame 3 of 'v.webm'"``.
        fix: what the user can do, after "skipped: ".
        where: appended after the size, e.g. ``" on device cuda:0"``.

    Returns:
        ``(predictions, None)``, or ``(None, reason)`` after a second out-of-memory error;
        other errors propagate.
    """
    for attempt in range(2):
        try:
            return segmenter.predict(image), None
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            free_memory()
            if attempt == 1:
                height, width = image.shape[:2]
                return None, (
                    f"out of memory on {what} ({width}x{height} px){where}, twice ({error}); "
                    f"skipped: {fix}"
                )
    return None, "unreachable"


def _register(plan: RunPlan) -> None:

    dataset, run_key = plan.dataset, plan.out_field
    run_config = run_config_for(plan, plan.out_field)
    # FiftyOne saves the dataset's list of fields as a whole: two processes adding fields at
    # once can lose one. Runs of this package take turns (and reload first).
    with schema_turn(dataset):
        reload_schema(dataset)
        if not dataset.has_sample_field(plan.out_field):
            dataset.add_sample_field(
                plan.out_field, fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections
            )
        register_shared_run(plan, run_key, run_config)


def register_shared_run(plan: RunPlan, run_key: str, run_config: Any) -> None:
    """Register the run (image or video; inside :func:`schema_turn`): the shards of one split
    share it: the first registers it, the others keep it (re-registering would reset the
    record of the shards already running)."""
    dataset = plan.dataset
    registered = run_key in dataset.list_runs() and (
        getattr(dataset.get_run_info(run_key).config, "run_fingerprint", None) == plan.fingerprint
    )
    if plan.shard is None or not registered:
        # cleanup=False: re-registering must not delete the predictions already written
        dataset.register_run(run_key, run_config, overwrite=True, cleanup=False)


def _targets(plan: RunPlan) -> tuple[Any, int]:
    """The samples of this run (its shard, references left out) and how many."""

    dataset, target = plan.dataset, plan.collection
    if plan.shard is not None:
        target = shard_view(target, plan.shard)
    gt_field = plan.bank.metadata.get("gt_field") if plan.skip_references else None
    if gt_field:
        # the whole dataset (every slice of a grouped one): a view may hide reference labels
        everything = (
            dataset.select_group_slices(_allow_mixed=True)
            if dataset.media_type == "group"
            else dataset
        )
        ref_ids = reference_sample_ids(everything, gt_field, label_ids=plan.bank.reference_ids)
        if ref_ids:
            target = target.exclude(ref_ids)
    return target, len(target)


def run_outcome(
    plan: RunPlan,
    total: int,
    done_before: int,
    counts: dict[str, int],
    failures: list[dict[str, Any]],
) -> dict[str, Any]:
    """The part of a run's summary that image and video runs share: counts in the run's unit
    (samples or frames), failures, seconds since the run started, and who holds the claim."""
    return {
        "total": total,
        "done_before": done_before,
        "processed": counts["processed"],
        "failed": len(failures),
        "failures": failures,
        "detections": counts["detections"],
        "seconds": round(time.perf_counter() - plan.started, 3),
        "pid": plan.lock["pid"],
        "host": plan.lock["host"],
    }


def run_segmentation(plan: RunPlan, progress: Callable[[int, int], None] | None) -> dict:
    """Run the plan; return the summary (see :func:`~.segment.segment`)."""

    # deferred: torch loads only when this runs
    from fiftyone_ntt.loader import batched, prefetched

    dataset, out_field, segmenter = plan.dataset, plan.out_field, plan.segmenter
    target, total = _targets(plan)
    todo = (
        target
        if plan.overwrite
        else target.match(F(f"{out_field}.{RUN_ATTRIBUTE}") != plan.fingerprint)
    )
    sample_ids, filepaths = todo.values(["id", "filepath"])
    done_before = total - len(sample_ids)
    _register(plan)

    failures: list[dict[str, str]] = []
    pending: dict[str, Any] = {}
    counts = {"processed": 0, "detections": 0}
    lock = plan.lock

    def record(status: str) -> dict[str, Any]:
        summary = {
            "run_key": out_field,
            "out_field": out_field,
            "bank_key": plan.bank_key,
            "bank_version": plan.bank.origin.get("bank_version"),
            "status": status,
            "shard": None if plan.shard is None else list(plan.shard),
            "run_fingerprint": plan.fingerprint,
            **run_outcome(plan, total, done_before, counts, failures),
        }
        record_run(dataset, out_field, summary, plan.shard)
        return summary

    # the state a killed process leaves behind: "running" with a claim that goes stale
    record("running")
    grouped = dataset.media_type == "group"

    def flush() -> None:
        if pending:
            # grouped dataset: write through a view holding every slice
            writer = dataset.select_group_slices(_allow_mixed=True) if grouped else dataset
            writer.set_values(out_field, dict(pending), key_field="id")
            pending.clear()

    batch_images = max(1, int(plan.batch_images))
    pin = batch_images > 1 and segmenter.pin_memory

    def load(item: tuple[str, str]):
        """``(image, prepared, error)``: read (and for batches, prepare) in the loader."""
        try:
            image = load_image(item[1])
        except ImageLoadError as error:
            return None, None, str(error)
        prepared = segmenter.prepare(image, pin_memory=pin) if batch_images > 1 else None
        return image, prepared, None

    def predict_one(image, path: str):
        """Predictions, or None and the reason when memory runs out twice."""
        return predict_retrying_oom(
            segmenter,
            image,
            f"image {path!r}",
            "free memory (fewer processes on the device, fewer batch_images), run on another "
            "device (device='cpu'), or use a smaller copy of the image",
            where=f" on device {getattr(segmenter.proposer, 'device', '?')}",
        )

    def predict(ready: list) -> list:
        if len(ready) > 1:
            try:
                return [(p, None) for p in segmenter.predict_prepared([r[2] for r in ready])]
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
                free_memory()  # then one image at a time, each with its own retry
        return [predict_one(image, path) for (_, path), image, _ in ready]

    status = "interrupted"
    done = 0
    beat = time.monotonic()
    # with batches, the next whole batch is prepared while the models run on this one
    ahead = max(0, int(plan.prefetch))
    depth = ahead + batch_images - 1 if ahead else 0
    stream = prefetched(zip(sample_ids, filepaths), load, depth=depth)
    try:
        for batch in batched(stream, batch_images):
            if cancel_requested(dataset, lock):
                break  # cancelled by the user: keep what is written, record "interrupted"
            ready = []
            for (sample_id, path), (image, prepared, error) in batch:
                if error is None:
                    ready.append(((sample_id, path), image, prepared))
                else:
                    failures.append({"sample_id": sample_id, "filepath": path, "error": error})
            for ((sample_id, path), _, _), (predictions, error) in zip(ready, predict(ready)):
                if error is not None:
                    failures.append({"sample_id": sample_id, "filepath": path, "error": error})
                    continue
                pending[sample_id] = predictions_to_detections(
                    predictions, **{RUN_ATTRIBUTE: plan.fingerprint}
                )
                counts["processed"] += 1
                counts["detections"] += len(predictions)
            done += len(batch)
            ready = batch = None
            if len(pending) >= plan.batch_size:
                flush()
            if time.monotonic() - beat > HEARTBEAT_SECONDS:
                lock.update(heartbeat(dataset, out_field, lock, plan.shard))
                beat = time.monotonic()
            if progress is not None:
                progress(min(done, len(sample_ids)), len(sample_ids))
        else:
            status = "completed"
    finally:
        try:
            flush()
        finally:
            stream.close()
            summary = record(status)
    return summary
