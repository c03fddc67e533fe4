"""The reference audit of a bank against an evaluation (issue 23 §2, docs/method.md §16.2):
which references attract false positives, and how each class's precision changes without
each one (:func:`fiftyone_ntt.curation.reference_audit.audit_references`, from the bank's
stored vectors and the predictions' stored features: no model run)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fiftyone_ntt.curation.reference_audit import audit_references
from fiftyone_ntt.fiftyone.banks.history import all_versions
from fiftyone_ntt.fiftyone.banks.index import load_bank
from fiftyone_ntt.fiftyone.banks.thresholds import bank_thresholds, evaluated_predictions
from fiftyone_ntt.fiftyone.dataset.labels import EMBEDDING_ATTRIBUTE, detection_embedding
from fiftyone_ntt.fiftyone.dataset.store import BANK_KEY_PREFIX, execution_store, root_dataset

__all__ = ["judged_predictions", "reference_audit"]


def judged_predictions(dataset: Any, eval_key: str, pred_field: str) -> dict[str, Any]:
    """Features, labels, outcomes and ids of the evaluated predictions (those holding a
    stored feature), and how many lack one."""
    view = dataset.load_evaluation_view(eval_key).select_fields(pred_field)
    features, labels, is_tp, ids, missing = [], [], [], [], 0
    for sample in view:
        detections = sample[pred_field].detections if sample[pred_field] else []
        for det in detections:
            outcome = det.get_field(eval_key) if det.has_field(eval_key) else None
            if outcome not in ("tp", "fp"):
                continue
            vector = detection_embedding(det)
            if vector is None:
                missing += 1
                continue
            features.append(vector)
            labels.append(det.label)
            is_tp.append(outcome == "tp")
            ids.append(det.id)
    return {"features": features, "labels": labels, "is_tp": is_tp, "ids": ids, "missing": missing}


def reference_audit(
    collection: Any, eval_key: str, bank_key: str, *, version: int | None = None
) -> dict[str, Any]:
    """Audit the references of the bank version that made the predictions of evaluation
    ``eval_key``.

    Returns:
        ``eval_key``, ``pred_field``, ``bank_key``, ``bank_version``, ``rows`` (most harmful
        first: ``reference_id``, ``class_name``, ``field`` (where the reference label is),
        ``nearest_tp``, ``nearest_fp``, ``precision``, ``precision_without``, ``harm``,
        ``precision_at_threshold(_without)``, ``note``, ``false_positives``: ids of the
        false positives nearest to it), ``missing_features`` and ``message``.

    Raises:
        ValueError: as :func:`~fiftyone_ntt.fiftyone.banks.thresholds.evaluated_predictions`;
            no evaluated prediction holds a stored feature (segment with embeddings).
    """
    where = evaluated_predictions(collection, eval_key, bank_key, version)
    dataset = root_dataset(collection)
    bank = load_bank(collection, bank_key, where["bank_version"])
    judged = judged_predictions(dataset, eval_key, where["pred_field"])
    if not judged["features"]:
        raise ValueError(
            f"none of the {judged['missing']} evaluated prediction(s) of "
            f"{where['pred_field']!r} holds its feature ({EMBEDDING_ATTRIBUTE!r}): segment "
            "with 'Keep embeddings' (embeddings=True / keep_features=True), evaluate again, "
            "then audit"
        )
    index = {name: i for i, name in enumerate(bank.class_names)}
    keep = [i for i, label in enumerate(judged["labels"]) if label in index]
    features = np.stack([judged["features"][i] for i in keep])
    class_ids = np.array([index[judged["labels"][i]] for i in keep], dtype=np.int64)
    is_tp = np.array([judged["is_tp"][i] for i in keep], dtype=bool)
    thresholds = bank_thresholds(collection, bank_key, where["bank_version"])
    rows = audit_references(
        bank.features,
        bank.class_ids,
        bank.reference_ids,
        bank.class_names,
        features,
        class_ids,
        is_tp,
        thresholds or None,
    )
    # the false positives nearest to each reference, for "Show"
    refs = bank.features / np.linalg.norm(bank.features, axis=1, keepdims=True)
    det_ids = [judged["ids"][i] for i in keep]
    nearest_fps: dict[str, list[str]] = {}
    for k in np.flatnonzero(~is_tp):
        same = np.flatnonzero(bank.class_ids == class_ids[k])
        best = same[np.argmax(refs[same] @ features[k])]
        nearest_fps.setdefault(bank.reference_ids[best], []).append(det_ids[k])
    store = execution_store(collection)
    entry = all_versions(store, bank_key, BANK_KEY_PREFIX + bank_key).get(
        int(bank.origin.get("bank_version", 1)), {}
    )
    fields = entry.get("reference_ids") or {}
    out_rows = []
    for row in rows:
        data = row.to_dict()
        data["field"] = fields.get(row.reference_id)
        data["false_positives"] = nearest_fps.get(row.reference_id, [])
        out_rows.append(data)
    harmful = [r for r in out_rows if (r["harm"] or 0) > 0]
    message = (
        f"audited {len(rows)} reference(s) of bank {bank_key!r} v{where['bank_version']} "
        f"against {len(keep)} judged prediction(s) of {where['pred_field']!r}: "
        f"{sum(r['nearest_fp'] > 0 for r in out_rows)} attract false positives, "
        f"{len(harmful)} would raise their class's precision if left out"
    )
    if judged["missing"]:
        message += f"; {judged['missing']} prediction(s) without a stored feature were skipped"
    return {
        "eval_key": eval_key,
        "bank_key": bank_key,
        **where,
        "rows": out_rows,
        "missing_features": judged["missing"],
        "message": message,
    }
