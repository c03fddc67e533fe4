"""The panel's building blocks: headings, rows of buttons, tables, a section's message, a
field's error, a busy notice. Every section's layout draws with these."""

from __future__ import annotations

import fiftyone.operators.types as types

from .._forms import invalid

#: The notice kind of each message variant (others: a plain notice).
NOTICE = {"error": types.Error, "warning": types.Warning, "success": types.Success}


def table(columns: list[tuple[str, str]]) -> types.TableView:
    table = types.TableView(max_inline_actions=5)
    for key, label in columns:
        table.add_column(key, label=label)
    return table


def buttons(parent: types.Object, name: str, buttons: list[tuple]) -> None:
    """A row of buttons: ``(name, label, callback, disabled)``."""
    stack = parent.h_stack(name, gap=1, align_x="left")
    for key, label, callback, disabled in buttons:
        stack.btn(key, label=label, on_click=callback, disabled=disabled, variant="outlined")


def heading(parent: types.Object, name: str, text: str) -> None:
    parent.md(f"##### {text}", name=name)


def message(obj: types.Object, state, section: str) -> None:
    """The result of the last action, in the section of the button that caused it."""
    message = state.get("message")
    if message and (state.get("message_at") or "top") == section:
        kind = NOTICE.get(state.get("message_variant"), types.Notice)
        obj.view("message" if section == "top" else f"{section}_message", kind(label=message))


def field_error(obj: types.Object, prop, state, name: str) -> None:
    """The error of a field of the panel (``state.errors``), shown under the field."""
    error = (state.get("errors") or {}).get(name)
    if error:
        invalid(obj, prop, name, error)


def busy(panel, obj: types.Object, state, action: str, name: str) -> bool:
    """While ``action`` runs: what it is doing (with its progress), in place of the old
    message. Returns whether any work is under way (its buttons are then disabled)."""
    busy = state.get("busy") or {}
    if not panel.is_working(busy):
        return False
    if busy.get("action") == action:
        progress = state.get("progress")
        text = f"{busy.get('text')} … ({progress})" if progress else f"{busy.get('text')} … working"
        obj.view(name, types.Notice(label=text))
    return True
