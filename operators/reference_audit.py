"""``ntt_reference_audit``: which references of a bank attract false positives, and how the
class's precision changes without each (:mod:`fiftyone_ntt.fiftyone.banks.audit`,
docs/method.md §16.2)."""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_ntt.fiftyone.banks.audit import reference_audit

from ._forms import error_output, reported, table
from .class_thresholds import eval_and_bank, rounded

AUDIT_COLUMNS = {
    "reference_id": "reference",
    "class_name": "class",
    "nearest_fp": "nearest FP",
    "nearest_tp": "nearest TP",
    "precision": "ranked precision",
    "precision_without": "without it",
    "harm": "gain without it",
    "note": "note",
}


class NTTReferenceAudit(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="ntt_reference_audit",
            label="NTT 6 · Reference audit",
            description=(
                "6 · Ranks a bank's references by harm: the false positives nearest to each, and "
                "the class's precision without it (from stored features, no model run)"
            ),
            icon="rule",
            dynamic=True,
            allow_immediate_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        eval_and_bank(inputs, ctx)
        return types.Property(inputs, view=types.View(label="Reference audit"))

    @reported
    def execute(self, ctx):
        result = reference_audit(ctx.dataset, ctx.params.get("eval_key"), ctx.params.get("bank"))
        rows = result.pop("rows")
        result["table"] = rounded([{k: r[k] for k in AUDIT_COLUMNS} for r in rows])
        result["false_positives"] = {r["reference_id"]: r["false_positives"] for r in rows}
        return result

    def resolve_output(self, ctx):
        failed = error_output(ctx, "Audit not done")
        if failed is not None:
            return failed
        outputs = types.Object()
        outputs.str("message", label="Summary")
        table(outputs, "table", "References, most harmful first", AUDIT_COLUMNS)
        return types.Property(outputs, view=types.View(label="Reference audit"))
