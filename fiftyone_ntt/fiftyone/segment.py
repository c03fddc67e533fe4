"""Segmenting a FiftyOne collection with a memory bank, resumably, with provenance."""

from __future__ import annotations

import gc
import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from fiftyone_ntt.config import NTTConfig

__all__ = [
    "LOCK_STALE_SECONDS",
    "RUN_ATTRIBUTE",
    "FieldLockedError",
    "check_output_field",
    "field_lock",
    "run_fingerprint",
    "run_state",
    "segment",
]

#: Attribute of the output ``fo.Detections`` holding the fingerprint of the run that wrote
#: it: a rerun skips the samples whose value matches (resume).
RUN_ATTRIBUTE = "ntt_run"

#: A claim on an output field whose holder has not sent a heartbeat for this long is stale
#: (its process is taken to be gone); a holder on this host whose pid is gone is stale at once.
LOCK_STALE_SECONDS = 120.0
#: How often a running segmentation refreshes its claim.
HEARTBEAT_SECONDS = 10.0
_LOCK_PREFIX = "lock:"
#: Not a field name (those may not contain "__"): the turn for schema changes.
_SCHEMA_LOCK = "__schema__"


class FieldLockedError(RuntimeError):
    """Another live run is writing the same output field."""


def _lock_store(collection: Any) -> Any:
    from fiftyone.operators.store import ExecutionStore

    from fiftyone_ntt.fiftyone.banks import STORE_NAME

    return ExecutionStore.create(STORE_NAME, collection._root_dataset._doc.id)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def _is_stale(holder: dict[str, Any], stale_after: float = LOCK_STALE_SECONDS) -> bool:
    if holder.get("host") == socket.gethostname() and not _pid_alive(holder.get("pid", -1)):
        return True
    return time.time() - float(holder.get("heartbeat", 0)) > stale_after


def field_lock(collection: Any, out_field: str) -> dict[str, Any] | None:
    """The live claim on ``out_field`` (``owner``, ``pid``, ``host``, ``started``,
    ``heartbeat``), or None when no live run is writing it (a stale claim counts as none)."""
    holder = _lock_store(collection).get(_LOCK_PREFIX + out_field)
    if holder is None or _is_stale(holder):
        return None
    return dict(holder)


def _claim_field(collection: Any, out_field: str) -> dict[str, Any]:
    """Atomically claim ``out_field`` for this process; take over a stale claim.

    Raises:
        FieldLockedError: a live run holds it (the message names it).
    """
    store = _lock_store(collection)
    key = _LOCK_PREFIX + out_field
    now = time.time()
    mine = {
        "owner": uuid.uuid4().hex,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": now,
        "heartbeat": now,
    }
    for _ in range(5):
        if store.set_if_absent(key, mine):
            return mine
        holder = store.get(key)
        if holder is None:
            continue  # released meanwhile
        if not _is_stale(holder):
            age = time.time() - float(holder.get("heartbeat", 0))
            started = time.strftime(
                "%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(holder.get("started", 0)))
            )
            raise FieldLockedError(
                f"field {out_field!r} is being written by another run (pid "
                f"{holder.get('pid')} on {holder.get('host')!r}, started {started}, last "
                f"heartbeat {age:.0f} s ago); wait for it to finish, or segment into another "
                f"output field. If that process is gone, its claim expires "
                f"{LOCK_STALE_SECONDS:.0f} s after its last heartbeat"
            )
        if store.compare_and_set(key, holder, mine):
            return mine
    raise FieldLockedError(
        f"could not claim field {out_field!r}: other runs keep claiming it; try again"
    )


def _heartbeat(collection: Any, out_field: str, lock: dict[str, Any]) -> dict[str, Any]:
    fresh = {**lock, "heartbeat": time.time()}
    if not _lock_store(collection).compare_and_set(_LOCK_PREFIX + out_field, lock, fresh):
        raise FieldLockedError(
            f"this run lost its claim on field {out_field!r} (it was idle for more than "
            f"{LOCK_STALE_SECONDS:.0f} s and another run took over); stopping so that the two "
            "never interleave; rerun to resume"
        )
    return fresh


