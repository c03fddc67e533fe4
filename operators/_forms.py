"""Form helpers shared by the operators: field and bank choices, validation warnings,
progress reporting. Nothing heavy is imported here."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import fiftyone.operators.types as types

#: Targets above this many samples are always delegated by the heavy operators.
DELEGATE_ABOVE_SAMPLES = 50


def invalid(inputs: types.Object, prop: types.Property, name: str, message: str) -> None:
    """Mark ``prop`` invalid with ``message`` and show the message as a warning in the form
    (execution is then refused before it starts)."""
    prop.invalid = True
    prop.error_message = message
    inputs.view(f"{name}_warning", types.Warning(label="Cannot run yet", description=message))


def detections_fields(ctx) -> list[str]:
    from fiftyone_ntt.fiftyone.references import detections_fields as fields

    return fields(ctx.dataset)


def field_choice(
    inputs: types.Object,
    ctx,
    name: str,
    label: str,
    description: str,
    choices: list[str],
    default: str | None = None,
) -> tuple[str | None, types.Property]:
    """A dropdown of field names (free text allowed, so a bad value can be reported)."""
    dropdown = types.AutocompleteView(label=label, description=description)
    for choice in choices:
        dropdown.add_choice(choice, label=choice)
    value = ctx.params.get(name, default)
    prop = inputs.str(name, label=label, description=description, default=default, view=dropdown)
    return value, prop


def default_gt_field(ctx) -> str | None:
    fields = detections_fields(ctx)
    for preferred in ("ground_truth", "gt", "detections"):
        if preferred in fields:
            return preferred
    return fields[0] if fields else None


def default_bank(ctx) -> str | None:
    """The most recently created bank of the dataset (the form's default)."""
    from fiftyone_ntt.fiftyone.banks import list_banks

    banks = sorted(list_banks(ctx.dataset), key=lambda b: b.get("created", ""))
    return banks[-1]["key"] if banks else None


def bank_choice(inputs: types.Object, ctx, name: str = "bank") -> tuple[str | None, Any, list]:
    """A dropdown of the dataset's banks; (value, property, banks)."""
    from fiftyone_ntt.fiftyone.banks import list_banks

    banks = list_banks(ctx.dataset)
    choices = types.Dropdown(label="Memory bank")
    for bank in banks:
        shots = ", ".join(f"{c}: {n}" for c, n in bank["shots"].items())
        choices.add_choice(bank["key"], label=bank["key"], description=shots)
    default = default_bank(ctx)
    value = ctx.params.get(name, default)
    prop = inputs.enum(
        name,
        [b["key"] for b in banks] or [""],
        label="Memory bank",
        description="The bank whose classes are segmented (built with 'Build memory bank')",
        default=default,
        view=choices,
    )
    return value, prop, banks


def class_table(counts: dict[str, Any], header: tuple[str, ...]) -> str:
    """A markdown table: one row per class."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, value in counts.items():
        cells = value if isinstance(value, (list, tuple)) else (value,)
        lines.append("| " + " | ".join([str(name), *map(str, cells)]) + " |")
    return "\n".join(lines)


def progress_reporter(ctx, label: str, every_s: float = 1.0) -> Callable[[int, int], None]:
    """``progress(done, total)`` forwarding to ``ctx.set_progress`` at most every ``every_s``."""
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last[0] < every_s:
            return
        last[0] = now
        fraction = done / total if total else 1.0
        ctx.set_progress(progress=fraction, label=f"{label}: {done}/{total}")

    return report


def target_size(ctx) -> int:
    try:
        return len(ctx.target_view())
    except Exception:  # a form being filled in: no valid target yet
        return 0


def human_size(num_bytes: int) -> str:
    size = float(num_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
