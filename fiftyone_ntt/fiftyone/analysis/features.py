"""Recompute the features of a predictions field written without them (issue 22 §1;
docs/method.md §15, "Features of a field written without them"): each stored prediction
gets the semantic feature of its stored mask
(:func:`fiftyone_ntt.mask_features.mask_features`, the encoder of the bank and the pooling
matching uses) as :data:`~fiftyone_ntt.fiftyone.dataset.labels.EMBEDDING_ATTRIBUTE`. No mask,
box, label or score changes; predictions that have a feature keep it unless ``overwrite``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from fiftyone_ntt.config import NTTConfig
from fiftyone_ntt.embeddings import compact
from fiftyone_ntt.fiftyone.analysis.maps import check_field_encoder
from fiftyone_ntt.fiftyone.banks.index import load_bank
from fiftyone_ntt.fiftyone.dataset.fields import check_detections_field, ground_truth_fields
from fiftyone_ntt.fiftyone.dataset.labels import EMBEDDING_ATTRIBUTE, detection_full_mask
from fiftyone_ntt.fiftyone.dataset.store import root_dataset
from fiftyone_ntt.fiftyone.runs.settings import resolve_settings, segmenter_for
from fiftyone_ntt.images import ImageLoadError, load_image

__all__ = ["feature_count", "recompute_features"]


def feature_count(collection: Any, pred_field: str) -> tuple[int, int]:
    """``(predictions with a feature, predictions)`` of ``pred_field`` in ``collection``."""
    base = f"{pred_field}.detections"
    total = int(collection.count(base))
    if not total:
        return 0, 0
    # the attribute may be undeclared (runs write labels without extending the schema)
    with_features = sum(
        v is not None for v in collection.values(f"{base}.{EMBEDDING_ATTRIBUTE}", unwind=True)
    )
    return with_features, total


def _run_record(dataset: Any, pred_field: str) -> Any:
    if pred_field in dataset.list_runs():
        return dataset.get_run_info(pred_field).config
    return None


def _config(bank: Any, recorded: Any) -> NTTConfig:
    """The settings the field was segmented with (its run's record), else the bank's."""
    settings = getattr(recorded, "ntt_config", None) if recorded is not None else None
    config = None
    if settings:
        try:
            config = NTTConfig.from_dict(dict(settings))
        except (TypeError, ValueError):
            config = None  # a record of another version: the bank's settings
    return resolve_settings(bank.metadata.get("config"), config, embeddings=True)


def recompute_features(
    collection: Any,
    pred_field: str,
    bank_key: str | None = None,
    *,
    version: int | None = None,
    overwrite: bool = False,
    encoder: Any = None,
    proposer: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Compute and store the feature of every prediction of ``pred_field`` in
    ``collection`` from its stored mask (features only: no new masks).

    Args:
        collection: dataset or view (its samples' predictions are done).
        pred_field: a ``Detections`` field of predictions with masks (not a ground-truth
            field: the bank holds the references' features).
        bank_key: whose encoder computes the features; default: the bank the field's run
            used (its version too). ``version``: the bank version (default: the run's, else
            the latest).
        overwrite: recompute predictions that have a feature too (default: left as they are).
        encoder, proposer: model instances instead of the cached ones of the bank's models.
        progress: ``progress(done, total)`` after each sample.

    Returns:
        ``field``, ``bank_key``, ``bank_version``, ``computed`` (predictions given a
        feature), ``kept`` (had one, left alone), ``without_mask`` (box-only predictions, or
        masks too small for the low-res grid: no feature), ``failures`` (``sample_id``,
        ``filepath``, ``error`` of images that could not be read: skipped), ``samples`` and
        ``seconds``.

    Raises:
        ValueError: not a Detections field, a ground-truth field, no bank to take the
            encoder from, or a field another encoder segmented (naming both).
    """
    started = time.perf_counter()
    dataset = root_dataset(collection)
    check_detections_field(collection, pred_field, "predictions field")
    if pred_field in ground_truth_fields(dataset):
        raise ValueError(
            f"{pred_field!r} is a ground-truth field: its references' features are in the "
            "bank already; recompute the features of a predictions field"
        )
    recorded = _run_record(dataset, pred_field)
    if bank_key is None:
        bank_key = getattr(recorded, "bank_key", None)
        if version is None:
            version = getattr(recorded, "bank_version", None)
        if not bank_key:
            raise ValueError(
                f"field {pred_field!r} has no run record naming its bank: pass "
                "bank_key=<the bank whose encoder computes the features>"
            )
    bank = load_bank(dataset, bank_key, version)
    check_field_encoder(dataset, pred_field, bank, bank_key, bank.feature_dim)
    segmenter = segmenter_for(bank, _config(bank, recorded), encoder, proposer)

    view = collection.exists(pred_field).select_fields(pred_field)
    total = len(view)
    report = progress or (lambda done, count: None)
    computed = kept = without_mask = 0
    failures: list[dict[str, str]] = []
    for done, sample in enumerate(view.iter_samples(autosave=True, batch_size=16), start=1):
        detections = sample[pred_field].detections
        todo = [d for d in detections if overwrite or getattr(d, EMBEDDING_ATTRIBUTE, None) is None]
        kept += len(detections) - len(todo)
        if todo:
            try:
                image = load_image(sample.filepath)
            except ImageLoadError as error:
                failures.append(
                    {"sample_id": sample.id, "filepath": sample.filepath, "error": str(error)}
                )
                report(done, total)
                continue
            height, width = image.shape[:2]
            masks, owners = [], []
            for detection in todo:
                mask = detection_full_mask(detection, width, height)
                if mask is None:
                    without_mask += 1
                    continue
                masks.append(mask)
                owners.append(detection)
            if masks:
                # deferred: torch loads only when features are computed
                from fiftyone_ntt.mask_features import mask_features

                vectors = mask_features(segmenter, image, np.stack(masks))
                for detection, vector in zip(owners, vectors):
                    if not np.isfinite(vector).all():  # empty on the low-res grid
                        without_mask += 1
                        continue
                    detection[EMBEDDING_ATTRIBUTE] = compact(vector[None])[0]
                    computed += 1
        report(done, total)
    return {
        "field": pred_field,
        "bank_key": bank_key,
        "bank_version": int(bank.origin.get("bank_version") or version or 1),
        "computed": computed,
        "kept": kept,
        "without_mask": without_mask,
        "failures": failures,
        "samples": total,
        "seconds": time.perf_counter() - started,
    }
