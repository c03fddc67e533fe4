"""``ntt_class_thresholds``: per-class score thresholds of a bank from an evaluation (or from
accepted / rejected predictions), shown as a table and optionally saved as a new bank version
(:mod:`fiftyone_ntt.fiftyone.banks.thresholds`, docs/method.md §16.1)."""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_ntt.fiftyone.banks.thresholds import (
    class_thresholds_table,
    evaluated_predictions,
    save_thresholds,
    thresholds_from_decisions_table,
)

from ._forms import (
    bank_choice,
    detections_fields,
    error_output,
    field_choice,
    invalid,
    reported,
    table,
)

THRESHOLD_COLUMNS = {
    "class_name": "class",
    "threshold": "threshold",
    "precision": "precision",
    "recall": "recall",
    "f1": "F1",
    "kept": "kept",
    "total": "detections",
    "reason": "note",
}


def eval_and_bank(inputs: types.Object, ctx) -> tuple[str | None, str | None]:
    """The bank and evaluation fields of the curation forms, checked together: the
    evaluation must be of a field segmented with that bank (the library's message)."""
    bank, bank_prop, banks = bank_choice(
        inputs, ctx, description="The bank whose predictions were evaluated"
    )
    evals = ctx.dataset.list_evaluations()
    choices = types.Dropdown(label="Evaluation")
    for key in evals:
        choices.add_choice(key, label=key)
    default = evals[-1] if evals else None
    eval_key = ctx.params.get("eval_key", default)
    eval_prop = inputs.enum(
        "eval_key",
        evals or [""],
        label="Evaluation",
        description="An evaluation ('NTT 5 · Evaluate') of predictions made with the bank",
        default=default,
        view=choices,
    )
    if not banks:
        invalid(inputs, bank_prop, "bank", "this dataset has no memory bank: build one first")
    elif not evals:
        invalid(inputs, eval_prop, "eval_key", "no evaluation yet: run 'NTT 5 · Evaluate'")
    elif bank and eval_key:
        try:
            evaluated_predictions(ctx.dataset, eval_key, bank)
        except ValueError as error:
            invalid(inputs, eval_prop, "eval_key", str(error))
    return bank, eval_key


def rounded(rows: list[dict]) -> list[dict]:
    """Rows for a table: floats to 3 decimals, None as "-"."""
    return [
        {
            k: ("-" if v is None else round(v, 3) if isinstance(v, float) else v)
            for k, v in row.items()
        }
        for row in rows
    ]


class NTTClassThresholds(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="ntt_class_thresholds",
            label="NTT 6 · Class thresholds",
            description=(
                "6 · Chooses a score threshold per class from an evaluation (best F1, or a "
                "precision you set) or from your accept/reject decisions; saves them with the "
                "bank as a new version that segment and preview apply"
            ),
            icon="tune",
            dynamic=True,
            allow_immediate_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        source = ctx.params.get("source", "evaluation")
        inputs.enum(
            "source",
            ["evaluation", "decisions"],
            default="evaluation",
            label="From",
            description="an evaluation on ground truth, or your accepted/rejected predictions",
            view=types.RadioGroup(),
        )
        if source == "decisions":
            _, bank_prop, banks = bank_choice(inputs, ctx)
            if not banks:
                invalid(inputs, bank_prop, "bank", "this dataset has no memory bank")
            fields = detections_fields(ctx)
            pred_field, pred_prop = field_choice(
                inputs, ctx, "pred_field", "Predictions", "The field you curated", fields
            )
            if pred_field not in fields:
                invalid(
                    inputs, pred_prop, "pred_field", f"{pred_field!r} is not a Detections field"
                )
        else:
            eval_and_bank(inputs, ctx)
        objective = ctx.params.get("objective", "f1")
        inputs.enum(
            "objective",
            ["f1", "precision"],
            default="f1",
            label="Choose",
            description="f1: the threshold with the best F1; precision: the lowest reaching "
            "the target precision",
            view=types.RadioGroup(),
        )
        if objective == "precision":
            target = ctx.params.get("target_precision", 0.9)
            prop = inputs.float(
                "target_precision", default=0.9, label="Target precision", required=True
            )
            if not isinstance(target, (int, float)) or not 0 < target <= 1:
                invalid(
                    inputs,
                    prop,
                    "target_precision",
                    f"{target!r} must lie in (0, 1], e.g. 0.9",
                )
        inputs.bool(
            "save",
            default=False,
            label="Save with the bank",
            description="as a new bank version (the old one stays); segment, preview and "
            "apply_model with it apply the thresholds",
        )
        return types.Property(inputs, view=types.View(label="Class thresholds"))

    @reported
    def execute(self, ctx):
        params = ctx.params
        objective = params.get("objective") or "f1"
        target = params.get("target_precision") if objective == "precision" else None
        if params.get("source") == "decisions":
            result = thresholds_from_decisions_table(
                ctx.dataset,
                params.get("pred_field"),
                params.get("bank"),
                objective=objective,
                target_precision=target,
            )
            source = f"thresholds from decisions on {params.get('pred_field')!r}"
        else:
            result = class_thresholds_table(
                ctx.dataset,
                params.get("eval_key"),
                params.get("bank"),
                objective=objective,
                target_precision=target,
            )
            source = f"thresholds from eval {params.get('eval_key')!r}"
        result["table"] = rounded(result.pop("rows"))
        result.pop("curves")  # large; the Model Evaluation panel draws PR curves
        if params.get("save"):
            info = save_thresholds(
                ctx.dataset,
                params.get("bank"),
                result["thresholds"],
                source=source,
                version=result.get("bank_version"),
            )
            result["saved"] = f"saved as version {info['version']} of {params.get('bank')!r}"
        return result

    def resolve_output(self, ctx):
        failed = error_output(ctx, "Thresholds not computed")
        if failed is not None:
            return failed
        outputs = types.Object()
        outputs.str("message", label="Summary")
        table(outputs, "table", "Per class", THRESHOLD_COLUMNS)
        if (ctx.results or {}).get("saved"):
            outputs.str("saved", label="Saved")
        return types.Property(outputs, view=types.View(label="Class thresholds"))
