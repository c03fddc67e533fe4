"""``ntt_build_bank``: a memory bank from the reference-tagged labels of a field."""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types
from fiftyone import ViewField as F

from fiftyone_ntt.fiftyone.curation.references import reference_summary
from fiftyone_ntt.fiftyone.dataset.model_cache import describe_models
from fiftyone_ntt.fiftyone.runs.settings import check_device

from ._forms import (
    class_picker,
    class_table,
    config_from_form,
    default_gt_field,
    delegation,
    detections_fields,
    device_field,
    error_output,
    field_choice,
    human_size,
    invalid,
    model_choice,
    progress_reporter,
    reported,
    schedule_notice,
    table,
    test_models_notice,
)

TAG_DEFAULT = "ntt:ref"


class NTTBuildBank(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="ntt_build_bank",
            label="NTT 3 · Build memory bank",
            description=(
                "3 · Embeds the reference-tagged instances of a Detections field with DINOv2 into "
                "a memory bank (box-only references get SAM 2 masks)"
            ),
            icon="memory",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
            default_choice_to_delegated=True,
        )

    def resolve_delegation(self, ctx):
        # many references mean many images to read and embed: a worker, where FiftyOne offers
        # scheduling
        return delegation(_num_reference_samples(ctx))

    def resolve_input(self, ctx):
        # deferred: torch (the bank's inputs are checked with the model families) loads
        # when a form first needs it, not when FiftyOne imports the plugin
        from fiftyone_ntt.fiftyone.banks.inputs import validate_build

        inputs = types.Object()
        inputs.view_target(ctx, action_description="Take the references of")
        test_models_notice(inputs)
        fields = detections_fields(ctx)
        gt_field, gt_prop = field_choice(
            inputs,
            ctx,
            "gt_field",
            "Ground-truth field",
            "The Detections field whose tagged labels are the references",
            fields,
            default=default_gt_field(ctx),
        )
        tag = ctx.params.get("tag") or TAG_DEFAULT
        inputs.str("tag", default=TAG_DEFAULT, label="Reference tag")
        model_choice(inputs, ctx)
        key_prop = inputs.str(
            "bank_key",
            default=f"{gt_field or 'bank'}-refs",
            label="Bank key",
            description="Name of the bank on this dataset",
        )
        inputs.bool("overwrite", default=False, label="Replace a bank of the same key")
        device_field(inputs, ctx)
        classes = ctx.params.get("classes") or None
        try:
            target = ctx.target_view()
        except Exception:
            target = ctx.dataset
        classes_prop = class_picker(
            inputs,
            "classes",
            _tagged_classes(target, gt_field, tag),
            "Restrict the bank to these classes (empty: every tagged class)",
        )
        summary, problems = validate_build(
            target,
            gt_field,
            tag=tag,
            classes=classes,
            bank_key=ctx.params.get("bank_key", f"{gt_field or 'bank'}-refs"),
            overwrite=bool(ctx.params.get("overwrite", False)),
        )
        props = {"gt_field": gt_prop, "bank_key": key_prop, "classes": classes_prop}
        for name, message in problems:
            invalid(inputs, props.get(name, gt_prop), name, message, box=name not in props)
        if summary:
            rows = {c: (v["references"], v["box_only"]) for c, v in summary.items()}
            inputs.md(
                class_table(rows, ("class", "references", "box only")), name="references_table"
            )
            box_only = sum(v["box_only"] for v in summary.values())
            if box_only:
                inputs.view(
                    "box_only_notice",
                    types.Notice(
                        label=f"{box_only} reference(s) have no mask: SAM 2 box prompting "
                        "will make their masks"
                    ),
                )
        schedule_notice(inputs, _num_reference_samples(ctx), unit="samples with references")
        return types.Property(inputs, view=types.View(label="Build memory bank"))

    @reported
    def execute(self, ctx):
        # deferred: torch loads when a build first needs it, not when FiftyOne imports the
        # plugin (and a test's stand-in for banks.build.build_bank is found at call time)
        from fiftyone_ntt.fiftyone.banks.build import build_bank

        device = check_device(ctx.params.get("device"))
        gt_field = ctx.params.get("gt_field") or default_gt_field(ctx)
        info = build_bank(
            ctx.target_view(),
            gt_field,
            ctx.params.get("bank_key") or f"{gt_field}-refs",
            tag=ctx.params.get("tag") or TAG_DEFAULT,
            classes=ctx.params.get("classes") or None,
            preset=ctx.params.get("preset") or "default",
            config=config_from_form(ctx.params),
            device=None if device == "auto" else device,
            overwrite=bool(ctx.params.get("overwrite", False)),
            progress=progress_reporter(ctx, "references embedded"),
        )
        return {
            "bank_key": info["key"],
            "classes": info["classes"],
            "shots": info["shots"],
            "shots_rows": [{"class": c, "shots": n} for c, n in info["shots"].items()],
            "num_references": info["num_references"],
            "generated_masks": info["generated_masks"],
            "models_text": describe_models(info.get("models")),
            "size": human_size(info["size_bytes"]),
            "size_bytes": info["size_bytes"],
            "fingerprint": info["fingerprint"],
            "path": info["path"],
        }

    def resolve_output(self, ctx):
        failed = error_output(ctx, "Memory bank not built")
        if failed is not None:
            return failed
        outputs = types.Object()
        outputs.str("bank_key", label="Bank")
        table(outputs, "shots_rows", "Shots per class", {"class": "class", "shots": "references"})
        outputs.int("num_references", label="References")
        outputs.int("generated_masks", label="Masks made by SAM 2 box prompting")
        outputs.str("models_text", label="Models (proposer + encoder)")
        outputs.str("size", label="File size")
        outputs.str("fingerprint", label="Fingerprint")
        outputs.str("path", label="File")
        return types.Property(outputs, view=types.View(label="Memory bank built"))


def _tagged_classes(target, gt_field, tag) -> list[str]:
    try:
        return sorted(reference_summary(target, gt_field, tag))
    except Exception:  # not a Detections field: its own message says so
        return []


def _num_reference_samples(ctx) -> int:
    try:
        gt_field = ctx.params.get("gt_field")
        tag = ctx.params.get("tag") or TAG_DEFAULT
        if not gt_field:
            return 0
        return ctx.dataset.match_labels(filter=F("tags").contains(tag), fields=gt_field).count()
    except Exception:
        return 0