def _release_field(collection: Any, out_field: str, lock: dict[str, Any]) -> None:
    store = _lock_store(collection)
    key = _LOCK_PREFIX + out_field
    holder = store.get(key)
    if holder is not None and holder.get("owner") == lock.get("owner"):
        store.delete(key)


def run_state(collection: Any, out_field: str) -> dict[str, Any]:
    """Where the segmentation run into ``out_field`` stands.

    Returns:
        ``status``: ``"completed"``, ``"running"`` (a live process holds the field),
        ``"interrupted"`` (stopped by an error, or its process died) or ``"none"`` (no
        run); ``finished`` (completed); ``total``/``processed`` samples as last recorded;
        ``lock``: the live claim or None.
    """
    dataset = collection._root_dataset
    if out_field not in dataset.list_runs():
        return {"status": "none", "finished": False, "lock": None}
    results = dataset.load_run_results(out_field, cache=False)
    recorded = getattr(results, "status", None) if results is not None else None
    lock = field_lock(dataset, out_field)
    status = recorded or "interrupted"
    if status == "running" and lock is None:
        status = "interrupted"  # its process is gone
    return {
        "status": status,
        "finished": status == "completed",
        "total": getattr(results, "total", None),
        "processed": getattr(results, "processed", None),
        "lock": lock,
    }


