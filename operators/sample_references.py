"""``ntt_sample_references``: sample K references per class with a seed and tag them."""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ._forms import class_table, default_gt_field, detections_fields, field_choice, invalid

TAG_DEFAULT = "ntt:ref"


class NTTSampleReferences(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="ntt_sample_references",
            label="No Time to Train: sample references",
            description=(
                "Picks K ground-truth instances per class at random (seeded) and tags them as "
                "references; crowd instances are never picked"
            ),
            icon="casino",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        from fiftyone_ntt.fiftyone.references import count_reference_candidates

        inputs = types.Object()
        inputs.view_target(ctx, action_description="Sample references from")
        fields = detections_fields(ctx)
        gt_field, gt_prop = field_choice(
            inputs,
            ctx,
            "gt_field",
            "Ground-truth field",
            "A Detections field whose instances may become references",
            fields,
            default=default_gt_field(ctx),
        )
        if gt_field not in fields:
            invalid(
                inputs,
                gt_prop,
                "gt_field",
                f"{gt_field!r} is not a Detections field of this dataset; choose one of {fields}",
            )
            _options(inputs)
            return types.Property(inputs, view=types.View(label="Sample references"))
        try:
            target = ctx.target_view()
            all_classes = sorted(str(c) for c in target.distinct(f"{gt_field}.detections.label"))
        except Exception:
            all_classes = []
        choices = types.AutocompleteView(label="Classes", description="Empty: every class")
        for name in all_classes:
            choices.add_choice(name, label=name)
        classes = ctx.params.get("classes") or None
        inputs.list("classes", types.String(), default=None, label="Classes", view=choices)
        try:
            counts = count_reference_candidates(
                target,
                gt_field,
                classes=classes,
                paper_rules=bool(ctx.params.get("paper_rules", False)),
                one_per_image=bool(ctx.params.get("one_per_image", True)),
            )
        except ValueError as error:
            invalid(inputs, gt_prop, "candidates", str(error))
            _options(inputs)
            return types.Property(inputs, view=types.View(label="Sample references"))
        k = int(ctx.params.get("shots") or 5)
        inputs.md(
            "**Candidates per class** (instances that may become references under the "
            "options below)\n\n" + class_table(counts, ("class", "candidates")),
            name="candidates_table",
        )
        if not counts or not any(counts.values()):
            invalid(inputs, gt_prop, "no_candidates", "No usable candidate in this target")
        short = {c: n for c, n in counts.items() if n < k}
        if short:
            inputs.view(
                "shortfall",
                types.Warning(
                    label="Fewer candidates than K",
                    description=(
                        "These classes will get all their candidates: "
                        + ", ".join(f"{c} ({n})" for c, n in short.items())
                    ),
                ),
            )
        _options(inputs)
        return types.Property(inputs, view=types.View(label="Sample references"))

    def execute(self, ctx):
        from fiftyone_ntt.fiftyone.references import sample_references

        picked = sample_references(
            ctx.target_view(),
            ctx.params.get("gt_field") or default_gt_field(ctx),
            int(ctx.params.get("shots", 5)),
            int(ctx.params.get("seed", 0)),
            classes=ctx.params.get("classes") or None,
            paper_rules=bool(ctx.params.get("paper_rules", False)),
            one_per_image=bool(ctx.params.get("one_per_image", True)),
            tag=ctx.params.get("tag") or TAG_DEFAULT,
            replace=bool(ctx.params.get("replace", True)),
        )
        per_class: dict[str, int] = {}
        for candidate in picked:
            per_class[candidate.class_name] = per_class.get(candidate.class_name, 0) + 1
        ctx.trigger("reload_dataset")
        return {
            "num_references": len(picked),
            "per_class": per_class,
            "shortfalls": {c: list(v) for c, v in picked.shortfalls.items()},
            "label_ids": [c.ref_id for c in picked],
        }

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.int("num_references", label="References tagged")
        outputs.obj("per_class", label="Per class", view=types.JSONView())
        outputs.obj("shortfalls", label="Classes short of K (asked, got)", view=types.JSONView())
        return types.Property(outputs, view=types.View(label="Sampled references"))


def _options(inputs: types.Object) -> None:
    """The sampling options (below the candidate counts in the form)."""
    inputs.int("shots", default=5, min=1, label="Shots per class (K)")
    inputs.int("seed", default=0, label="Random seed")
    inputs.bool(
        "paper_rules",
        default=False,
        label="Paper's rules",
        description="Only boxes with sides >= 32 px lying >= 10 px from every border",
    )
    inputs.bool(
        "one_per_image",
        default=True,
        label="One per image",
        description="At most one reference per image and class",
    )
    inputs.str("tag", default=TAG_DEFAULT, label="Reference tag")
    inputs.bool(
        "replace",
        default=True,
        label="Replace existing references",
        description="Remove the tag from the field's labels in the target first",
    )
