"""Per-class score thresholds of a bank, from an evaluation or from decisions, saved as a new
bank version (issue 23 §1, docs/method.md §16.1).

:func:`class_thresholds_table` reads an evaluation of predictions made with bank
``bank_key`` (``ntt_evaluate`` / :func:`~fiftyone_ntt.fiftyone.evaluation.evaluate.evaluate`:
FiftyOne's COCO evaluator writes ``"tp"``/``"fp"`` in attribute ``<eval_key>`` of each
evaluated prediction and ``"tp"``/``"fn"`` on each evaluated ground-truth label) and
computes the table with :func:`fiftyone_ntt.curation.thresholds.thresholds_from_matches`.
:func:`thresholds_from_decisions_table` does the same from accepted / rejected predictions.
:func:`save_thresholds` writes a new version of the bank whose settings hold them
(``config["class_score_thresholds"]``): segment, preview and ``apply_model`` with that version
apply them through the settings resolver
(:func:`~fiftyone_ntt.fiftyone.runs.settings.resolve_settings`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from fiftyone_ntt.curation.thresholds import (
    MatchedDetections,
    pr_curve,
    thresholds_from_decisions,
    thresholds_from_matches,
)
from fiftyone_ntt.fiftyone.banks.build import claim_version
from fiftyone_ntt.fiftyone.banks.history import all_versions, describe_diff, version_store_key
from fiftyone_ntt.fiftyone.banks.index import get_bank_info, load_bank, version_summary
from fiftyone_ntt.fiftyone.banks.keys import bank_path
from fiftyone_ntt.fiftyone.dataset.fields import NEG_TAG, REF_TAG
from fiftyone_ntt.fiftyone.dataset.store import BANK_KEY_PREFIX, execution_store, root_dataset

__all__ = [
    "bank_thresholds",
    "class_thresholds_table",
    "compare_evaluations",
    "evaluated_predictions",
    "save_thresholds",
    "thresholds_from_decisions_table",
]


def bank_thresholds(collection: Any, bank_key: str, version: int | None = None) -> dict:
    """The class thresholds a bank version carries (``{}`` for none)."""
    config = get_bank_info(collection, bank_key, version).get("config") or {}
    return dict(config.get("class_score_thresholds") or {})


def evaluated_predictions(
    collection: Any, eval_key: str, bank_key: str, version: int | None = None
) -> dict[str, Any]:
    """Where an evaluation's predictions come from, checked against a bank version.

    Returns:
        ``pred_field``, ``gt_field``, ``bank_version`` (the version the predictions were
        made with).

    Raises:
        ValueError: no such evaluation; not a detection evaluation; a video evaluation;
            predictions that are not a No Time to Train run, or of another bank or bank
            version; predictions segmented again after the evaluation (each message names
            the values and the fix).
    """
    dataset = root_dataset(collection)
    evals = dataset.list_evaluations()
    if eval_key not in evals:
        raise ValueError(
            f"dataset {dataset.name!r} has no evaluation {eval_key!r}; evaluations: {evals} "
            "(run 'NTT 5 · Evaluate' / ntt_evaluate first)"
        )
    info = dataset.get_evaluation_info(eval_key)
    pred_field = getattr(info.config, "pred_field", None)
    gt_field = getattr(info.config, "gt_field", None)
    if not pred_field or not gt_field:
        raise ValueError(
            f"evaluation {eval_key!r} is not a detection evaluation (no prediction / "
            "ground-truth field); choose one made by ntt_evaluate"
        )
    if pred_field.startswith("frames."):
        raise ValueError(
            f"evaluation {eval_key!r} is of video frames ({pred_field!r}); per-class "
            "thresholds are computed from image evaluations: evaluate "
            "dataset.to_frames(sample_frames=True)"
        )
    if pred_field not in dataset.list_runs():
        raise ValueError(
            f"evaluation {eval_key!r} is of field {pred_field!r}, which no No Time to Train "
            f"run wrote; thresholds belong to a bank: evaluate the field segment wrote with "
            f"bank {bank_key!r}"
        )
    run = dataset.get_run_info(pred_field)
    run_bank = getattr(run.config, "bank_key", None)
    run_version = getattr(run.config, "bank_version", None)
    if run_bank != bank_key:
        raise ValueError(
            f"evaluation {eval_key!r} is of field {pred_field!r}, segmented with bank "
            f"{run_bank!r}, not {bank_key!r}: choose bank {run_bank!r}, or evaluate a field "
            f"segmented with {bank_key!r}"
        )
    wanted = int(version) if version is not None else None
    if wanted is not None and run_version is not None and int(run_version) != wanted:
        raise ValueError(
            f"evaluation {eval_key!r} is of field {pred_field!r}, segmented with version "
            f"{run_version} of bank {bank_key!r}, not version {wanted}: choose version "
            f"{run_version}, or segment and evaluate again with version {wanted}"
        )
    if run.timestamp and info.timestamp and run.timestamp > info.timestamp:
        raise ValueError(
            f"field {pred_field!r} was segmented again after evaluation {eval_key!r}: the "
            "evaluation no longer describes its predictions; evaluate it again"
        )
    return {
        "pred_field": pred_field,
        "gt_field": gt_field,
        "bank_version": int(run_version) if run_version is not None else None,
    }


def _matches(
    collection: Any, eval_key: str, pred_field: str, gt_field: str, classes: list[str]
) -> dict[str, MatchedDetections]:
    dataset = root_dataset(collection)
    view = dataset.load_evaluation_view(eval_key)
    labels, scores, outcomes, gt_labels, gt_outcomes = view.values(
        [
            f"{pred_field}.detections.label",
            f"{pred_field}.detections.confidence",
            f"{pred_field}.detections.{eval_key}",
            f"{gt_field}.detections.label",
            f"{gt_field}.detections.{eval_key}",
        ]
    )
    by_class: dict[str, tuple[list[float], list[bool]]] = {c: ([], []) for c in classes}
    for sample in zip(labels, scores, outcomes):
        for label, score, outcome in zip(*(v or [] for v in sample)):
            if outcome in ("tp", "fp") and label in by_class:
                by_class[label][0].append(float(score if score is not None else 1.0))
                by_class[label][1].append(outcome == "tp")
    num_gt = dict.fromkeys(classes, 0)
    for sample_labels, sample_outcomes in zip(gt_labels, gt_outcomes):
        for label, outcome in zip(sample_labels or [], sample_outcomes or []):
            if outcome in ("tp", "fn") and label in num_gt:
                num_gt[label] += 1
    return {c: MatchedDetections(s, t, num_gt[c]) for c, (s, t) in by_class.items()}


def _table(rows, matches, extra: dict[str, Any]) -> dict[str, Any]:
    curves = {}
    for name, matched in matches.items():
        curve = pr_curve(matched) if len(matched.scores) else {}
        curves[name] = {k: [float(x) for x in v] for k, v in curve.items()}
    thresholds = {r.class_name: r.threshold for r in rows if r.threshold is not None}
    skipped = [f"{r.class_name}: {r.reason}" for r in rows if r.threshold is None]
    text = f"thresholds for {len(thresholds)} of {len(rows)} class(es)"
    if skipped:
        text += "; none for " + "; ".join(skipped)
    return {
        **extra,
        "rows": [r.to_dict() for r in rows],
        "thresholds": thresholds,
        "curves": curves,
        "message": text,
    }


def class_thresholds_table(
    collection: Any,
    eval_key: str,
    bank_key: str,
    *,
    version: int | None = None,
    objective: str = "f1",
    target_precision: float | None = None,
) -> dict[str, Any]:
    """Per-class thresholds of bank ``bank_key`` from evaluation ``eval_key``.

    Args:
        collection: the dataset (or a view of it).
        eval_key: an ``ntt_evaluate`` evaluation of a field segmented with the bank.
        bank_key: the bank.
        version: the bank version the evaluated predictions must come from (default: the
            one they were made with).
        objective: ``"f1"`` or ``"precision"`` (the lowest threshold reaching
            ``target_precision``).
        target_precision: in ``(0, 1]`` for ``objective="precision"``.

    Returns:
        ``eval_key``, ``pred_field``, ``gt_field``, ``bank_key``, ``bank_version``, ``rows``
        (class, threshold, precision, recall, f1, kept, total, num_gt, reason), ``thresholds``
        (``{class: threshold}`` of the classes that got one), ``curves`` (per class:
        ``thresholds``, ``precision``, ``recall``, ``f1``, ``kept``, ``tp`` lists) and
        ``message``.

    Raises:
        ValueError: see :func:`evaluated_predictions`; an evaluation with no evaluated
            prediction at all.
    """
    where = evaluated_predictions(collection, eval_key, bank_key, version)
    classes = list(get_bank_info(collection, bank_key, where["bank_version"])["classes"])
    matches = _matches(collection, eval_key, where["pred_field"], where["gt_field"], classes)
    if not any(len(m.scores) for m in matches.values()):
        raise ValueError(
            f"evaluation {eval_key!r} holds no evaluated prediction of {where['pred_field']!r} "
            f"(classes {classes}): segment the evaluated samples, then evaluate again"
        )
    rows = thresholds_from_matches(matches, objective, target_precision)  # type: ignore[arg-type]
    return _table(rows, matches, {"eval_key": eval_key, "bank_key": bank_key, **where})


def thresholds_from_decisions_table(
    collection: Any,
    pred_field: str,
    bank_key: str,
    *,
    objective: str = "f1",
    target_precision: float | None = None,
) -> dict[str, Any]:
    """Per-class thresholds from the predictions of ``pred_field`` the user accepted (tag
    ``ntt:ref``) and rejected (tag ``ntt:neg``), with no ground truth
    (:func:`fiftyone_ntt.curation.thresholds.thresholds_from_decisions`: a row warns where a
    class has fewer decisions than needed). Returns the table as
    :func:`class_thresholds_table` (``eval_key`` None)."""
    classes = list(get_bank_info(collection, bank_key)["classes"])
    labels, scores, tags = collection.values(
        [
            f"{pred_field}.detections.label",
            f"{pred_field}.detections.confidence",
            f"{pred_field}.detections.tags",
        ]
    )
    decided: dict[str, tuple[list[float], list[bool]]] = {c: ([], []) for c in classes}
    for sample in zip(labels, scores, tags):
        for label, score, label_tags in zip(*(v or [] for v in sample)):
            accepted, rejected = REF_TAG in (label_tags or []), NEG_TAG in (label_tags or [])
            if label in decided and accepted != rejected:
                decided[label][0].append(float(score if score is not None else 1.0))
                decided[label][1].append(accepted)
    rows = thresholds_from_decisions(decided, objective, target_precision)  # type: ignore[arg-type]
    matches = {c: MatchedDetections(s, a, sum(a)) for c, (s, a) in decided.items()}
    extra = {"eval_key": None, "pred_field": pred_field, "gt_field": None, "bank_key": bank_key}
    return _table(rows, matches, {**extra, "bank_version": None})


def save_thresholds(
    collection: Any,
    bank_key: str,
    thresholds: Mapping[str, float],
    *,
    source: str,
    version: int | None = None,
) -> dict[str, Any]:
    """Save ``thresholds`` with bank ``bank_key`` as a new version.

    The new version holds the same references and negatives as ``version`` (default: the
    latest) and its settings with ``class_score_thresholds = thresholds``; its history note
    is ``source`` (e.g. ``"thresholds from eval 'ev'"``). The old version is kept.

    Returns:
        The new version's summary (as :func:`~fiftyone_ntt.fiftyone.banks.build.build_bank`),
        with ``diff``.

    Raises:
        ValueError: no threshold, or one for a class the bank lacks, or out of ``[0, 1]``.
    """
    # deferred: torch loads only when this runs
    from fiftyone_ntt.config import NTTConfig
    from fiftyone_ntt.memory_bank import now_iso

    bank = load_bank(collection, bank_key, version)
    thresholds = {str(k): float(v) for k, v in dict(thresholds).items()}
    if not thresholds:
        raise ValueError(
            f"no threshold to save for bank {bank_key!r}: every class was reported without "
            "one (see the table's reasons)"
        )
    unknown = sorted(set(thresholds) - set(bank.class_names))
    if unknown:
        raise ValueError(
            f"thresholds for {unknown}, not classes of bank {bank_key!r} "
            f"{list(bank.class_names)}; compute them from an evaluation of this bank"
        )
    config = dict(bank.metadata.get("config") or {})
    config["class_score_thresholds"] = thresholds
    NTTConfig.from_dict(config)  # the one check of the values
    metadata = dict(bank.metadata, config=config, thresholds_source=source)
    new = dataclasses.replace(bank, metadata=metadata, created=now_iso())

    store = execution_store(collection)
    pointer = BANK_KEY_PREFIX + bank_key
    entries = all_versions(store, bank_key, pointer)
    base_version = int(bank.origin.get("bank_version", version or max(entries)))
    base = entries[base_version]
    number = claim_version(store, bank_key, None, False)
    try:
        path = new.save(bank_path(collection, bank_key, number))
        entry = dict(
            base,
            version=number,
            path=str(path),
            config=config,
            size_bytes=path.stat().st_size,
            created=new.created,
            fingerprint=new.fingerprint,
            note=source,
            thresholds_from_version=base_version,
        )
        store.set(version_store_key(bank_key, number), entry)
    except BaseException:
        if not (store.get(version_store_key(bank_key, number)) or {}).get("fingerprint"):
            store.delete(version_store_key(bank_key, number))
        raise
    entries = all_versions(store, bank_key, pointer)
    store.set(pointer, version_summary(entries[max(entries)]))
    info = version_summary(entry)
    info["diff"] = describe_diff(base, entry)
    info["num_versions"] = len(entries)
    return info


def compare_evaluations(collection: Any, before: str, after: str) -> list[dict[str, Any]]:
    """Per class, precision / recall / F1 of two evaluations side by side (e.g. before and
    after a bank version with thresholds), from FiftyOne's reports (IoU 0.5).

    Returns:
        Rows ``class``, ``precision_before``, ``precision_after``, ``recall_before``,
        ``recall_after``, ``f1_before``, ``f1_after`` (None where a class is absent from one),
        classes sorted by name.

    Raises:
        ValueError: an evaluation that does not exist (the message lists them).
    """
    dataset = root_dataset(collection)
    known = dataset.list_evaluations()
    missing = [k for k in (before, after) if k not in known]
    if missing:
        raise ValueError(
            f"no evaluation {missing} on dataset {dataset.name!r}; evaluations: {known}"
        )
    reports = {}
    for key in (before, after):
        report = dataset.load_evaluation_results(key).report()
        reports[key] = {k: v for k, v in report.items() if isinstance(v, dict) and "avg" not in k}
    rows = []
    for name in sorted(set(reports[before]) | set(reports[after])):
        row: dict[str, Any] = {"class": name}
        for metric, source in (
            ("precision", "precision"),
            ("recall", "recall"),
            ("f1", "f1-score"),
        ):
            for when, key in (("before", before), ("after", after)):
                value = reports[key].get(name, {}).get(source)
                row[f"{metric}_{when}"] = None if value is None else float(value)
        rows.append(row)
    return rows
