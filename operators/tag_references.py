"""``ntt_tag_references``: tag (or untag) the selected labels as references."""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_ntt.fiftyone.curation.references import tag_references, untag_references

from ._forms import invalid

TAG_DEFAULT = "ntt:ref"


class NTTTagReferences(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="ntt_tag_references",
            label="NTT 1 · Tag references",
            description=(
                "1 · Marks the selected labels (sample modal or patches view) as reference "
                "examples with a label tag, or removes the tag"
            ),
            icon="bookmark_add",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        selected = ctx.selected_labels or []
        action = types.RadioGroup()
        action.add_choice("tag", label="Tag as references")
        action.add_choice("untag", label="Remove the reference tag")
        inputs.enum(
            "action",
            action.values(),
            default="tag",
            label="Action",
            view=action,
        )
        inputs.str(
            "tag",
            default=TAG_DEFAULT,
            label="Reference tag",
            description="The label tag that marks references (the bank builder reads it)",
        )
        count = inputs.int("num_selected", default=len(selected), view=types.HiddenView())
        if not selected:
            invalid(
                inputs,
                count,
                "selection",
                "No label is selected: open a sample (or a patches view), click the instances "
                "to use as references, then run this operator again",
                box=True,
            )
        else:
            fields = sorted({label["field"] for label in selected})
            inputs.view(
                "summary",
                types.Notice(
                    label=f"{len(selected)} selected label(s) in field(s) {', '.join(fields)}"
                ),
            )
        return types.Property(inputs, view=types.View(label="Tag references"))

    def execute(self, ctx):
        tag = ctx.params.get("tag") or TAG_DEFAULT
        labels = ctx.selected_labels or []
        if ctx.params.get("action", "tag") == "untag":
            count = untag_references(ctx.dataset, labels, tag=tag)
            result = {"action": "untag", "tag": tag, "count": count}
        else:
            count = tag_references(ctx.dataset, labels, tag=tag)
            result = {"action": "tag", "tag": tag, "count": count}
        ctx.trigger("reload_dataset")
        return result

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("action", label="Action")
        outputs.str("tag", label="Tag")
        outputs.int("count", label="Labels")
        return types.Property(outputs, view=types.View(label="References"))
