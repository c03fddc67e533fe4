"""``ntt_evaluate``: FiftyOne's COCO evaluation of a prediction field (masks), optionally
the exact pycocotools protocol."""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ._forms import (
    DELEGATE_ABOVE_SAMPLES,
    default_gt_field,
    detections_fields,
    field_choice,
    invalid,
    target_size,
)


class NTTEvaluate(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="ntt_evaluate",
            label="No Time to Train: evaluate",
            description=(
                "Evaluates predictions against ground truth with FiftyOne's COCO evaluator "
                "(masks, mAP), for the Model Evaluation panel and TP/FP/FN patches"
            ),
            icon="assessment",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
            default_choice_to_delegated=True,
        )

    def resolve_delegation(self, ctx):
        return True if target_size(ctx) > 20 * DELEGATE_ABOVE_SAMPLES else None

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx, action_description="Evaluate")
        fields = detections_fields(ctx)
        pred_field, pred_prop = field_choice(
            inputs,
            ctx,
            "pred_field",
            "Predictions",
            "The Detections field to evaluate",
            fields,
            default=_default_pred_field(ctx),
        )
        run_gt = _run_gt_field(ctx, pred_field)
        gt_field, gt_prop = field_choice(
            inputs,
            ctx,
            "gt_field",
            "Ground truth",
            "The Detections field with the true instances",
            fields,
            default=run_gt or default_gt_field(ctx),
        )
        default_key = f"eval_{pred_field}" if pred_field else "eval_ntt"
        eval_key = ctx.params.get("eval_key", default_key)
        key_prop = inputs.str(
            "eval_key",
            default=default_key,
            label="Evaluation key",
            description="Adds <key>_tp/_fp/_fn fields; shown in the Model Evaluation panel",
        )
        inputs.bool(
            "exclude_references",
            default=True,
            label="Exclude reference samples",
            description="Leave out the images holding a reference (tagged label)",
        )
        inputs.str("tag", default="ntt:ref", label="Reference tag")
        inputs.bool(
            "exact_coco",
            default=False,
            label="Also the exact COCO protocol",
            description="pycocotools bbox and segm AP, as the paper reports (method §6)",
        )
        inputs.list("classes", types.String(), default=None, label="Classes (empty: all)")
        if pred_field not in fields:
            invalid(inputs, pred_prop, "pred_field", f"{pred_field!r} is not a Detections field")
        if gt_field not in fields:
            invalid(inputs, gt_prop, "gt_field", f"{gt_field!r} is not a Detections field")
        elif gt_field == pred_field:
            invalid(inputs, gt_prop, "same_field", "Predictions and ground truth must differ")
        if not isinstance(eval_key, str) or not eval_key.isidentifier():
            invalid(
                inputs,
                key_prop,
                "eval_key",
                f"{eval_key!r} is not a valid key: use letters, digits and '_'",
            )
        return types.Property(inputs, view=types.View(label="Evaluate predictions"))

    def execute(self, ctx):
        from fiftyone_ntt.coco import format_table
        from fiftyone_ntt.fiftyone.evaluate import evaluate

        params = ctx.params
        pred_field = params.get("pred_field") or _default_pred_field(ctx)
        summary = evaluate(
            ctx.target_view(),
            pred_field,
            params.get("eval_key") or f"eval_{pred_field}",
            gt_field=params.get("gt_field") or _run_gt_field(ctx, pred_field),
            exclude_references=bool(params.get("exclude_references", True)),
            reference_tag=params.get("tag") or "ntt:ref",
            classes=params.get("classes") or None,
            exact_coco=bool(params.get("exact_coco", False)),
        )
        if "coco" in summary:
            summary["coco_table"] = format_table(summary["coco"])
        if not ctx.delegated:
            ctx.trigger("reload_dataset")
        return summary

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("eval_key", label="Evaluation key")
        outputs.int("num_samples", label="Samples evaluated")
        outputs.float("mAP", label="mAP (FiftyOne COCO, masks)")
        outputs.int("tp", label="True positives (IoU 0.5)")
        outputs.int("fp", label="False positives")
        outputs.int("fn", label="False negatives")
        outputs.obj("per_class", label="Per class", view=types.JSONView())
        outputs.str("coco_table", label="pycocotools (percent)", view=types.CodeView())
        return types.Property(outputs, view=types.View(label="Evaluation"))


def _default_pred_field(ctx) -> str | None:
    from fiftyone_ntt.fiftyone.runs import list_ntt_runs

    fields = detections_fields(ctx)
    runs = [r for r in list_ntt_runs(ctx.dataset) if r in fields]
    return runs[-1] if runs else None


def _run_gt_field(ctx, pred_field: str | None) -> str | None:
    from fiftyone_ntt.fiftyone.runs import list_ntt_runs

    if pred_field and pred_field in list_ntt_runs(ctx.dataset):
        return getattr(ctx.dataset.get_run_info(pred_field).config, "gt_field", None)
    return None