@contextmanager
def _schema_turn(dataset: Any, timeout: float = 60.0):
    """Hold the dataset-wide claim ``lock:__schema__`` (waiting for it) while changing the
    dataset's schema or runs."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            lock = _claim_field(dataset, _SCHEMA_LOCK)
            break
        except FieldLockedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        yield
    finally:
        _release_field(dataset, _SCHEMA_LOCK, lock)


def _reload_schema(dataset: Any) -> None:
    """Reload the dataset when another process (a delegated worker, a concurrent run) has
    added fields or runs since it was loaded here; a no-op otherwise (a full ``reload()``
    also reloads every in-memory sample, which costs time)."""
    try:
        from fiftyone.core.odm import get_db_conn

        stored = get_db_conn().datasets.find_one(
            {"_id": dataset._doc.id}, {"sample_fields.name": 1, "runs": 1}
        )
        fields = {f.get("name") for f in (stored or {}).get("sample_fields", [])}
        runs = set(((stored or {}).get("runs") or {}).keys())
        current = {f.name for f in dataset._doc.sample_fields}
        if stored is not None and fields == current and runs == set(dataset._doc.runs or {}):
            return
    except Exception:  # pragma: no cover - other FiftyOne versions: reload to be safe
        pass
    dataset.reload()


def _is_out_of_memory(error: BaseException) -> bool:
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


def _free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def check_output_field(collection: Any, out_field: str, gt_field: str | None = None) -> None:
    """Raise a ValueError unless ``out_field`` may receive predictions.

    Refused: an invalid name (it is also the run key, so it must be a Python identifier),
    the ground-truth field, an existing field of another type than ``Detections``, or a key
    used by a run that is not a No Time to Train run.
    """
    import fiftyone as fo

    from fiftyone_ntt.fiftyone.runs import RUN_METHOD

    if not isinstance(out_field, str) or not out_field.isidentifier():
        raise ValueError(
            f"output field {out_field!r} is not valid; use letters, digits and '_' (not "
            "starting with a digit), e.g. 'ntt_predictions'"
        )
    if out_field.startswith("_") or "__" in out_field:
        raise ValueError(
            f"output field {out_field!r} is not valid: FiftyOne reserves names that start "
            "with '_' and cannot query names containing '__'; use e.g. 'ntt_predictions'"
        )
    if gt_field and out_field == gt_field:
        raise ValueError(
            f"output field {out_field!r} is the ground-truth field; choose another name so "
            "that the ground truth is not overwritten"
        )
    dataset = collection._root_dataset
    schema = dataset.get_field_schema()
    if out_field in schema:
        doc_type = getattr(schema[out_field], "document_type", None)
        if doc_type is not fo.Detections:
            kind = doc_type.__name__ if doc_type is not None else type(schema[out_field]).__name__
            raise ValueError(
                f"field {out_field!r} exists and holds {kind}, not Detections; choose a new "
                "field name"
            )
    if out_field in dataset.list_runs():
        method = dataset.get_run_info(out_field).config.method
        if method != RUN_METHOD:
            raise ValueError(
                f"run key {out_field!r} is used by another run (method {method!r}); choose "
                "another output field"
            )


def run_fingerprint(bank: Any, config: NTTConfig, models: dict[str, Any]) -> str:
    """What determines the predictions: bank content, settings (but not the device), models."""
    settings = config.to_dict()
    settings["models"] = {k: v for k, v in settings["models"].items() if k != "device"}
    payload = json.dumps(
        {"bank": bank.fingerprint, "config": settings, "models": models},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _resolve_config(
    bank: Any,
    config: NTTConfig | None,
    score_threshold: float | None,
    max_detections: int | None,
    points_per_side: int | None,
    device: str | None,
) -> NTTConfig:
    if config is None:
        stored = bank.metadata.get("config")
        config = NTTConfig.from_dict(stored) if stored else NTTConfig()
    changes: dict[str, Any] = {"score_threshold": score_threshold}
    if max_detections is not None:
        changes["max_detections"] = int(max_detections)
    if points_per_side is not None:
        changes["points_per_side"] = int(points_per_side)
    if device:
        changes["models"] = {"device": device}
    return config.replace(**changes)


def segment(
    collection: Any,
    bank: Any,
    out_field: str,
    *,
    config: NTTConfig | None = None,
    score_threshold: float | None = None,
    max_detections: int | None = None,
    points_per_side: int | None = None,
    skip_references: bool = True,
    overwrite: bool = False,
    batch_size: int = 16,
    prefetch: int = 2,
    device: str | None = None,
    encoder: Any = None,
    proposer: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Segment the bank's classes in every image of ``collection``; write ``fo.Detections``.

    Predictions have ``label``, ``confidence``, a relative box and a box-cropped mask. Writes
    happen every ``batch_size`` samples (and on interruption). A rerun with the same bank and
    settings skips the samples already done (resume) unless ``overwrite``. A sample whose
    image cannot be read is skipped and reported; the run continues. Only ``out_field`` is
    written. A custom run keyed ``out_field`` records the provenance (see
    :mod:`fiftyone_ntt.fiftyone.runs`).

    Args:
        collection: dataset, view or selection to segment.
        bank: a :class:`~fiftyone_ntt.memory_bank.MemoryBank`, or the key of a bank of this
            dataset (:func:`~fiftyone_ntt.fiftyone.banks.list_banks`).
        out_field: the ``Detections`` field to write (also the run key).
        config: settings; default the ones stored with the bank.
        score_threshold: drop detections below this; None keeps all (the paper).
        max_detections: detections per image (default: the config's, 100).
        points_per_side: SAM 2 prompt grid (default: the config's, 32).
        skip_references: leave out the samples that hold one of the bank's references.
        overwrite: recompute samples already done, and replace a run with other settings.
        batch_size: samples per database write.
        prefetch: images read ahead in a background thread (0: none).
        device: compute device (overrides the config's).
        encoder, proposer: model instances instead of the configured ones.
        progress: ``progress(done, total)`` after each sample.

    Returns:
        A summary: ``run_key``, ``out_field``, ``status`` (``"completed"``), ``total``
        (target samples), ``done_before`` (skipped as already done), ``processed``,
        ``failed`` and ``failures`` (``sample_id``, ``filepath``, ``error``), ``detections``,
        ``seconds``, ``pid`` and ``host`` of the process that ran it.

    One run at a time per output field: the field is claimed in the dataset's execution
    store (owner pid and host, heartbeat) before anything is written and released at the end;
    a stale claim (its process gone, or no heartbeat for :data:`LOCK_STALE_SECONDS`) is taken
    over. The run's results are saved with ``status="running"`` at the start and the summary
    at the end, so a killed run reads as interrupted (:func:`run_state`). A sample that runs
    out of memory is retried once after freeing memory, then skipped and reported.

    Raises:
        ValueError: refused output field or collection (video, whole grouped dataset), bad
            bank, or a run with other settings without overwrite.
        FieldLockedError: another live run is writing ``out_field``.
    """
    from fiftyone_ntt.fiftyone.banks import load_bank
    from fiftyone_ntt.fiftyone.models import get_models, model_identity
    from fiftyone_ntt.fiftyone.references import check_image_collection
    from fiftyone_ntt.segmenter import Segmenter

    started = time.perf_counter()
    check_image_collection(collection)
    _reload_schema(collection._root_dataset)
    bank_key = None
    if isinstance(bank, str):
        bank_key, bank = bank, load_bank(collection, bank)
    gt_field = bank.metadata.get("gt_field")
    check_output_field(collection, out_field, gt_field)
    config = _resolve_config(bank, config, score_threshold, max_detections, points_per_side, device)
    if encoder is None or proposer is None:
        loaded = get_models(config.models)
        encoder = encoder or loaded[0]
        proposer = proposer or loaded[1]
    segmenter = Segmenter(encoder, proposer, bank, config)
    models = model_identity(encoder, proposer)
    fingerprint = run_fingerprint(bank, config, models)

    dataset = collection._root_dataset
    if getattr(collection, "_is_patches", False):
        # a patches view: segment the images its patches come from
        collection = dataset.select(collection.distinct("sample_id"))
    run_key = out_field
    # one run at a time per field: claimed before anything is written, released at the end
    lock = _claim_field(dataset, out_field)
    try:
        return _segment_locked(
            collection,
            dataset,
            bank,
            bank_key,
            out_field,
            run_key,
            gt_field,
            config,
            segmenter,
            models,
            fingerprint,
            lock,
            skip_references=skip_references,
            overwrite=overwrite,
            batch_size=batch_size,
            prefetch=prefetch,
            progress=progress,
            started=started,
        )
    finally:
        _release_field(dataset, out_field, lock)


