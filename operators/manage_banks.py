"""``ntt_manage_banks``: list, inspect or delete the dataset's memory banks."""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ._forms import bank_choice, class_table, default_bank, human_size, invalid


class NTTManageBanks(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="ntt_manage_banks",
            label="No Time to Train: manage memory banks",
            description="Lists the dataset's memory banks, shows one, or deletes one",
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
            from fiftyone_ntt.fiftyone.banks import list_banks

            banks = list_banks(ctx.dataset)
            rows = {
                b["key"]: (
                    ", ".join(f"{c}: {n}" for c, n in b["shots"].items()),
                    _models(b),
                    human_size(b["size_bytes"]),
                    b["created"],
                    b["fingerprint"][:12],
                )
                for b in banks
            }
            if rows:
                inputs.md(
                    class_table(
                        rows,
                        ("bank", "shots per class", "models", "size", "created", "fingerprint"),
                    ),
                    name="banks_table",
                )
            else:
                inputs.view("none", types.Notice(label="This dataset has no memory bank yet"))
            return types.Property(inputs, view=types.View(label="Memory banks"))
        bank_key, bank_prop, banks = bank_choice(inputs, ctx)
        if not banks:
            invalid(inputs, bank_prop, "bank", "This dataset has no memory bank")
        elif action == "delete":
            inputs.view(
                "delete_warning",
                types.Warning(label=f"Deletes bank {bank_key!r} and its file"),
            )
        return types.Property(inputs, view=types.View(label="Memory banks"))

    def execute(self, ctx):
        from fiftyone_ntt.fiftyone.banks import delete_bank, get_bank_info, list_banks

        action = ctx.params.get("action", "list")
        if action == "list":
            return {"action": action, "banks": list_banks(ctx.dataset)}
        key = ctx.params.get("bank") or default_bank(ctx)
        if action == "inspect":
            return {"action": action, "bank": get_bank_info(ctx.dataset, key)}
        deleted = delete_bank(ctx.dataset, key)
        return {"action": action, "deleted": key if deleted else None}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.obj("banks", label="Banks", view=types.JSONView())
        outputs.obj("bank", label="Bank", view=types.JSONView())
        outputs.str("deleted", label="Deleted")
        return types.Property(outputs, view=types.View(label="Memory banks"))


def _models(bank: dict) -> str:
    models = bank.get("models", {})
    return " + ".join(
        str(models.get(part, {}).get("source", "?")) for part in ("proposer", "encoder")
    )
