"""What the panel's curation sections (issue 23: class thresholds, reference audit, review
queue) do, as functions returning an :class:`~fiftyone_ntt.fiftyone.app.panel_state.Effect`;
tested without the App. The panel (``operators/panel/``) wires them to buttons.

* :func:`save_class_thresholds`: the table from an evaluation, saved as a bank version.
* :func:`show_reference_audit_row`: a reference and the false positives nearest to it,
  side by side in the grid.
* :func:`untag_audited_reference` / :func:`replace_audited_reference`: untag it, or untag it
  and accept the true-positive prediction of its class that would help most instead.
* :func:`decide_and_next`: accept or reject the current item of the review queue and show
  the next one.

The panel's section *Improve the bank* starts from a segmentation run (its prediction field
and, for thresholds and the audit, its evaluation): :func:`thresholds_for_run`,
:func:`audit_for_run`, :func:`review_for_run` and :func:`compare_for_runs`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fiftyone_ntt.curation.reference_audit import suggest_replacement
from fiftyone_ntt.fiftyone.app.activity import bank_of_field
from fiftyone_ntt.fiftyone.app.panel_state import Effect
from fiftyone_ntt.fiftyone.banks.audit import judged_predictions, reference_audit
from fiftyone_ntt.fiftyone.banks.index import load_bank
from fiftyone_ntt.fiftyone.banks.review import REVIEW_VIEW, review_queue
from fiftyone_ntt.fiftyone.banks.thresholds import (
    class_thresholds_table,
    compare_evaluations,
    save_thresholds,
)
from fiftyone_ntt.fiftyone.curation.decisions import (
    accept_predictions,
    reject_predictions,
    untag_labels,
)
from fiftyone_ntt.fiftyone.dataset.fields import NEG_TAG, REF_TAG
from fiftyone_ntt.fiftyone.dataset.store import root_dataset

__all__ = [
    "audit_for_run",
    "compare_for_runs",
    "decide_and_next",
    "replace_audited_reference",
    "review_for_run",
    "save_class_thresholds",
    "show_reference_audit_row",
    "thresholds_for_run",
    "untag_audited_reference",
]


def _run_bank(collection: Any, pred_field: str | None) -> str:
    """The bank that wrote ``pred_field`` (a segmentation of this plugin)."""
    bank_key, _ = bank_of_field(root_dataset(collection), pred_field)
    if not bank_key:
        raise ValueError(
            f"field {pred_field!r} was not written by a No Time to Train segmentation: "
            "choose a segmentation of the Runs table (or segment this view first)"
        )
    return bank_key


def _run_evaluation(pred_field: str | None, eval_key: str | None) -> str:
    if not eval_key:
        raise ValueError(
            f"segmentation {pred_field!r} has no evaluation yet: click Evaluate in its row of "
            "the Runs table, then try again"
        )
    return eval_key


def thresholds_for_run(
    collection: Any, pred_field: str, eval_key: str | None, **options: Any
) -> Effect:
    """The per-class thresholds table of segmentation ``pred_field`` from its evaluation
    ``eval_key`` (``options``: ``objective``, ``target_precision``), nothing saved;
    ``result`` is :func:`~fiftyone_ntt.fiftyone.banks.thresholds.class_thresholds_table`'s."""
    bank_key = _run_bank(collection, pred_field)
    table = class_thresholds_table(
        collection, _run_evaluation(pred_field, eval_key), bank_key, **options
    )
    if table["pred_field"] != pred_field:
        raise ValueError(
            f"evaluation {eval_key!r} is of field {table['pred_field']!r}, not "
            f"{pred_field!r}: evaluate {pred_field!r} first"
        )
    return Effect(
        message=f"{table['message']} ({bank_key!r} v{table['bank_version']}, evaluation "
        f"{eval_key!r}); 'Save as bank version' keeps them",
        variant="info" if table["thresholds"] else "warning",
        result=table,
    )


def audit_for_run(collection: Any, pred_field: str, eval_key: str | None) -> Effect:
    """The reference audit of the bank version that made ``pred_field``, against its
    evaluation ``eval_key``; ``result`` is
    :func:`~fiftyone_ntt.fiftyone.banks.audit.reference_audit`'s (most harmful first)."""
    bank_key = _run_bank(collection, pred_field)
    audit = reference_audit(collection, _run_evaluation(pred_field, eval_key), bank_key)
    return Effect(message=audit["message"], variant="info", result=audit)