def _segment_locked(
    collection: Any,
    dataset: Any,
    bank: Any,
    bank_key: str | None,
    out_field: str,
    run_key: str,
    gt_field: str | None,
    config: NTTConfig,
    segmenter: Any,
    models: dict[str, Any],
    fingerprint: str,
    lock: dict[str, Any],
    *,
    skip_references: bool,
    overwrite: bool,
    batch_size: int,
    prefetch: int,
    progress: Callable[[int, int], None] | None,
    started: float,
) -> dict[str, Any]:
    import fiftyone as fo
    import fiftyone.core.runs as fors
    from fiftyone import ViewField as F

    from fiftyone_ntt.fiftyone.labels import predictions_to_detections
    from fiftyone_ntt.fiftyone.references import reference_sample_ids
    from fiftyone_ntt.fiftyone.runs import NTTRunConfig, versions
    from fiftyone_ntt.images import ImageLoadError, load_image

    if run_key in dataset.list_runs() and not overwrite:
        previous = getattr(dataset.get_run_info(run_key).config, "run_fingerprint", None)
        if previous != fingerprint:
            raise ValueError(
                f"field {out_field!r} holds predictions of another run (other bank or "
                "settings); choose another output field, or overwrite to replace them"
            )

    target = collection
    if skip_references and gt_field and dataset.has_sample_field(gt_field):
        # the whole dataset (every slice of a grouped one): a view may hide reference labels
        everything = (
            dataset.select_group_slices(_allow_mixed=True)
            if dataset.media_type == "group"
            else dataset
        )
        ref_ids = reference_sample_ids(everything, gt_field, label_ids=bank.reference_ids)
        if ref_ids:
            target = target.exclude(ref_ids)
    total = len(target)
    todo = target if overwrite else target.match(F(f"{out_field}.{RUN_ATTRIBUTE}") != fingerprint)
    sample_ids, filepaths = todo.values(["id", "filepath"])
    done_before = total - len(sample_ids)

    run_config = NTTRunConfig(
        out_field=out_field,
        gt_field=gt_field,
        bank_key=bank_key,
        bank_fingerprint=bank.fingerprint,
        bank_version=bank.origin.get("bank_version"),  # set by load_bank
        classes=list(bank.class_names),
        shots=bank.shots_per_class(),
        run_fingerprint=fingerprint,
        ntt_config=config.to_dict(),
        models=models,
        versions=versions(),
        skip_references=bool(skip_references),
    )
    # cleanup=False: re-registering must not delete the predictions already written
    # FiftyOne saves the dataset's list of fields as a whole: two processes adding fields at
    # once can lose one. Runs of this package take turns (and reload first).
    with _schema_turn(dataset):
        _reload_schema(dataset)
        if not dataset.has_sample_field(out_field):
            dataset.add_sample_field(
                out_field, fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections
            )
        dataset.register_run(run_key, run_config, overwrite=True, cleanup=False)

    failures: list[dict[str, str]] = []
    pending: dict[str, Any] = {}
    processed = detections = 0

    def record(status: str) -> dict[str, Any]:
        summary = {
            "run_key": run_key,
            "out_field": out_field,
            "bank_key": bank_key,
            "bank_version": bank.origin.get("bank_version"),
            "status": status,
            "total": total,
            "done_before": done_before,
            "processed": processed,
            "failed": len(failures),
            "failures": failures,
            "detections": detections,
            "seconds": round(time.perf_counter() - started, 3),
            "pid": lock["pid"],
            "host": lock["host"],
        }
        info = dataset.get_run_info(run_key)
        results = fors.RunResults(dataset, info.config, run_key, **summary)
        dataset.save_run_results(run_key, results, overwrite=True)
        return summary

    # the state a killed process leaves behind: "running" with a claim that goes stale
    record("running")
    beat = time.monotonic()
    grouped = dataset.media_type == "group"

    def flush() -> None:
        if pending:
            if grouped:
                # grouped dataset: write through a view holding every slice
                dataset.select_group_slices(_allow_mixed=True).set_values(
                    out_field, dict(pending), key_field="id"
                )
            else:
                dataset.set_values(out_field, dict(pending), key_field="id")
            pending.clear()

    def read(path: str):
        try:
            return load_image(path), None
        except ImageLoadError as error:
            return None, str(error)

    def predict(image, path: str):
        """Predictions, or None and the reason when memory runs out twice."""
        for attempt in range(2):
            try:
                return segmenter.predict(image), None
            except Exception as error:
                if not _is_out_of_memory(error):
                    raise
                _free_memory()
                if attempt == 1:
                    height, width = image.shape[:2]
                    return None, (
                        f"out of memory on image {path!r} ({width}x{height} px) on device "
                        f"{getattr(segmenter.proposer, 'device', '?')}, twice ({error}); "
                        "skipped: free memory (fewer processes on the device), run on "
                        "another device (device='cpu'), or use a smaller copy of the image"
                    )
        return None, "unreachable"

    status = "interrupted"
    pool = ThreadPoolExecutor(max_workers=1) if prefetch > 0 else None
    try:
        futures: dict[int, Any] = {}
        for i, (sample_id, path) in enumerate(zip(sample_ids, filepaths)):
            if pool is not None:
                for j in range(i, min(len(filepaths), i + prefetch + 1)):
                    if j not in futures:
                        futures[j] = pool.submit(read, filepaths[j])
                image, error = futures.pop(i).result()
            else:
                image, error = read(path)
            if image is not None:
                predictions, error = predict(image, path)
                image = None
            if error is not None:
                failures.append({"sample_id": sample_id, "filepath": path, "error": error})
            else:
                pending[sample_id] = predictions_to_detections(
                    predictions, **{RUN_ATTRIBUTE: fingerprint}
                )
                processed += 1
                detections += len(predictions)
                predictions = None
            if len(pending) >= batch_size:
                flush()
            if time.monotonic() - beat > HEARTBEAT_SECONDS:
                lock.update(_heartbeat(dataset, out_field, lock))
                beat = time.monotonic()
            if progress is not None:
                progress(i + 1, len(sample_ids))
        status = "completed"
    finally:
        try:
            flush()
        finally:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
            summary = record(status)
    return summary
