"""Turning a library ``Effect`` into App operations, and the panel's one message.

The App sends events (selection, view) with a copy of the panel state taken before the last
action's changes arrived; :func:`latest_message` puts the newest message back into such a copy
so that a redraw from it does not drop it.
"""

from __future__ import annotations

import time

#: The latest message of each panel (by panel id): see :func:`latest_message`.
_MESSAGES: dict[str, dict] = {}


def apply_effect(ctx, effect, at: str = "top") -> None:
    """Carry out an :class:`~fiftyone_ntt.fiftyone.app.panel_state.Effect` in the App; its
    message is shown in section ``at`` of the panel (where the button that caused it is)."""
    if effect.reload:
        ctx.ops.reload_dataset()
    if effect.reopen_sample:
        # the sample view keeps drawing the labels it loaded: load it again
        ctx.ops.reload_samples()
    if effect.open_panel:
        ctx.ops.open_panel(
            effect.open_panel["name"],
            is_active=True,
            layout=effect.open_panel.get("layout", "horizontal"),
            state=effect.open_panel.get("state"),
        )
    # after opening a panel: the new panel's layout must not win over the view
    if effect.view is not None:
        ctx.ops.set_view(effect.view)
    if effect.prompt:
        ctx.prompt(
            effect.prompt["operator"],
            params=effect.prompt.get("params"),
            on_success=effect.prompt.get("on_success"),
        )
    if effect.message:
        ctx.ops.notify(effect.message, variant=effect.variant)
        set_message(ctx, effect.message, effect.variant, at)


def set_message(ctx, message: str | None, variant: str | None, at: str) -> None:
    """The panel's message (None: none), in the panel state and, against older copies of
    that state, in :data:`_MESSAGES`."""
    entry = {"message": message, "variant": variant, "at": at, "seq": time.time_ns()}
    _MESSAGES[ctx.panel_id] = entry
    _put_message(ctx.panel.state, entry)


def _put_message(state, entry: dict) -> None:
    state.message = entry["message"]
    state.message_variant = entry["variant"]
    state.message_at = entry["at"]
    state.message_seq = entry["seq"]


def latest_message(ctx) -> None:
    """Put the latest message back into an older copy of the panel state before drawing."""
    entry = _MESSAGES.get(ctx.panel_id)
    if entry and entry["seq"] > (ctx.panel.state.get("message_seq") or 0):
        _put_message(ctx.panel.state, entry)
