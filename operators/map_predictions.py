"""``ntt_map_predictions``: the predictions of a field, the bank's references and its
negatives on one embeddings map (FiftyOne's Embeddings panel), with their roles
(:func:`fiftyone_ntt.fiftyone.analysis.maps.map_predictions`). The form helpers here are
shared with ``ntt_similar_predictions``."""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_ntt.fiftyone.analysis.features import feature_count, recompute_features
from fiftyone_ntt.fiftyone.analysis.maps import (
    ROLE_ATTRIBUTE,
    TSNE_LIMIT,
    choose_method,
    map_predictions,
)
from fiftyone_ntt.fiftyone.runs.config import list_ntt_runs

from ._forms import (
    bank_choice,
    delegation,
    detections_fields,
    error_output,
    field_choice,
    invalid,
    progress_reporter,
    reported,
    schedule_notice,
    table,
)

#: Predictions above which the map is scheduled (t-SNE of 10k points took 200 s on our
#: loaded 2-core machine, docs/benchmarks.md "Map").
MAP_DELEGATE_ABOVE = 5_000
#: Above this many predictions the form offers to map a sample of the images.
SAMPLE_ABOVE = 200_000
_METHODS = ("auto", "umap", "tsne", "pca")


def prediction_count(ctx, pred_field: str | None) -> int:
    """Predictions of ``pred_field`` in the operator's target view (0 for a bad field)."""
    if not pred_field:
        return 0
    try:
        return int(ctx.target_view().count(f"{pred_field}.detections"))
    except Exception:  # a form being filled in: no valid target or field yet
        return 0


def field_and_bank(inputs: types.Object, ctx) -> tuple[str | None, str | None]:
    """The predictions field and bank dropdowns, with their problems marked; returns the
    chosen values."""
    fields = detections_fields(ctx)
    runs = [r for r in list_ntt_runs(ctx.dataset) if r in fields]
    pred_field, pred_prop = field_choice(
        inputs,
        ctx,
        "pred_field",
        "Predictions",
        "A field segmented with embeddings=True (features kept)",
        fields,
        default=runs[-1] if runs else None,
    )
    bank_key, bank_prop, banks = bank_choice(
        inputs,
        ctx,
        description="Its references and negatives join the predictions (its latest version)",
    )
    if pred_field not in fields:
        invalid(inputs, pred_prop, "pred_field", f"{pred_field!r} is not a Detections field")
    if not banks:
        invalid(inputs, bank_prop, "bank", "this dataset has no bank: build one first", True)
    return pred_field, bank_key


def _recompute_choice(inputs: types.Object, ctx, pred_field: str | None) -> None:
    """When predictions of the field lack their features: the choice to compute them from
    the stored masks first (features only, no new masks), on by default."""
    if not pred_field:
        return
    try:
        with_features, total = feature_count(ctx.target_view(), pred_field)
    except Exception:  # a form being filled in: no valid target or field yet
        return
    if not total or with_features == total:
        return
    inputs.bool(
        "recompute_features",
        default=True,
        label="Compute the missing features first",
        description=f"{total - with_features} of {total} predictions of {pred_field!r} have "
        "no feature (segmented without 'Keep features'): compute them from their stored masks "
        "with the bank's encoder (features only: masks, boxes and scores stay). Off: the map "
        "leaves those predictions out",
    )


class NTTMapPredictions(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="ntt_map_predictions",
            label="NTT 7 · Map predictions",
            description=(
                "7 · Puts a field's predictions, the bank's references and its negatives on one "
                "embeddings map (Embeddings panel), coloured by class, with their role"
            ),
            icon="scatter_plot",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_delegation(self, ctx):
        count = prediction_count(ctx, ctx.params.get("pred_field"))
        return delegation(count, MAP_DELEGATE_ABOVE)

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx, action_description="Map")
        pred_field, _ = field_and_bank(inputs, ctx)
        count = prediction_count(ctx, pred_field)
        _recompute_choice(inputs, ctx, pred_field)
        choice = types.DropdownView(label="Method", description="How the map is laid out in 2-D")
        for method in _METHODS:
            choice.add_choice(method, label=method)
        method = ctx.params.get("method", "auto")
        inputs.enum("method", list(_METHODS), default="auto", view=choice)
        try:
            chosen, why = choose_method(count, None if method == "auto" else method)
            inputs.view(
                "method_notice",
                types.Notice(label=f"{count} predictions: {chosen} ({why})"),
            )
        except ValueError as error:
            inputs.view("method_error", types.Warning(label=str(error)))
        if count > SAMPLE_ABOVE:
            inputs.view(
                "scale_notice",
                types.Warning(
                    label=f"{count} predictions: a map of this size takes long and much memory "
                    f"(docs/benchmarks.md, 'Map'; t-SNE is used up to {TSNE_LIMIT} points). "
                    "Map a sample of the images below"
                ),
            )
        inputs.int(
            "max_samples",
            label="Map a sample of images",
            description="Map only this many images of the view, drawn at random (empty: all)",
        )
        schedule_notice(inputs, count, MAP_DELEGATE_ABOVE, unit="predictions")
        return types.Property(inputs, view=types.View(label="Map predictions"))

    @reported
    def execute(self, ctx):
        params = ctx.params
        view = ctx.target_view()
        if params.get("max_samples"):
            view = view.take(int(params["max_samples"]), seed=51)
        method = params.get("method") or "auto"
        recomputed = None
        if params.get("recompute_features"):
            recomputed = recompute_features(
                view,
                params.get("pred_field"),
                params.get("bank"),
                progress=progress_reporter(ctx, "samples with features computed"),
            )
        result = map_predictions(
            view,
            params.get("pred_field"),
            params.get("bank"),
            None if method == "auto" else method,
            progress=progress_reporter(ctx, "map stages"),
        )
        if recomputed is not None:
            result["recomputed"] = recomputed["computed"]
        result["role_rows"] = [{"role": k, "count": v} for k, v in result["roles"].items()]
        if not ctx.delegated:
            ctx.trigger("reload_dataset")
            # FiftyOne's Embeddings panel; it lists the new brain key (colour by
            # ntt_role or label in its menu)
            ctx.ops.open_panel("Embeddings", layout="horizontal")
        return result

    def resolve_output(self, ctx):
        failed = error_output(ctx, "Map not made")
        if failed is not None:
            return failed
        outputs = types.Object()
        outputs.str("brain_key", label="Brain key (choose it in the Embeddings panel)")
        outputs.str("method", label="Method")
        outputs.str("why", label="Why")
        outputs.int("points", label="Points")
        outputs.int("skipped", label="Predictions without features (left out)")
        if (ctx.results or {}).get("recomputed") is not None:
            outputs.int("recomputed", label="Features computed from the stored masks")
        table(
            outputs,
            "role_rows",
            f"Points per role ({ROLE_ATTRIBUTE})",
            {"role": "role", "count": "points"},
        )
        return types.Property(outputs, view=types.View(label="Map predictions"))
