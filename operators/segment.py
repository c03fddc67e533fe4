"""``ntt_segment``: segment the bank's classes in the target samples."""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ._forms import (
    DELEGATE_ABOVE_SAMPLES,
    bank_choice,
    default_bank,
    invalid,
    progress_reporter,
    target_size,
)

OUT_DEFAULT = "ntt_predictions"


class NTTSegment(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="ntt_segment",
            label="No Time to Train: segment",
            description=(
                "Segments the classes of a memory bank in the target samples (SAM 2 "
                "proposals matched to the bank); resumable; records a run per output field"
            ),
            icon="auto_awesome",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
            default_choice_to_delegated=True,
        )

    def resolve_delegation(self, ctx):
        # large targets always go to a delegated worker (immediate runs time out)
        return True if target_size(ctx) > DELEGATE_ABOVE_SAMPLES else None

    def resolve_input(self, ctx):
        from fiftyone_ntt.fiftyone.segment import check_output_field

        inputs = types.Object()
        inputs.view_target(ctx, action_description="Segment")
        bank_key, bank_prop, banks = bank_choice(inputs, ctx)
        out_field = ctx.params.get("out_field", OUT_DEFAULT)
        out_prop = inputs.str(
            "out_field",
            default=OUT_DEFAULT,
            label="Output field",
            description="Detections field for the predictions (also the run key)",
        )
        inputs.float(
            "score_threshold",
            min=0.0,
            max=1.0,
            default=None,
            label="Score threshold",
            description="Drop detections scoring below this; empty keeps all (the paper)",
        )
        inputs.int("max_detections", default=100, min=1, label="Max detections per image")
        inputs.bool(
            "skip_references",
            default=True,
            label="Skip reference samples",
            description="Do not segment the images that hold the bank's references",
        )
        inputs.bool(
            "overwrite",
            default=False,
            label="Overwrite",
            description="Recompute samples already done (otherwise a rerun resumes)",
        )
        inputs.int("batch_size", default=16, min=1, label="Samples per database write")
        inputs.int("prefetch", default=2, min=0, label="Images read ahead")
        inputs.str(
            "device", default="auto", label="Device", description="auto, cpu, cuda, cuda:N, mps"
        )
        inputs.int(
            "points_per_side",
            default=None,
            min=1,
            label="Points per side (advanced)",
            description="SAM 2 prompt grid; empty: the bank's setting (32, the paper)",
        )
        info = next((b for b in banks if b["key"] == bank_key), None)
        if not banks:
            invalid(
                inputs,
                bank_prop,
                "bank",
                "This dataset has no memory bank yet; run 'Build memory bank' first",
            )
        elif info is None:
            invalid(inputs, bank_prop, "bank", f"No memory bank {bank_key!r} on this dataset")
        elif not info["exists"]:
            invalid(
                inputs,
                bank_prop,
                "bank",
                f"The file of bank {bank_key!r} is missing ({info['path']}); rebuild the bank",
            )
        try:
            check_output_field(ctx.dataset, out_field, info["gt_field"] if info else None)
        except ValueError as error:
            invalid(inputs, out_prop, "out_field", str(error))
        n = target_size(ctx)
        inputs.view(
            "target_notice",
            types.Notice(label=f"{n} sample(s) in the target"),
        )
        return types.Property(inputs, view=types.View(label="Segment with a memory bank"))

    def execute(self, ctx):
        from fiftyone_ntt.fiftyone.segment import segment

        params = ctx.params
        device = params.get("device") or "auto"
        threshold = params.get("score_threshold")
        summary = segment(
            ctx.target_view(),
            params.get("bank") or default_bank(ctx),
            params.get("out_field") or OUT_DEFAULT,
            score_threshold=None if threshold is None else float(threshold),
            max_detections=params.get("max_detections"),
            points_per_side=params.get("points_per_side"),
            skip_references=bool(params.get("skip_references", True)),
            overwrite=bool(params.get("overwrite", False)),
            batch_size=int(params.get("batch_size") or 16),
            prefetch=int(params.get("prefetch") if params.get("prefetch") is not None else 2),
            device=None if device == "auto" else device,
            progress=progress_reporter(ctx, "samples segmented"),
        )
        if not ctx.delegated:
            ctx.trigger("reload_dataset")
        return summary

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("out_field", label="Output field (run key)")
        outputs.int("total", label="Samples in the target")
        outputs.int("done_before", label="Already done (resumed)")
        outputs.int("processed", label="Segmented now")
        outputs.int("detections", label="Detections written")
        outputs.int("failed", label="Skipped (unreadable image or out of memory)")
        outputs.list("failures", types.Object(), label="Skipped samples", view=types.JSONView())
        outputs.float("seconds", label="Seconds")
        return types.Property(outputs, view=types.View(label="Segmentation done"))
