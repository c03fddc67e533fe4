"""``ntt_sample_references``: sample K references per class with a seed and tag them."""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_ntt.fiftyone.curation.references import (
    count_reference_candidates,
    sample_references,
)

from ._forms import (
    class_picker,
    class_table,
    default_gt_field,
    detections_fields,
    error_output,
    field_choice,
    invalid,
    reported,
    table,
)
from ._numbers import bound_error, number_field

TAG_DEFAULT = "ntt:ref"
#: A saved view of this name is where references are sampled from by default (the demo
#: dataset ships one: the half of the coins that holds the references).
REFERENCES_VIEW = "references"


class NTTSampleReferences(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="ntt_sample_references",
            label="NTT 2 · Sample references",
            description=(
                "2 · Picks K ground-truth instances per class at random (seeded) and tags them as "
                "references; crowd instances are never picked"
            ),
            icon="casino",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        target = _source_choice(inputs, ctx)
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
            _options(inputs, ctx, None, None)
            return types.Property(inputs, view=types.View(label="Sample references"))
        try:
            all_classes = sorted(str(c) for c in target.distinct(f"{gt_field}.detections.label"))
        except Exception:
            all_classes = []
        classes = ctx.params.get("classes") or None
        class_picker(inputs, "classes", all_classes, "Sample only these classes (empty: all)")
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
            _options(inputs, ctx, None, None)
            return types.Property(inputs, view=types.View(label="Sample references"))
        k = ctx.params.get("shots", 5)
        inputs.md(
            "**Candidates per class** (instances that may become references under the "
            "options below)\n\n" + class_table(counts, ("class", "candidates")),
            name="candidates_table",
        )
        if not counts or not any(counts.values()):
            invalid(inputs, gt_prop, "no_candidates", "No usable candidate in this target")
        short = {c: n for c, n in counts.items() if isinstance(k, int) and 0 < k and n < k}
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
        _options(inputs, ctx, target, gt_field)
        return types.Property(inputs, view=types.View(label="Sample references"))

    @reported
    def execute(self, ctx):
        shots = _shots(ctx.params.get("shots", 5))
        picked = sample_references(
            _source(ctx),
            ctx.params.get("gt_field") or default_gt_field(ctx),
            shots,
            int(ctx.params.get("seed", 0)),
            classes=ctx.params.get("classes") or None,
            paper_rules=bool(ctx.params.get("paper_rules", False)),
            one_per_image=bool(ctx.params.get("one_per_image", True)),
            tag=ctx.params.get("tag") or TAG_DEFAULT,
            replace=bool(ctx.params.get("replace", False)),
        )
        per_class: dict[str, int] = {}
        for candidate in picked:
            per_class[candidate.class_name] = per_class.get(candidate.class_name, 0) + 1
        ctx.trigger("reload_dataset")
        shortfalls = {c: list(v) for c, v in picked.shortfalls.items()}
        return {
            "num_references": len(picked),
            "per_class": per_class,
            "per_class_rows": [{"class": c, "references": n} for c, n in per_class.items()],
            "shortfalls": shortfalls,
            "shortfall_rows": [
                {"class": c, "asked": v[0], "got": v[1]} for c, v in shortfalls.items()
            ],
            "label_ids": [c.ref_id for c in picked],
        }

    def resolve_output(self, ctx):
        failed = error_output(ctx, "References not sampled")
        if failed is not None:
            return failed
        outputs = types.Object()
        outputs.int("num_references", label="References tagged")
        table(outputs, "per_class_rows", "Per class", {"class": "class", "references": "tagged"})
        if (ctx.results or {}).get("shortfall_rows"):
            table(
                outputs,
                "shortfall_rows",
                "Classes short of K",
                {"class": "class", "asked": "asked (K)", "got": "tagged"},
            )
        return types.Property(outputs, view=types.View(label="Sampled references"))


#: The K field: its label and bounds (the form checks them, and execute again).
_SHOTS = {"label": "Shots per class (K)", "min": 1}


def _shots(value) -> int:
    """K, refused below 1 with the form's message ("must be at least 1")."""
    error = bound_error(value, **_SHOTS)
    if error:
        raise ValueError(error)
    return int(value)


def _source(ctx):
    """The collection references are sampled from: the saved view ``references`` when the
    form chose it (the default where it exists), else the target."""
    if _source_name(ctx) == "saved_view":
        return ctx.dataset.load_saved_view(REFERENCES_VIEW)
    return ctx.target_view()


def _source_name(ctx) -> str:
    has_view = REFERENCES_VIEW in ctx.dataset.list_saved_views()
    choice = ctx.params.get("sample_from", "saved_view" if has_view else "target")
    return "saved_view" if choice == "saved_view" and has_view else "target"


def _source_choice(inputs: types.Object, ctx):
    """Where to sample: the saved view ``references`` if the dataset has one, or the usual
    target (dataset, current view, selection). Returns that collection (None if invalid)."""
    if REFERENCES_VIEW in ctx.dataset.list_saved_views():
        view = ctx.dataset.load_saved_view(REFERENCES_VIEW)
        choices = types.RadioGroup()
        choices.add_choice(
            "saved_view",
            label=f"Saved view {REFERENCES_VIEW!r} ({len(view)} sample(s))",
            description="The images meant to hold the references; the rest are targets",
        )
        choices.add_choice("target", label="The dataset, current view or selection")
        inputs.enum(
            "sample_from",
            choices.values(),
            default="saved_view",
            label="Sample references from",
            view=choices,
        )
    if _source_name(ctx) == "target":
        inputs.view_target(ctx, action_description="Sample references from")
    try:
        return _source(ctx)
    except Exception:  # a form being filled in: no valid target yet
        return ctx.dataset


def _options(inputs: types.Object, ctx, target, gt_field) -> None:
    """The sampling options (below the candidate counts in the form)."""
    number_field(inputs, "shots", ctx.params.get("shots", 5), default=5, **_SHOTS)
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
    tag = ctx.params.get("tag") or TAG_DEFAULT
    inputs.str("tag", default=TAG_DEFAULT, label="Reference tag")
    inputs.bool(
        "replace",
        default=False,
        label="Replace existing references",
        description="Remove the tag from the field's labels in the sampled images first",
    )
    if ctx.params.get("replace", False) and target is not None and gt_field:
        try:
            existing = target.count_label_tags(label_fields=gt_field).get(tag, 0)
        except Exception:
            existing = 0
        inputs.view(
            "replace_notice",
            types.Warning(
                label=f"{existing} existing reference(s) will be untagged",
                description=f"Labels of {gt_field!r} tagged {tag!r} in these images lose the "
                "tag before sampling (hand-tagged ones too)",
            ),
        )
