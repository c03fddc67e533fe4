"""The review queue (issue 23 §3, docs/method.md §16.3): the predictions of a field that the
user has neither accepted nor rejected, most informative first
(:func:`fiftyone_ntt.curation.review_queue.review_order`), as a saved patches view
"to review"."""

from __future__ import annotations

from typing import Any

import numpy as np

from fiftyone_ntt.curation.review_queue import informativeness, queue_signals
from fiftyone_ntt.fiftyone.banks.index import load_bank
from fiftyone_ntt.fiftyone.banks.thresholds import bank_thresholds
from fiftyone_ntt.fiftyone.dataset.fields import NEG_TAG, REF_TAG, check_detections_field
from fiftyone_ntt.fiftyone.dataset.labels import detection_embedding
from fiftyone_ntt.fiftyone.dataset.store import root_dataset

__all__ = ["REVIEW_VIEW", "review_queue"]

#: Name of the saved view, and the description that marks it as ours.
REVIEW_VIEW = "to review"
_DESCRIPTION = "No Time to Train review queue: undecided predictions, most informative first"


def _undecided(collection: Any, pred_field: str) -> dict[str, list]:
    out: dict[str, list] = {"ids": [], "labels": [], "scores": [], "features": []}
    for sample in collection.select_fields(pred_field):
        detections = sample[pred_field].detections if sample[pred_field] else []
        for det in detections:
            tags = set(det.tags or ())
            if REF_TAG in tags or NEG_TAG in tags:
                continue
            out["ids"].append(det.id)
            out["labels"].append(det.label)
            out["scores"].append(float(det.confidence if det.confidence is not None else 1.0))
            out["features"].append(detection_embedding(det))
    return out


def review_queue(
    collection: Any,
    pred_field: str,
    bank_key: str,
    *,
    version: int | None = None,
    limit: int | None = None,
    save: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Order the undecided predictions of ``pred_field`` and save them as view "to review".

    Args:
        collection: the dataset or a view (only its predictions are queued).
        pred_field: a predictions field (labels tagged ``ntt:ref`` / ``ntt:neg`` are
            decided and left out).
        bank_key: the bank whose thresholds, prototypes and negatives score the queue.
        version: the bank version (default: the latest).
        limit: queue at most this many.
        save: save the patches view (:data:`REVIEW_VIEW`).
        overwrite: replace a saved view of that name that is not a review queue.

    Returns:
        ``label_ids`` (in queue order), ``scores`` (informativeness), ``view_name`` (None
        when not saved), ``with_features`` (how many had a stored feature) and ``message``.

    Raises:
        ValueError: not a Detections field; a saved view "to review" of the user's own
            without ``overwrite``.
    """
    check_detections_field(collection, pred_field)
    bank = load_bank(collection, bank_key, version)
    cuts = bank_thresholds(collection, bank_key, bank.origin.get("bank_version"))
    found = _undecided(collection, pred_field)
    n = len(found["ids"])
    thresholds = np.array([cuts.get(label, np.nan) for label in found["labels"]], dtype=float)
    margins, negatives = np.full(n, np.nan), np.full(n, np.nan)
    index = {name: i for i, name in enumerate(bank.class_names)}
    pairs = zip(found["features"], found["labels"])
    has = [i for i, (f, label) in enumerate(pairs) if f is not None and label in index]
    if has:
        neg, neg_ids = bank.negative_vectors()
        m, s = queue_signals(
            np.stack([found["features"][i] for i in has]),
            np.array([index[found["labels"][i]] for i in has]),
            bank.prototypes().numpy(),
            neg.numpy(),
            neg_ids.numpy(),
        )
        margins[has], negatives[has] = m, s
    value = informativeness(found["scores"], thresholds, margins, negatives)
    order = np.argsort(-value, kind="stable")[:limit]
    label_ids = [found["ids"][i] for i in order]
    view_name = None
    if save:
        view_name = _save(collection, pred_field, label_ids, overwrite)
    message = (
        f"{len(label_ids)} undecided prediction(s) of {pred_field!r} queued, most informative "
        f"first ({len(has)} with a stored feature"
        + ("" if len(has) == n else ": the others are ordered by score and threshold only")
        + ")"
    )
    return {
        "label_ids": label_ids,
        "scores": [float(value[i]) for i in order],
        "view_name": view_name,
        "with_features": len(has),
        "message": message,
    }


def _save(collection: Any, pred_field: str, label_ids: list[str], overwrite: bool) -> str:
    dataset = root_dataset(collection)
    if dataset.has_saved_view(REVIEW_VIEW) and not overwrite:
        info = next(
            (v for v in dataset.list_saved_views(info=True) if v["name"] == REVIEW_VIEW), {}
        )
        if info.get("description") != _DESCRIPTION:
            raise ValueError(
                f"dataset {dataset.name!r} has a saved view {REVIEW_VIEW!r} of its own; "
                "rename it, or pass overwrite=True to replace it with the review queue"
            )
    patches = collection.select_labels(ids=label_ids, fields=pred_field).to_patches(pred_field)
    patch_ids, patch_labels = patches.values(["id", f"{pred_field}.id"])
    by_label = dict(zip(patch_labels, patch_ids))
    view = patches.select([by_label[i] for i in label_ids if i in by_label], ordered=True)
    dataset.save_view(REVIEW_VIEW, view, description=_DESCRIPTION, overwrite=True)
    return REVIEW_VIEW