def review_for_run(collection: Any, pred_field: str, *, overwrite: bool = False) -> Effect:
    """Queue the undecided predictions of ``pred_field`` (scored by the latest version of
    the bank that made them) as the saved view "to review", and show it; ``extra["next"]``
    is its first item, ``extra["left"]`` its length."""
    bank_key = _run_bank(collection, pred_field)
    queue = review_queue(collection, pred_field, bank_key, overwrite=overwrite)
    ids = queue["label_ids"]
    if not ids:
        return Effect(
            message=f"nothing to review in {pred_field!r}: every prediction is accepted or "
            "rejected",
            variant="warning",
            result=queue,
        )
    return Effect(
        message=queue["message"],
        variant="info",
        view=root_dataset(collection).load_saved_view(REVIEW_VIEW),
        reload=True,
        result=queue,
        extra={"next": ids[0], "left": len(ids)},
    )


def compare_for_runs(collection: Any, before: str, after: str) -> Effect:
    """Per class, the evaluations ``before`` and ``after`` side by side (e.g. before and
    after a bank version with thresholds); ``result``: the rows of
    :func:`~fiftyone_ntt.fiftyone.banks.thresholds.compare_evaluations`."""
    rows = compare_evaluations(collection, before, after)
    return Effect(
        message=f"evaluation {before!r} (before) and {after!r} (after), per class",
        variant="info",
        result=rows,
    )


def save_class_thresholds(collection: Any, eval_key: str, bank_key: str, **options: Any) -> Effect:
    """Compute the thresholds of ``bank_key`` from ``eval_key`` and save them as a new bank
    version (``options``: ``objective``, ``target_precision``)."""
    table = class_thresholds_table(collection, eval_key, bank_key, **options)
    info = save_thresholds(
        collection,
        bank_key,
        table["thresholds"],
        source=f"thresholds from eval {eval_key!r}",
        version=table["bank_version"],
    )
    return Effect(
        message=f"{table['message']}; saved as version {info['version']} of {bank_key!r}: "
        "segment again to apply them, then evaluate to compare",
        variant="success" if table["thresholds"] else "warning",
        result={"table": table, "version": info},
    )


def show_reference_audit_row(collection: Any, row: dict[str, Any], pred_field: str) -> Effect:
    """The reference of an audit row (:func:`~fiftyone_ntt.fiftyone.banks.audit.
    reference_audit`) and the false positives nearest to it, only those labels shown."""
    dataset = root_dataset(collection)
    field = row.get("field")
    if not field:
        raise ValueError(
            f"reference {row.get('reference_id')!r} has no recorded field (a bank built "
            "before fields were recorded); rebuild the bank"
        )
    labels = [{"label_id": row["reference_id"], "field": field}]
    labels += [{"label_id": i, "field": pred_field} for i in row.get("false_positives") or []]
    sample_ids = _sample_ids(dataset, labels)
    found = [
        dict(x, sample_id=sample_ids[x["label_id"]]) for x in labels if x["label_id"] in sample_ids
    ]
    view = dataset.select_labels(labels=found)
    n = len(labels) - 1
    return Effect(
        message=f"reference {row['reference_id']} ({row['class_name']}) and the {n} false "
        "positive(s) nearest to it",
        variant="info",
        view=view,
    )


def _sample_ids(dataset: Any, labels: list[dict[str, str]]) -> dict[str, str]:
    out = {}
    for field in {x["field"] for x in labels}:
        wanted = {x["label_id"] for x in labels if x["field"] == field}
        ids, label_ids = dataset.values(["id", f"{field}.detections.id"])
        for sample_id, found in zip(ids, label_ids):
            for label_id in found or []:
                if label_id in wanted:
                    out[label_id] = sample_id
    return out


def untag_audited_reference(collection: Any, row: dict[str, Any]) -> Effect:
    """Remove the reference tag from an audited reference (the bank changes at its next
    build: a new version)."""
    removed = untag_labels(collection, row["field"], [row["reference_id"]], tags=(REF_TAG,))
    return Effect(
        message=f"untagged reference {row['reference_id']} ({row['class_name']}); rebuild "
        "the bank for a version without it"
        if removed
        else f"reference {row['reference_id']} carried no reference tag any more",
        variant="success" if removed else "warning",
        reload=True,
        result=removed,
    )


