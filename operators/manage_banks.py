"""``ntt_manage_banks``: list, inspect or delete the dataset's memory banks."""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_ntt.fiftyone.banks.index import delete_bank, get_bank_info, list_banks
from fiftyone_ntt.fiftyone.dataset.model_cache import describe_models

from ._forms import (
    bank_choice,
    class_table,
    default_bank,
    error_output,
    human_size,
    invalid,
    reported,
    table,
)

_BANK_COLUMNS = {
    "key": "bank",
    "shots": "shots per class",
    "models": "models",
    "size": "size",
    "created": "created (UTC)",
}


class NTTManageBanks(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="ntt_manage_banks",
            label="NTT 8 · Manage memory banks",
            description="8 · Lists the dataset's memory banks, shows one, or deletes one",
            icon="inventory_2",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        actions = types.RadioGroup()
        actions.add_choice("list", label="List banks")
        actions.add_choice("inspect", label="Inspect a bank")
        actions.add_choice("delete", label="Delete a bank")
        inputs.enum("action", actions.values(), default="list", label="Action", view=actions)
        action = ctx.params.get("action", "list")
        if action == "list":
            banks = list_banks(ctx.dataset)
            rows = {b["key"]: tuple(_bank_row(b).values())[1:] for b in banks}
            if rows:
                inputs.md(class_table(rows, tuple(_BANK_COLUMNS.values())), name="banks_table")
            else:
                inputs.view("none", types.Notice(label="This dataset has no memory bank yet"))
            return types.Property(inputs, view=types.View(label="Memory banks"))
        description = (
            "The bank to show"
            if action == "inspect"
            else "The bank to delete (its file too; predictions made with it stay)"
        )
        bank_key, bank_prop, banks = bank_choice(inputs, ctx, description=description)
        if not banks:
            invalid(inputs, bank_prop, "bank", "This dataset has no memory bank")
        elif action == "delete" and bank_key:
            _delete_checks(inputs, ctx, bank_key, bank_prop)
        return types.Property(inputs, view=types.View(label="Memory banks"))

    @reported
    def execute(self, ctx):
        # deferred: torch (preflight imports the run plan and its loops)
        from fiftyone_ntt.fiftyone.app.preflight import bank_dependents

        action = ctx.params.get("action", "list")
        if action == "list":
            banks = list_banks(ctx.dataset)
            return {"action": action, "banks": banks, "bank_rows": [_bank_row(b) for b in banks]}
        key = ctx.params.get("bank") or default_bank(ctx)
        if action == "inspect":
            info = get_bank_info(ctx.dataset, key)
            return {"action": action, "bank": info, "detail_rows": _detail_rows(info)}
        dependents = bank_dependents(ctx.dataset, key)
        if dependents["operations"] and not ctx.params.get("force", False):
            raise ValueError(
                f"bank {key!r} is needed by {len(dependents['operations'])} queued or running "
                "operation(s); wait for them, or force the delete"
            )
        deleted = delete_bank(ctx.dataset, key)
        if not deleted:
            raise KeyError(f"dataset {ctx.dataset.name!r} has no memory bank {key!r}")
        return {
            "action": action,
            "deleted": key,
            "runs_rows": dependents["runs"],
            "message": f"Deleted bank {key!r} and its file."
            + (
                f" {len(dependents['runs'])} prediction field(s) made with it stay (listed below)."
                if dependents["runs"]
                else ""
            ),
        }

    def resolve_output(self, ctx):
        failed = error_output(ctx, "Memory banks")
        if failed is not None:
            return failed
        results = ctx.results or {}
        action = results.get("action", ctx.params.get("action", "list"))
        outputs = types.Object()
        if action == "list":
            if results.get("bank_rows"):
                table(outputs, "bank_rows", "Banks", _BANK_COLUMNS)
            else:
                outputs.view("none", types.Notice(label="This dataset has no memory bank"))
        elif action == "inspect":
            table(outputs, "detail_rows", "Bank", {"what": "", "value": ""})
        else:
            outputs.str("message", label="Deleted")
            if results.get("runs_rows"):
                table(
                    outputs,
                    "runs_rows",
                    "Prediction fields made with it",
                    {"out_field": "field", "state": "run state"},
                )
        return types.Property(outputs, view=types.View(label="Memory banks"))


def _delete_checks(inputs: types.Object, ctx, bank_key: str, bank_prop) -> None:
    """Before deleting: the runs made with the bank, and the operations that need it
    (refused while one is queued or running, unless forced)."""
    # deferred: torch (preflight imports the run plan and its loops)
    from fiftyone_ntt.fiftyone.app.preflight import bank_dependents

    dependents = bank_dependents(ctx.dataset, bank_key)
    runs = dependents["runs"]
    text = f"Deletes bank {bank_key!r} and its file."
    if runs:
        fields = ", ".join(r["out_field"] for r in runs)
        text += f" Prediction fields made with it stay, but cannot be resumed: {fields}."
    inputs.view("delete_warning", types.Warning(label="Delete", description=text))
    operations = dependents["operations"]
    if operations:
        listed = ", ".join(f"{o['kind']} ({o['state']}, id {o['id']})" for o in operations)
        force = inputs.bool(
            "force",
            default=False,
            label="Delete anyway",
            description="Those operations will then fail",
        )
        if not ctx.params.get("force", False):
            invalid(
                inputs,
                force,
                "force",
                f"queued or running operations need bank {bank_key!r}: {listed}; wait for "
                "them (see 'NTT 9 · Runs'), or tick 'Delete anyway'",
            )


def _bank_row(bank: dict) -> dict:
    return {
        "key": bank["key"],
        "shots": ", ".join(f"{c}: {n}" for c, n in bank["shots"].items()),
        "models": _models(bank),
        "size": human_size(bank["size_bytes"]),
        "created": str(bank["created"])[:16].replace("T", " "),
    }


def _detail_rows(info: dict) -> list[dict]:
    row = _bank_row(info)
    rows = [
        ("bank", info.get("key")),
        ("shots per class", row["shots"]),
        ("models (proposer + encoder)", row["models"]),
        ("size", row["size"]),
        ("created (UTC)", row["created"]),
        ("fingerprint", info.get("fingerprint")),
        ("ground-truth field", info.get("gt_field")),
        ("reference tag", info.get("tag")),
        ("references", info.get("num_references")),
        ("masks made by SAM 2", info.get("generated_masks")),
        ("preset", info.get("preset")),
        ("test models", info.get("test_models") or "no (real models)"),
        ("file", info.get("path")),
        ("file present", "yes" if info.get("exists") else "no: rebuild the bank"),
    ]
    return [{"what": what, "value": str(value)} for what, value in rows]


def _models(bank: dict) -> str:
    return describe_models(bank.get("models"))
