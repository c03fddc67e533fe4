"""The panel's actions on runs: the segment prompt, showing, resuming, dismissing, cancelling,
marking failed and evaluating a run (each returns an
:class:`~fiftyone_ntt.fiftyone.app.panel_state.Effect`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fiftyone import ViewField as F

from fiftyone_ntt.fiftyone.app.activity import cancel, mark_failed
from fiftyone_ntt.fiftyone.app.dismissed_runs import dismiss_row
from fiftyone_ntt.fiftyone.app.panel_actions import need_bank
from fiftyone_ntt.fiftyone.app.panel_state import (
    EVAL_PANEL,
    Effect,
)
from fiftyone_ntt.fiftyone.app.preflight import output_conflict
from fiftyone_ntt.fiftyone.banks.index import list_banks
from fiftyone_ntt.fiftyone.evaluation.evaluate import evaluate
from fiftyone_ntt.fiftyone.runs.record import run_state


def segment_prompt(
    collection: Any, plugin: str, bank: str | None, on_success: Any = None
) -> Effect:
    """Open the segment form for the current view with ``bank`` chosen ("Schedule" queues
    it for a delegated worker) and *Keep features (for the map)* on: the panel's runs can be
    mapped (docs/method.md §15)."""
    missing = need_bank(bank)
    if missing:
        return missing
    return Effect(
        prompt={
            "operator": f"{plugin}/ntt_segment",
            "params": {"bank": bank, "embeddings": True},
            "on_success": on_success,
        }
    )


def _need_row(row: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if not row:
        raise ValueError("that run is no longer listed; press Refresh")
    return row


def show_predictions(collection: Any, row: Mapping[str, Any] | None) -> Effect:
    """Show the samples a run wrote predictions to."""
    row = _need_row(row)
    dataset = collection._root_dataset
    out = row.get("field")
    if not out or not dataset.has_sample_field(out):
        return Effect(f"Run {row.get('id')!r} has no prediction field yet", variant="warning")
    view = dataset.exists(out)
    return Effect(f"Showing the {len(view)} sample(s) with {out!r}", view=view, reload=True)


def resume_params(collection: Any, out_field: str) -> dict[str, Any]:
    """The *Segment* form's params that resume the run into ``out_field`` with its own
    settings, as its run record holds them: bank, output field, points per side, score
    threshold, max detections, whether features are kept, whether reference samples are
    skipped, and the number of shards of a split run; ``resume`` marks the form as a
    resume."""

    dataset = collection._root_dataset
    config = dataset.get_run_info(out_field).config
    settings = dict(getattr(config, "ntt_config", None) or {})
    params = {
        "bank": getattr(config, "bank_key", None),
        "out_field": out_field,
        "points_per_side": settings.get("points_per_side"),
        "max_detections": settings.get("max_detections"),
        "score_threshold": settings.get("score_threshold"),
        "embeddings": settings.get("keep_features"),
        "skip_references": bool(getattr(config, "skip_references", True)),
        "num_shards": run_state(dataset, out_field).get("num_shards"),
        "resume": True,
    }
    return {k: v for k, v in params.items() if v is not None}


def resume_problem(collection: Any, params: Mapping[str, Any]) -> str | None:
    """Why the run into ``params["out_field"]`` cannot be resumed with ``params`` (its bank
    was deleted or rebuilt since, or a setting differs), or None."""

    dataset = collection._root_dataset
    out, bank = params.get("out_field"), params.get("bank")
    if bank not in {b["key"] for b in list_banks(dataset)}:
        return f"its memory bank {bank!r} no longer exists"
    return output_conflict(
        dataset,
        out,
        bank,
        score_threshold=params.get("score_threshold"),
        max_detections=params.get("max_detections"),
        points_per_side=params.get("points_per_side"),
        embeddings=params.get("embeddings"),
    )


def resume_prompt(collection: Any, plugin: str, row: Mapping[str, Any] | None) -> Effect:
    """Open the segment form with the interrupted run's own bank, output field and settings
    (:func:`resume_params`): scheduling it resumes (samples already done are skipped). A
    run whose bank was rebuilt or deleted since cannot be resumed: a warning says so."""
    row = _need_row(row)
    params = resume_params(collection, row["field"])
    problem = resume_problem(collection, params)
    if problem:
        return Effect(
            f"Run {row['field']!r} cannot be resumed: {problem}. Segment into a new field "
            "instead ('Segment this view…'), or rebuild the bank it used",
            variant="warning",
        )
    return Effect(prompt={"operator": f"{plugin}/ntt_segment", "params": params})


def dismiss_run(collection: Any, row: Mapping[str, Any] | None) -> Effect:
    """Hide a failed or interrupted row from the Runs table (until its field gets a new
    attempt); the run record, the operation, the predictions and the labels are kept."""

    row = _need_row(row)
    if not row.get("can_dismiss"):
        return Effect(
            f"{row.get('kind') or 'the run'} {row.get('field')!r} is {row.get('state')!r}: "
            "only a failed or interrupted row can be dismissed (Cancel a queued or running "
            "one first)",
            variant="warning",
        )
    dismiss_row(collection, row)
    return Effect(
        f"Dismissed the {row['state']} row of {row.get('field') or row.get('id')!r}: its run "
        "record, predictions and labels are kept; a new run of it shows again",
        result=row.get("id"),
    )


def mark_run_failed(collection: Any, row: Mapping[str, Any] | None) -> Effect:
    """Mark a delegated operation whose worker died as failed (one that reads queued or
    running may be alive: :func:`cancel_run` is for those)."""
    row = _need_row(row)
    op_id = row.get("op_id")
    if not op_id:
        return Effect(
            f"{row.get('id')!r} is not a delegated operation; nothing to mark", variant="warning"
        )
    if row.get("state") in ("queued", "running"):
        return Effect(
            f"Operation {op_id} is {row['state']}: its worker may still be at work; use "
            "Cancel (Mark failed is for an operation whose worker is gone)",
            variant="warning",
        )

    mark_failed(op_id)
    return Effect(f"Marked operation {op_id} as failed", result=op_id)


def cancel_run(collection: Any, row: Mapping[str, Any] | None) -> Effect:
    """Cancel a queued or running row: a delegated operation is marked failed ("cancelled
    by the user", no worker picks it up any more), and a live segmentation stops before
    its next sample, keeping what it wrote (:func:`fiftyone_ntt.fiftyone.app.activity.cancel`)."""

    row = _need_row(row)
    if not row.get("can_cancel"):
        return Effect(
            f"{row.get('kind') or 'the run'} {row.get('field')!r} is {row.get('state')!r}, "
            "not queued or running: nothing to cancel",
            variant="warning",
        )
    field = row.get("field") if row.get("kind") == "segmentation" else None
    done = cancel(collection, op_id=row.get("op_id"), out_field=field or None)
    parts = []
    if done["operation"]:
        parts.append(f"operation {done['operation']} marked failed (cancelled)")
    if done["runs"]:
        parts.append(f"{done['runs']} live run(s) of {field!r} stop before their next sample")
    message = "Cancelled: " + ("; ".join(parts) or "nothing was running any more")
    if done["runs"]:
        message += "; what they wrote is kept (Resume continues)"
    return Effect(message, result=done)


def evaluate_run(collection: Any, row: Mapping[str, Any] | None) -> Effect:
    """Evaluate a run's predictions (FiftyOne's COCO evaluation, masks) on the samples it
    segmented, reference samples left out; key ``eval_<field>``."""

    row = _need_row(row)
    dataset = collection._root_dataset
    out = row["field"]
    summary = evaluate(dataset.exists(out), out, f"eval_{out}", exclude_references=True)
    return Effect(summary["message"], result=summary)


def open_evaluation(collection: Any, row: Mapping[str, Any] | None) -> Effect:
    """Open FiftyOne's Model Evaluation panel on the run's evaluation, and show its TP/FP/FN
    patches: those of the samples it evaluated (its stored view: reference samples left
    out), nothing else."""

    row = _need_row(row)
    key = row.get("evaluation")
    dataset = collection._root_dataset
    if not key or key not in dataset.list_evaluations():
        return Effect(
            f"{row.get('field')!r} is not evaluated yet: press Evaluate", variant="warning"
        )
    eval_id = str(dataset._doc.evaluations[key].id)
    return Effect(
        f"Opened evaluation {key!r} (patches: true positives, false positives, missed)",
        variant="info",
        view=dataset.load_evaluation_view(key)
        .to_evaluation_patches(key)
        .match(F("type").is_in(["tp", "fp", "fn"])),
        open_panel={
            "name": EVAL_PANEL,
            "state": {"view": {"page": "evaluation", "key": key, "id": eval_id, "init": True}},
        },
        result=key,
    )