def replace_audited_reference(
    collection: Any, audit: dict[str, Any], row: dict[str, Any]
) -> Effect:
    """Untag the audited reference and accept, in its place, the true-positive prediction
    of its class that would raise the class's ranked precision most
    (:func:`fiftyone_ntt.curation.reference_audit.suggest_replacement`).

    Args:
        audit: the result of :func:`~fiftyone_ntt.fiftyone.banks.audit.reference_audit`.
        row: one of its rows.
    """
    dataset = root_dataset(collection)
    bank = load_bank(collection, audit["bank_key"], audit["bank_version"])
    judged = judged_predictions(dataset, audit["eval_key"], audit["pred_field"])
    index = {name: i for i, name in enumerate(bank.class_names)}
    keep = [i for i, label in enumerate(judged["labels"]) if label in index]
    features = np.stack([judged["features"][i] for i in keep])
    class_ids = np.array([index[judged["labels"][i]] for i in keep])
    is_tp = np.array([judged["is_tp"][i] for i in keep], dtype=bool)
    c = index[row["class_name"]]
    candidates = np.flatnonzero(is_tp & (class_ids == c))
    r = bank.reference_ids.index(row["reference_id"])
    best, value = suggest_replacement(
        bank.features,
        bank.class_ids,
        len(bank.class_names),
        r,
        features[candidates],
        features,
        class_ids,
        is_tp,
    )
    if best is None:
        return Effect(
            message=f"no true-positive prediction of {row['class_name']!r} to suggest in "
            f"place of reference {row['reference_id']}; untag it, or accept one by hand",
            variant="warning",
        )
    label_id = judged["ids"][keep[candidates[best]]]
    untag_labels(collection, row["field"], [row["reference_id"]], tags=(REF_TAG,))
    accept_predictions(dataset, audit["pred_field"], [label_id])
    return Effect(
        message=f"replaced reference {row['reference_id']} by prediction {label_id} "
        f"(ranked precision of {row['class_name']!r} {value:.3f} instead of "
        f"{row['precision']:.3f}); rebuild the bank for a version with it",
        reload=True,
        result={"accepted": label_id, "precision": value},
    )


def decide_and_next(collection: Any, pred_field: str, label_id: str, decision: str) -> Effect:
    """Accept (``"accept"``) or reject (``"reject"``) a prediction of the review queue and
    show the queue from the next undecided item on (the saved view "to review", the decided
    labels left out)."""
    if decision not in ("accept", "reject"):
        raise ValueError(f"decision={decision!r}; use 'accept' or 'reject'")
    dataset = root_dataset(collection)
    if not dataset.has_saved_view(REVIEW_VIEW):
        raise ValueError(
            f"dataset {dataset.name!r} has no review queue (saved view {REVIEW_VIEW!r}); make "
            "one with 'NTT · Review queue'"
        )
    decide = accept_predictions if decision == "accept" else reject_predictions
    decide(dataset, pred_field, [label_id])
    queue = dataset.load_saved_view(REVIEW_VIEW)
    order = queue.values(f"{pred_field}.id")
    # the decisions as the dataset holds them (a saved patches view keeps its own copy of
    # the labels, not updated when the dataset's labels are tagged)
    tagged = dataset.select_labels(ids=order, fields=pred_field)
    ids, tags = tagged.values([f"{pred_field}.detections.id", f"{pred_field}.detections.tags"])
    decided = {
        i
        for sample_ids, sample_tags in zip(ids, tags)
        for i, t in zip(sample_ids or [], sample_tags or [])
        if {REF_TAG, NEG_TAG} & set(t or ())
    }
    undecided = [i for i in order if i not in decided]
    remaining = queue.select(undecided, ordered=True)  # patch ids are the label ids
    next_id = undecided[0] if undecided else None
    return Effect(
        message=f"{decision}ed {label_id}; "
        + (f"{len(undecided)} left to review" if undecided else "the queue is done"),
        view=remaining,
        reload=True,
        extra={"next": next_id, "left": len(undecided)},
    )
