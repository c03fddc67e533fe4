"""``ntt_evaluate``: FiftyOne's COCO evaluation of a prediction field (masks), optionally
the exact pycocotools protocol."""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_ntt.coco import STAT_NAMES
from fiftyone_ntt.fiftyone.runs.config import list_ntt_runs

from ._forms import (
    DELEGATE_ABOVE_SAMPLES,
    class_picker,
    default_gt_field,
    delegation,
    detections_fields,
    error_output,
    field_choice,
    invalid,
    progress_reporter,
    reported,
    schedule_notice,
    table,
    target_size,
)

#: Evaluation is cheap per sample: only targets above this go to a worker.
EVALUATE_DELEGATE_ABOVE = 20 * DELEGATE_ABOVE_SAMPLES


class NTTEvaluate(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="ntt_evaluate",
            label="NTT 5 · Evaluate",
            description=(
                "5 · Evaluates predictions against ground truth with FiftyOne's COCO evaluator "
                "(masks, mAP), for the Model Evaluation panel and TP/FP/FN patches"
            ),
            icon="assessment",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
            default_choice_to_delegated=True,
        )

    def resolve_delegation(self, ctx):
        # evaluation is cheap per sample: a worker only for very large targets
        return delegation(target_size(ctx), EVALUATE_DELEGATE_ABOVE)

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
        video = getattr(ctx.dataset, "media_type", None) == "video"
        inputs.bool(
            "exclude_references",
            default=True,
            label=f"Exclude reference {'frames' if video else 'samples'}",
            description=f"Leave out the {'frames' if video else 'images'} whose ground truth "
            "holds a reference (a label tagged with the tag below); an accepted prediction "
            "does not leave its image out. The result names those left out",
        )
        inputs.str("tag", default="ntt:ref", label="Reference tag")
        inputs.bool(
            "exact_coco",
            view=types.HiddenView() if video else None,
            default=False,
            label="Also the exact COCO protocol",
            description="pycocotools bbox and segm AP, as the paper reports (docs/method.md §6)",
        )
        try:
            known = sorted(str(c) for c in ctx.dataset.distinct(f"{gt_field}.detections.label"))
        except Exception:  # not a Detections field: its own message says so
            known = []
        class_picker(inputs, "classes", known, "Evaluate only these classes (empty: all)")
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
        elif eval_key in ctx.dataset.list_evaluations():
            # like FiftyOne's own evaluation operator: an existing key is replaced only on request
            replace = inputs.bool(
                "overwrite",
                default=False,
                label=f"Replace evaluation {eval_key!r}",
                description="It exists (with its _tp/_fp/_fn fields); replacing it deletes them",
            )
            if not ctx.params.get("overwrite", False):
                invalid(
                    inputs,
                    replace,
                    "overwrite",
                    f"an evaluation {eval_key!r} exists already: tick 'Replace evaluation "
                    f"{eval_key!r}', or choose another evaluation key",
                )
        schedule_notice(inputs, target_size(ctx), EVALUATE_DELEGATE_ABOVE)
        return types.Property(inputs, view=types.View(label="Evaluate predictions"))

    @reported
    def execute(self, ctx):
        # deferred: torch (the evaluation imports the loops) loads when a run first
        # needs it, not when FiftyOne imports the plugin
        from fiftyone_ntt.fiftyone.evaluation.evaluate import evaluate

        params = ctx.params
        pred_field = params.get("pred_field") or _default_pred_field(ctx)
        eval_key = params.get("eval_key") or f"eval_{pred_field}"
        if eval_key in ctx.dataset.list_evaluations() and not params.get("overwrite", False):
            raise ValueError(
                f"an evaluation {eval_key!r} exists already; pass overwrite=True to replace "
                "it, or choose another evaluation key"
            )
        summary = evaluate(
            ctx.target_view(),
            pred_field,
            eval_key,
            gt_field=params.get("gt_field") or _run_gt_field(ctx, pred_field),
            exclude_references=bool(params.get("exclude_references", True)),
            reference_tag=params.get("tag") or "ntt:ref",
            classes=params.get("classes") or None,
            exact_coco=bool(params.get("exact_coco", False)),
            progress=progress_reporter(ctx, "samples evaluated"),
        )
        summary["per_class_rows"] = [
            {
                "class": name,
                "precision": round(v.get("precision", 0.0), 3),
                "recall": round(v.get("recall", 0.0), 3),
                "f1": round(v.get("f1-score", 0.0), 3),
                "support": int(v.get("support", 0)),
            }
            for name, v in summary["per_class"].items()
        ]
        if "coco" in summary:
            summary["coco_rows"] = _coco_rows(summary["coco"])
        summary["notes_text"] = "\n".join(summary.get("notes") or []) or None
        if not ctx.delegated:
            ctx.trigger("reload_dataset")
        return summary

    def resolve_output(self, ctx):
        failed = error_output(ctx, "Evaluation not done")
        if failed is not None:
            return failed
        results = ctx.results or {}
        outputs = types.Object()
        outputs.str("message", label="Summary")
        outputs.str("eval_key", label="Evaluation key")
        outputs.int("num_samples", label="Samples evaluated")
        if results.get("num_frames") is not None:
            outputs.int("num_frames", label="Frames evaluated")
        if results.get("mAP") is not None:  # None: no ground truth in the evaluated samples
            outputs.float("mAP", label="mAP (FiftyOne COCO, masks)")
        outputs.int("tp", label="True positives (IoU 0.5)")
        outputs.int("fp", label="False positives")
        outputs.int("fn", label="False negatives")
        table(
            outputs,
            "per_class_rows",
            "Per class (IoU 0.5)",
            {
                "class": "class",
                "precision": "precision",
                "recall": "recall",
                "f1": "F1",
                "support": "ground-truth instances",
            },
        )
        if results.get("coco_rows"):
            table(
                outputs,
                "coco_rows",
                "pycocotools, percent (docs/method.md §6)",
                {"iou": "IoU type", **{name: name for name in STAT_NAMES}},
            )
        if results.get("notes_text"):
            outputs.str("notes_text", label="Notes")
        return types.Property(outputs, view=types.View(label="Evaluation"))


def _coco_rows(coco: dict) -> list[dict]:
    """pycocotools' summary as rows: one per IoU type, numbers in percent ("-": undefined)."""
    rows = []
    for iou_type in coco.get("iou_types", []):
        stats = coco[iou_type]["stats"]
        row = {"iou": iou_type}
        for name in STAT_NAMES:
            value = stats.get(name)
            row[name] = "-" if value is None or value < 0 else f"{100 * value:.1f}"
        rows.append(row)
    return rows


def _default_pred_field(ctx) -> str | None:
    fields = detections_fields(ctx)
    runs = [_run_field(ctx, r) for r in list_ntt_runs(ctx.dataset)]
    runs = [r for r in runs if r in fields]
    return runs[-1] if runs else None


def _run_field(ctx, run_key: str) -> str:
    """The field a run wrote: its key, or ``frames.<key>`` for a run over video frames."""
    out_field = getattr(ctx.dataset.get_run_info(run_key).config, "out_field", None)
    return out_field or run_key


def _run_gt_field(ctx, pred_field: str | None) -> str | None:
    key = pred_field.removeprefix("frames.") if pred_field else None
    if key and key in list_ntt_runs(ctx.dataset):
        return getattr(ctx.dataset.get_run_info(key).config, "gt_field", None)
    return None
