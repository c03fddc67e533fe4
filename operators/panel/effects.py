"""Turning a library ``Effect`` into App operations, and the panel's one message.

The App sends events (selection, view) with a copy of the panel state taken before the last
action's changes arrived; :func:`latest_message` puts the newest message back into such a copy
so that a redraw from it does not drop it.
"""

from __future__ import annotations

import time

import fiftyone.core.stages as fos

#: The latest message of each panel (by panel id): see :func:`latest_message`.
_MESSAGES: dict[str, dict] = {}
#: What the latest actions of each panel left for it to draw (state keys and values, by panel
#: id and dataset: never drawn over another dataset): put back with the message into an older
#: copy of the state (see :func:`remember`).
_RESULTS: dict[tuple[str, str], dict] = {}
#: How many times a panel wrote labels, by dataset name (see :func:`labels_written`).
_WRITES: dict[str, int] = {}
#: The message of the latest action that wrote labels, by dataset name: every panel of the
#: dataset shows it when it draws next (the grid's panel, after the sample view's panel
#: previewed, must not go on telling its own older preview).
_WRITE_MESSAGES: dict[str, dict] = {}


def labels_written(dataset_name: str) -> int:
    """How many panel actions wrote labels of the dataset (in this App server): a panel
    that drew with an older count shows a grid whose tiles may hold older labels."""
    return _WRITES.get(dataset_name, 0)


def apply_effect(ctx, effect, at: str = "top") -> None:
    """Carry out an :class:`~fiftyone_ntt.fiftyone.app.panel_state.Effect` in the App; its
    message is shown in section ``at`` of the panel (where the button that caused it is)."""
    if effect.reload or effect.reopen_sample:
        _WRITES[ctx.dataset_name] = labels_written(ctx.dataset_name) + 1
    if effect.reload and not effect.reopen_sample:
        # (reopening sets a view, which makes the App load the dataset and its fields
        # again: one reload more, in the sample view, repaints its labels twice at once
        # and costs the App a painting worker, see docs/architecture.md)
        ctx.ops.reload_dataset()
    if effect.reopen_sample:
        # the sample view keeps the sample it loaded per dataset, view and sample id (the
        # App's "reload samples" does not reach it): set an equal view the App has not
        # seen and open the sample in it again, so that it is loaded from the database
        ctx.ops.set_view(unseen_view(ctx.view))
        ctx.ops.open_sample(effect.reopen_sample)
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
        if effect.reload or effect.reopen_sample:
            _WRITE_MESSAGES[ctx.dataset_name] = _MESSAGES[ctx.panel_id]


#: The stage :func:`unseen_view` adds to a view without stages: it changes nothing.
_NO_OP = {"_cls": "fiftyone.core.stages.Exclude", "kwargs": [["sample_ids", []]]}


def view_stages(view) -> list[dict]:
    """The stages of ``view`` that matter: without their ids or :func:`unseen_view`'s no-op
    stage (an equal view set again by the panel is the same view)."""
    return [s for s in view._serialize(include_uuids=False) if s != _NO_OP]


def unseen_view(view):
    """``view`` again with new stage ids: the same samples, a view the App has no sample
    cached for. A view without stages gets one that changes nothing (an empty exclude)."""
    fresh = view._root_dataset.view()
    # without an id, a stage gets a new one when it is sent to the App
    for stage in view_stages(view) or [_NO_OP]:
        fresh = fresh.add_stage(fos.ViewStage._from_dict(stage))
    return fresh


def set_message(ctx, message: str | None, variant: str | None, at: str) -> None:
    """The panel's message (None: none), in the panel state and, against older copies of
    that state, in :data:`_MESSAGES`."""
    entry = {"message": message, "variant": variant, "at": at, "seq": time.time_ns()}
    _MESSAGES[ctx.panel_id] = entry
    ctx.panel.state.set(_message_keys(entry))


def _message_keys(entry: dict) -> dict:
    """The panel state keys (and values) that show a message entry of ``_MESSAGES``."""
    return {
        "message": entry["message"],
        "message_variant": entry["variant"],
        "message_at": entry["at"],
        "message_seq": entry["seq"],
    }


def remember(ctx, values: dict) -> None:
    """State keys an action wrote for its section to draw (a table's rows): an event that
    arrives with a copy of the state from before the action gets them back with the
    action's message (:func:`latest_message`), else its redraw would drop the table."""
    _RESULTS.setdefault((ctx.panel_id, ctx.dataset_name), {}).update(values)


def latest_message(ctx) -> dict:
    """What to put back into an older copy of the panel state before drawing (state keys
    and values; the caller sets them in one patch): the latest message and what the
    actions left to draw; a newer message of an action that wrote labels of the dataset
    from another panel (the sample view's) wins over the panel's own."""
    state = ctx.panel.state
    updates: dict = {}
    shown = state.get("message_seq") or 0
    entry = _MESSAGES.get(ctx.panel_id)
    if entry and entry["seq"] > shown:
        updates.update(_message_keys(entry))
        updates.update(_RESULTS.get((ctx.panel_id, ctx.dataset_name), {}))
        shown = entry["seq"]
    written = _WRITE_MESSAGES.get(ctx.dataset_name)
    if written and written["seq"] > shown:
        updates.update(_message_keys(written))
    return updates
