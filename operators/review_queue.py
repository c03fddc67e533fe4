"""``ntt_review_queue``: the undecided predictions of a field, most informative first, as the
saved view "to review" (:mod:`fiftyone_ntt.fiftyone.banks.review`, docs/method.md §16.3)."""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_ntt.fiftyone.banks.review import REVIEW_VIEW, review_queue

from ._forms import bank_choice, detections_fields, error_output, field_choice, invalid, reported


class NTTReviewQueue(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="ntt_review_queue",
            label="NTT 6 · Review queue",
            description=(
                f"6 · Saves the view {REVIEW_VIEW!r}: the predictions you have not accepted or "
                "rejected, those whose decision teaches the bank most first"
            ),
            icon="playlist_add_check",
            dynamic=True,
            allow_immediate_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx, action_description="Queue")
        description = "Its thresholds, prototypes and negatives score the queue"
        _, bank_prop, banks = bank_choice(inputs, ctx, description=description)
        if not banks:
            invalid(inputs, bank_prop, "bank", "this dataset has no memory bank")
        fields = detections_fields(ctx)
        pred_field, pred_prop = field_choice(
            inputs, ctx, "pred_field", "Predictions", "The field to review", fields
        )
        if pred_field not in fields:
            invalid(inputs, pred_prop, "pred_field", f"{pred_field!r} is not a Detections field")
        inputs.int("limit", default=None, label="At most", description="empty: all")
        if REVIEW_VIEW in ctx.dataset.list_saved_views():
            inputs.bool(
                "overwrite",
                default=False,
                label=f"Replace the saved view {REVIEW_VIEW!r}",
                description="needed only if it is a view of your own, not a review queue",
            )
        return types.Property(inputs, view=types.View(label="Review queue"))

    @reported
    def execute(self, ctx):
        params = ctx.params
        result = review_queue(
            ctx.target_view(),
            params.get("pred_field"),
            params.get("bank"),
            limit=params.get("limit") or None,
            overwrite=bool(params.get("overwrite", False)),
        )
        result["queued"] = len(result.pop("label_ids"))
        result.pop("scores")
        if not ctx.delegated:
            ctx.trigger("reload_dataset")
        return result

    def resolve_output(self, ctx):
        failed = error_output(ctx, "Queue not made")
        if failed is not None:
            return failed
        outputs = types.Object()
        outputs.str("message", label="Summary")
        outputs.str("view_name", label="Saved view")
        outputs.int("queued", label="Predictions queued")
        return types.Property(outputs, view=types.View(label="Review queue"))
