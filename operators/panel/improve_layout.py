"""What the *Improve the bank* section draws (its buttons: :mod:`.improve`)."""

from __future__ import annotations

import fiftyone.operators.types as types

from . import widgets
from .improve import AT, ROWS, chosen_run, run_choices, short_id


def render_improve(panel, obj: types.Object, state) -> None:
    """The section: the run chooser, its three buttons, and what they produced."""
    widgets.heading(obj, "improve_heading", "Improve the bank")
    rows = run_choices(state)
    row = chosen_run(state)
    if row is None:
        obj.view(
            "improve_empty",
            types.Notice(
                label="Segment and evaluate a view first: thresholds, the audit and "
                "the review queue start from a run."
            ),
        )
        widgets.message(obj, state, AT)
        return
    choices = types.DropdownView(label="Segmentation to improve from", space=8)
    for r in rows:
        evaluation = f", evaluation {r['evaluation']}" if r.get("evaluation") else ""
        choices.add_choice(r["field"], label=f"{r['field']} ({r['bank']}{evaluation})")
    obj.enum(
        "improve_field",
        [r["field"] for r in rows],
        default=row["field"],
        view=choices,
        on_change=panel.improve_choose,
    )
    evaluated = bool(row.get("evaluation"))
    widgets.buttons(
        obj,
        "improve_buttons",
        [
            ("improve_thresholds_btn", "Thresholds", panel.improve_thresholds, not evaluated),
            ("improve_audit_btn", "Audit references", panel.improve_audit, not evaluated),
            ("improve_review_btn", "Review queue", panel.improve_review, False),
        ],
    )
    if not evaluated:
        obj.md(
            "Thresholds and the audit need an evaluation of this run: *Evaluate* in its row.",
            name="improve_needs_eval",
        )
    widgets.message(obj, state, AT)
    _thresholds(panel, obj, state, row)
    _audit(panel, obj, state)
    _review(panel, obj, state)


def _thresholds(panel, obj, state, row) -> None:
    table = state.get("improve_thresholds")
    if not table:
        return
    obj.md(
        f"**Thresholds** of {table['bank_key']} v{table['bank_version']} from evaluation "
        f"*{table['eval_key']}* (best F1 per class)",
        name="improve_thresholds_title",
    )
    view = widgets.table(
        [
            ("class", "Class"),
            ("threshold", "Threshold"),
            ("precision", "Precision"),
            ("recall", "Recall"),
            ("f1", "F1"),
            ("kept", "Kept"),
        ]
    )
    rows = state.get("improve_thresholds" + ROWS) or []
    for index, r in enumerate(rows):
        if r.get("reason"):
            view.add_tooltip(index, "class", r["reason"])
    obj.list("improve_thresholds" + ROWS, types.Object(), view=view)
    notes = [f"**{r['class']}**: {r['reason']}" for r in rows if r.get("reason")]
    if notes:
        obj.md("  \n".join(notes), name="improve_thresholds_notes")
    saved = table.get("saved")
    buttons = [
        (
            "improve_save",
            f"Saved as v{saved}" if saved else "Save as bank version",
            panel.improve_save_thresholds,
            bool(saved) or not table.get("count"),
        )
    ]
    after = row.get("evaluation")
    if saved and after and after != table["eval_key"]:
        buttons.append(
            (
                "improve_compare_btn",
                f"Compare with {table['eval_key']}",
                panel.improve_compare,
                False,
            )
        )
    widgets.buttons(obj, "improve_threshold_buttons", buttons)
    compare = state.get("improve_compare")
    if compare:
        obj.md(
            f"**Before → after**: evaluation *{compare['before']}* → *{compare['after']}*",
            name="improve_compare_title",
        )
        obj.list(
            "improve_compare" + ROWS,
            types.Object(),
            view=widgets.table(
                [("class", "Class"), ("precision", "Precision"), ("recall", "Recall"), ("f1", "F1")]
            ),
        )


def _audit(panel, obj, state) -> None:
    audit = state.get("improve_audit")
    if not audit:
        return
    obj.md(
        f"**References that attract false positives** ({audit['bank_key']} "
        f"v{audit['bank_version']}, evaluation *{audit['eval_key']}*), most harmful first",
        name="improve_audit_title",
    )
    rows = state.get("improve_audit" + ROWS) or []
    if not rows:
        obj.view(
            "improve_audit_empty", types.Notice(label="No reference attracts a false positive.")
        )
        return
    view = widgets.table(
        [
            ("reference", "Reference"),
            ("class", "Class"),
            ("fp", "FPs"),
            ("tp", "TPs"),
            ("precision", "Precision"),
            ("without", "Without it"),
        ]
    )
    for index, r in enumerate(rows):
        view.add_tooltip(index, "reference", f"{r['reference_id']} ({r['field']})")
        view.add_tooltip(index, "without", f"gain without it: {r['harm']}")
    for name, label, tooltip, callback in (
        ("show", "Show", "The reference and its nearest false positives", panel.improve_show),
        ("untag", "Untag", "Remove its reference tag (rebuild the bank)", panel.improve_untag),
        (
            "replace",
            "Replace",
            "Untag it and accept the prediction that helps its class most",
            panel.improve_replace,
        ),
    ):
        view.add_row_action(name, callback, label=label, tooltip=tooltip)
    obj.list("improve_audit" + ROWS, types.Object(), view=view)
    if audit.get("quiet"):
        obj.md(
            f"{audit['quiet']} other reference(s) attract no false positive.",
            name="improve_audit_quiet",
        )


def _review(panel, obj, state) -> None:
    review = state.get("improve_review")
    if not review:
        return
    if review.get("next"):
        text = (
            f"**To review**: {review['left']} prediction(s) of *{review['pred_field']}* "
            f"left, most informative first (saved view 'to review', in the grid); first: "
            f"{short_id(review['next'])}"
        )
    else:
        text = f"**To review**: nothing left in *{review['pred_field']}*"
    obj.md(text, name="improve_review_text")
    done = not review.get("next")
    widgets.buttons(
        obj,
        "improve_review_buttons",
        [
            ("improve_accept", "Accept & next", panel.improve_accept, done),
            ("improve_reject", "Reject & next", panel.improve_reject, done),
        ],
    )
