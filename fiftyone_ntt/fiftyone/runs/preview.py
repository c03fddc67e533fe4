"""Preview: segment a few samples into a preview field, replaced by each preview.

A preview is for looking before a long run: it writes predictions of ``n`` samples (or the
given ones) into its own field (default ``"ntt_preview"``), and clears that field on every
other sample, so only the latest preview is visible. Models stay loaded in the process
between previews (:func:`fiftyone_ntt.fiftyone.dataset.model_cache.get_models`; free them with
:func:`fiftyone_ntt.fiftyone.dataset.model_cache.free_models`), so a second preview costs only
inference. No run is registered and nothing is resumed. Preview masks are PNG files
(``mask_path``) rather than arrays inside the labels, because the App paints previews again
and again (:mod:`~fiftyone_ntt.fiftyone.dataset.mask_files` says why and where).

Accepting or rejecting preview predictions tags them where they are
(:mod:`~fiftyone_ntt.fiftyone.curation.decisions`); so that the next preview does not erase them, it
first moves the tagged labels (with their ids and tags) into the field
:data:`CURATED_FIELD`, which builds read like any other source field.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import fiftyone as fo
from fiftyone import ViewField as F

from fiftyone_ntt.fiftyone.banks.index import load_bank
from fiftyone_ntt.fiftyone.curation.references import check_image_collection
from fiftyone_ntt.fiftyone.dataset.fields import (
    CURATED_FIELD,
    DEFAULT_REFERENCE_TAG,
    NEG_TAG,
    PREVIEW_ATTRIBUTE,
    PREVIEW_FIELD,
    RUN_METHOD,
    ground_truth_fields,
)
from fiftyone_ntt.fiftyone.dataset.labels import (
    DECISION_ATTRIBUTE,
    apply_field_look,
    decision_of,
    predictions_to_detections,
)
from fiftyone_ntt.fiftyone.dataset.mask_files import masks_folder, store_masks
from fiftyone_ntt.fiftyone.dataset.model_cache import load_count
from fiftyone_ntt.fiftyone.runs.settings import resolve_settings, segmenter_for
from fiftyone_ntt.images import ImageLoadError, load_image

__all__ = ["CURATED_FIELD", "PREVIEW_ATTRIBUTE", "PREVIEW_FIELD", "preview"]


_SETTINGS = ("score_threshold", "max_detections", "points_per_side", "device", "embeddings")


def _check_field(dataset: Any, field: str, gt_fields: Sequence[str]) -> None:
    """Refuse a field that holds anything but previews (the ground truth, predictions of a
    run, another label type)."""

    if not isinstance(field, str) or not field.isidentifier() or "__" in field:
        raise ValueError(
            f"preview field {field!r} is not valid; use letters, digits and '_', e.g. "
            f"{PREVIEW_FIELD!r}"
        )
    if field in gt_fields or field == CURATED_FIELD:
        raise ValueError(
            f"field {field!r} holds ground truth or curated labels; a preview writes only "
            f"into its own field: use e.g. {PREVIEW_FIELD!r}"
        )
    if field in dataset.list_runs():
        method = dataset.get_run_info(field).config.method
        what = "a segmentation run" if method == RUN_METHOD else f"a run ({method})"
        raise ValueError(
            f"field {field!r} holds the predictions of {what}; a preview never overwrites "
            f"them: use e.g. {PREVIEW_FIELD!r}"
        )
    schema = dataset.get_field_schema()
    if field not in schema:
        return
    if getattr(schema[field], "document_type", None) is not fo.Detections:
        raise ValueError(
            f"field {field!r} exists and is not a Detections field; choose a new preview field"
        )
    foreign = dataset.exists(field).match(F(f"{field}.{PREVIEW_ATTRIBUTE}").exists(False))
    if len(foreign):
        raise ValueError(
            f"field {field!r} holds labels that no preview wrote ({len(foreign)} samples); a "
            f"preview never overwrites them: use e.g. {PREVIEW_FIELD!r}"
        )


def _keep_curated(dataset: Any, field: str, sample_ids: list[str]) -> int:
    """Move labels tagged as references or negatives out of the preview field (of the
    samples about to be overwritten or cleared) into :data:`CURATED_FIELD`; each carries its
    decision (:data:`~fiftyone_ntt.fiftyone.dataset.labels.DECISION_ATTRIBUTE`)."""

    tagged = F("tags").contains([DEFAULT_REFERENCE_TAG, NEG_TAG], all=False)
    view = dataset.select(sample_ids).filter_labels(field, tagged)
    ids, labels = view.values(["id", f"{field}.detections"])
    if not ids:
        return 0
    existing = dict(zip(*dataset.select(ids).values(["id", CURATED_FIELD], _allow_missing=True)))
    values, moved = {}, 0
    for sample_id, detections in zip(ids, labels):
        kept = existing.get(sample_id)
        have = {d.id for d in kept.detections} if kept is not None else set()
        merged = list(kept.detections) if kept is not None else []
        for det in detections or []:
            if det.id not in have:
                det[DECISION_ATTRIBUTE] = decision_of(det.tags)
                merged.append(det)
                moved += 1
        values[sample_id] = fo.Detections(detections=merged)
    dataset.set_values(CURATED_FIELD, values, key_field="id", dynamic=True)
    return moved


def preview(
    collection: Any,
    bank: Any,
    n: int = 8,
    field: str = PREVIEW_FIELD,
    sample_ids: Sequence[str] | None = None,
    *,
    version: int | None = None,
    config: Any = None,
    encoder: Any = None,
    proposer: Any = None,
    **settings: Any,
) -> dict[str, Any]:
    """Segment ``n`` samples of ``collection`` (or ``sample_ids``) into ``field``.

    Args:
        collection: dataset or view (a patches view: the images of its patches).
        bank: a bank key of this dataset, or a :class:`~fiftyone_ntt.memory_bank.MemoryBank`.
        n: how many samples, the first ``n`` of the view (when ``sample_ids`` is not given).
        field: the preview field; replaced by each preview (the other samples are cleared).
        sample_ids: preview exactly these samples of the dataset.
        version: the bank version (default: the latest).
        config: settings (default: those stored with the bank).
        encoder, proposer: model instances instead of the cached ones.
        **settings: ``score_threshold``, ``max_detections``, ``points_per_side``,
            ``device``, ``embeddings`` (True writes ``ntt_embedding``, docs/method.md §15),
            or any other :class:`~fiftyone_ntt.config.NTTConfig` field (e.g.
            ``negative_margin``).

    Returns:
        ``field``, ``sample_ids`` (previewed, in order), ``counts`` (detections per sample
        id), ``classes`` (detections per class), ``detections``, ``failures``
        (``sample_id``, ``filepath``, ``error`` of images that could not be read),
        ``cleared`` (samples whose previous preview was removed), ``curated`` (tagged
        labels moved to :data:`CURATED_FIELD`), ``bank_key``, ``bank_version``,
        ``models_loaded`` (False when the cached models were reused) and ``seconds``.

    Raises:
        ValueError: a bad field, bank, ``n``, or sample id (the message says which).
    """

    started = time.perf_counter()
    check_image_collection(collection)
    dataset = collection._root_dataset
    if isinstance(bank, str):
        bank = load_bank(dataset, bank, version)
    gt_fields = [*ground_truth_fields(dataset), bank.metadata.get("gt_field") or ""]
    _check_field(dataset, field, gt_fields)
    if getattr(collection, "_is_patches", False):
        collection = dataset.select(collection.distinct("sample_id"))
    if sample_ids is not None:
        ids = list(dict.fromkeys(str(i) for i in sample_ids))
        found = set(dataset.select(ids).values("id")) if ids else set()
        missing = [i for i in ids if i not in found]
        if missing:
            raise ValueError(
                f"samples {missing[:5]} are not in dataset {dataset.name!r}; pass ids of its "
                "samples (e.g. the selected samples of the App)"
            )
    else:
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n={n!r} must be a positive number of samples to preview")
        ids = collection.limit(n).values("id")
    if not ids:
        raise ValueError("the view has no samples to preview; change the view or pass sample_ids")

    known = {k: settings.pop(k) for k in _SETTINGS if k in settings}
    config = resolve_settings(
        bank.metadata.get("config"),
        config,
        known.get("score_threshold"),
        known.get("max_detections"),
        known.get("points_per_side"),
        known.get("device"),
        known.get("embeddings"),
    )
    if settings:
        config = config.replace(**settings)
    before = load_count()
    segmenter = segmenter_for(bank, config, encoder, proposer)
    models_loaded = load_count() > before

    marker = f"{bank.origin.get('bank_key', 'bank')}@v{bank.origin.get('bank_version', '?')}"
    values: dict[str, Any] = {}
    counts: dict[str, int] = {}
    classes: dict[str, int] = {}
    failures = []
    paths = dict(zip(*dataset.select(ids).values(["id", "filepath"])))
    folder = masks_folder(dataset)
    for sample_id in ids:
        path = paths[sample_id]
        try:
            image = load_image(path)
        except ImageLoadError as error:
            failures.append({"sample_id": sample_id, "filepath": path, "error": str(error)})
            continue
        predictions = segmenter.predict(image)
        values[sample_id] = predictions_to_detections(predictions, **{PREVIEW_ATTRIBUTE: marker})
        # the App paints previews again and again: masks as files (see .dataset.mask_files)
        store_masks(values[sample_id], folder)
        counts[sample_id] = len(values[sample_id].detections)
        for det in values[sample_id].detections:
            classes[det.label] = classes.get(det.label, 0) + 1

    previous = dataset.exists(field).values("id") if dataset.has_sample_field(field) else []
    stale = [i for i in previous if i not in values]
    curated = _keep_curated(dataset, field, previous) if previous else 0
    if values:
        dataset.set_values(field, values, key_field="id")
    if stale:
        dataset.set_values(field, dict.fromkeys(stale), key_field="id")
    apply_field_look(dataset, [field, CURATED_FIELD] if curated else [field])
    return {
        "field": field,
        "sample_ids": [i for i in ids if i in values],
        "counts": counts,
        "classes": classes,
        "detections": sum(counts.values()),
        "failures": failures,
        "cleared": len(stale),
        "curated": curated,
        "bank_key": bank.origin.get("bank_key"),
        "bank_version": bank.origin.get("bank_version"),
        "models_loaded": models_loaded,
        "seconds": round(time.perf_counter() - started, 3),
    }
