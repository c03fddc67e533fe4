"""``ntt_similar_predictions``: a similarity index over a field's predictions and the bank's
references and negatives, with our features, so that the App's "sort by similarity" works on
a selected prediction or reference
(:func:`fiftyone_ntt.fiftyone.analysis.maps.similar_predictions`)."""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_ntt.fiftyone.analysis.maps import similar_predictions

from ._forms import delegation, error_output, progress_reporter, reported, schedule_notice
from .map_predictions import MAP_DELEGATE_ABOVE, field_and_bank, prediction_count


class NTTSimilarPredictions(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="ntt_similar_predictions",
            label="NTT 7 · Similarity index of predictions",
            description=(
                "7 · Indexes a field's predictions, the bank's references and its negatives by "
                "their features, for 'sort by similarity' on a selected label"
            ),
            icon="image_search",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_delegation(self, ctx):
        count = prediction_count(ctx, ctx.params.get("pred_field"))
        return delegation(count, MAP_DELEGATE_ABOVE)

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx, action_description="Index")
        pred_field, _ = field_and_bank(inputs, ctx)
        inputs.str(
            "backend",
            default="sklearn",
            label="Backend",
            description="sklearn (in memory), or a vector database FiftyOne supports (e.g. "
            "qdrant, milvus, lancedb) configured in your brain config",
        )
        count = prediction_count(ctx, pred_field)
        schedule_notice(inputs, count, MAP_DELEGATE_ABOVE, unit="predictions")
        return types.Property(inputs, view=types.View(label="Similarity index of predictions"))

    @reported
    def execute(self, ctx):
        params = ctx.params
        result = similar_predictions(
            ctx.target_view(),
            params.get("pred_field"),
            params.get("bank"),
            backend=params.get("backend") or "sklearn",
            progress=progress_reporter(ctx, "index stages"),
        )
        result["hint"] = (
            f"Open the patches of {result['field']!r}, select one, then 'Sort by similarity' "
            f"with brain key {result['brain_key']!r}"
        )
        if not ctx.delegated:
            ctx.trigger("reload_dataset")
        return result

    def resolve_output(self, ctx):
        failed = error_output(ctx, "Index not made")
        if failed is not None:
            return failed
        outputs = types.Object()
        outputs.str("brain_key", label="Brain key")
        outputs.str("field", label="Map field (its patches are indexed)")
        outputs.int("points", label="Labels indexed")
        outputs.str("hint", label="How to use it")
        return types.Property(outputs, view=types.View(label="Similarity index"))
