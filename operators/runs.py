"""``ntt_runs``: what No Time to Train has done and is doing on the dataset: scheduled
(delegated) operations with their state, progress and error, segmentation runs and
evaluations (the open-source App has no list of delegated operations). Also marks an
operation failed whose worker was killed (it would read "running" for ever)."""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_ntt.fiftyone.app.activity import list_activity, mark_failed

from ._forms import error_output, invalid, reported, table

_COLUMNS = {
    "kind": "what",
    "state": "state",
    "progress": "progress",
    "bank": "bank",
    "out_field": "field / key",
    "error": "error",
    "started": "started (UTC)",
}


class NTTRuns(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="ntt_runs",
            label="NTT 9 · Runs",
            description=(
                "9 · Lists this plugin's scheduled operations (state, progress, error), "
                "segmentation runs and evaluations on the dataset"
            ),
            icon="list_alt",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        rows = [_display(row) for row in list_activity(ctx.dataset)]
        if rows:
            inputs.md(_markdown(rows), name="runs_table")
        else:
            inputs.view("none", types.Notice(label="Nothing has run on this dataset yet"))
        inputs.view(
            "worker_notice",
            types.Notice(
                label="Scheduled operations run when a worker is started: `fiftyone delegated "
                "launch` (same environment as the App). `fiftyone delegated list` lists them "
                "too."
            ),
        )
        running = [r for r in rows if r["source"] == "delegated" and r["state"] == "running"]
        actions = types.RadioGroup()
        actions.add_choice("show", label="Show the list")
        actions.add_choice(
            "mark_failed", label="Mark a running operation failed (its worker was stopped)"
        )
        inputs.enum("action", actions.values(), default="show", label="Action", view=actions)
        if ctx.params.get("action", "show") == "mark_failed":
            choices = types.Dropdown(label="Operation")
            for row in running:
                choices.add_choice(row["id"], label=f"{row['kind']} {row['out_field'] or ''}")
            prop = inputs.enum(
                "op_id",
                [r["id"] for r in running] or [""],
                label="Operation",
                description="A running operation of this plugin",
                view=choices,
            )
            if not running:
                invalid(inputs, prop, "op_id", "No operation of this plugin is running")
            elif ctx.params.get("op_id") not in {r["id"] for r in running}:
                invalid(inputs, prop, "op_id", "Choose the running operation to mark failed")
        return types.Property(inputs, view=types.View(label="No Time to Train runs"))

    @reported
    def execute(self, ctx):
        marked = None
        if ctx.params.get("action") == "mark_failed":
            marked = mark_failed(ctx.params["op_id"])["id"]
        rows = [_display(row) for row in list_activity(ctx.dataset)]
        return {"rows": rows, "marked": marked}

    def resolve_output(self, ctx):
        failed = error_output(ctx, "Runs")
        if failed is not None:
            return failed
        outputs = types.Object()
        if (ctx.results or {}).get("marked"):
            outputs.str("marked", label="Marked failed")
        table(outputs, "rows", "Runs", _COLUMNS)
        return types.Property(outputs, view=types.View(label="No Time to Train runs"))


def _markdown(rows: list[dict]) -> str:
    """The rows as a markdown table (the form's view of them)."""
    lines = ["| " + " | ".join(_COLUMNS.values()) + " |", "|" + "---|" * len(_COLUMNS)]
    for row in rows:
        cells = (str(row[key]).replace("|", "/") for key in _COLUMNS)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _display(row: dict) -> dict:
    """An activity row with a readable ``progress`` ("3/10") and blanks instead of None."""
    out = {k: ("" if v is None else v) for k, v in row.items()}
    if row.get("done") is not None and row.get("total") is not None:
        out["progress"] = f"{row['done']}/{row['total']}"
    else:
        out["progress"] = ""
    if row.get("started"):
        out["started"] = str(row["started"])[:16].replace("T", " ")
    out["bank"] = (
        f"{row['bank']} v{row['bank_version']}" if row.get("bank_version") else out["bank"]
    )
    return out
