"""Segmenting a FiftyOne collection with a memory bank, resumably, with provenance."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fiftyone_ntt.config import NTTConfig

__all__ = ["RUN_ATTRIBUTE", "check_output_field", "run_fingerprint", "segment"]

#: Attribute of the output ``fo.Detections`` holding the fingerprint of the run that wrote
#: it: a rerun skips the samples whose value matches (resume).
RUN_ATTRIBUTE = "ntt_run"


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
        A summary: ``run_key``, ``out_field``, ``total`` (target samples), ``done_before``
        (skipped as already done), ``processed``, ``failed`` and ``failures``
        (``sample_id``, ``filepath``, ``error``), ``detections``, ``seconds``.

    Raises:
        ValueError: refused output field, or a run with other settings without overwrite.
    """
    import fiftyone as fo
    from fiftyone import ViewField as F

    from fiftyone_ntt.fiftyone.banks import load_bank
    from fiftyone_ntt.fiftyone.labels import predictions_to_detections
    from fiftyone_ntt.fiftyone.models import get_models, model_identity
    from fiftyone_ntt.fiftyone.references import reference_sample_ids
    from fiftyone_ntt.fiftyone.runs import NTTRunConfig, versions
    from fiftyone_ntt.images import ImageLoadError, load_image
    from fiftyone_ntt.segmenter import Segmenter

    started = time.perf_counter()
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
    if run_key in dataset.list_runs() and not overwrite:
        previous = getattr(dataset.get_run_info(run_key).config, "run_fingerprint", None)
        if previous != fingerprint:
            raise ValueError(
                f"field {out_field!r} holds predictions of another run (other bank or "
                "settings); choose another output field, or overwrite to replace them"
            )

    target = collection
    if skip_references and gt_field and dataset.has_sample_field(gt_field):
        ref_ids = reference_sample_ids(dataset, gt_field, label_ids=bank.reference_ids)
        if ref_ids:
            target = target.exclude(ref_ids)
    total = len(target)
    todo = target if overwrite else target.match(F(f"{out_field}.{RUN_ATTRIBUTE}") != fingerprint)
    sample_ids, filepaths = todo.values(["id", "filepath"])
    done_before = total - len(sample_ids)

    if not dataset.has_sample_field(out_field):
        dataset.add_sample_field(
            out_field, fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections
        )
    run_config = NTTRunConfig(
        out_field=out_field,
        gt_field=gt_field,
        bank_key=bank_key,
        bank_fingerprint=bank.fingerprint,
        classes=list(bank.class_names),
        shots=bank.shots_per_class(),
        run_fingerprint=fingerprint,
        ntt_config=config.to_dict(),
        models=models,
        versions=versions(),
        skip_references=bool(skip_references),
    )
    # cleanup=False: re-registering must not delete the predictions already written
    dataset.register_run(run_key, run_config, overwrite=True, cleanup=False)

    failures: list[dict[str, str]] = []
    pending: dict[str, Any] = {}
    processed = detections = 0

    def flush() -> None:
        if pending:
            dataset.set_values(out_field, dict(pending), key_field="id")
            pending.clear()

    def read(path: str):
        try:
            return load_image(path), None
        except ImageLoadError as error:
            return None, str(error)

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
            if image is None:
                failures.append({"sample_id": sample_id, "filepath": path, "error": error})
            else:
                predictions = segmenter.predict(image)
                pending[sample_id] = predictions_to_detections(
                    predictions, **{RUN_ATTRIBUTE: fingerprint}
                )
                processed += 1
                detections += len(predictions)
            if len(pending) >= batch_size:
                flush()
            if progress is not None:
                progress(i + 1, len(sample_ids))
        status = "completed"
    finally:
        flush()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        summary = {
            "run_key": run_key,
            "out_field": out_field,
            "bank_key": bank_key,
            "status": status,
            "total": total,
            "done_before": done_before,
            "processed": processed,
            "failed": len(failures),
            "failures": failures,
            "detections": detections,
            "seconds": round(time.perf_counter() - started, 3),
        }
        import fiftyone.core.runs as fors

        info = dataset.get_run_info(run_key)
        results = fors.RunResults(dataset, info.config, run_key, **summary)
        dataset.save_run_results(run_key, results, overwrite=True)
    return summary
