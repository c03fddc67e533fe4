"""Layout of the "No Time to Train" panel: sections of tables, notices and buttons.

Everything shown is read from the panel state that ``NTTPanel.refresh`` fills from
:mod:`fiftyone_ntt.fiftyone.app.panel_state`; nothing here touches the dataset.
"""

from __future__ import annotations

import fiftyone.operators.types as types

from .._numbers import number_field
from . import improve_layout, map, widgets

#: The preview's N: its label and bounds (``NTTPanel.set_preview_n`` checks a new value). At
#: most 100: a preview runs inside the App, a look before a run ('Segment this view…').
PREVIEW_N = {"label": "N (samples of the view to preview)", "min": 1, "max": 100}
#: Milliseconds between two ticks of the panel's refresh timer: while work or runs are under
#: way, else (a tick only redraws the panel when the dataset changed).
POLL_BUSY_MS = 1500
POLL_IDLE_MS = 4000


def _first_use(panel, obj: types.Object, info: dict) -> None:
    widgets.heading(obj, "first_use_heading", "Getting started")
    lines = [f"**{s['title']}**: {s['text']}" for s in info["steps"]]
    obj.md("\n\n".join(lines), name="first_use_steps")
    if info.get("demo"):
        obj.view("demo_notice", types.Notice(label=info["demo_text"]))
    buttons = []
    if info.get("demo"):
        buttons.append(("demo_refs", "1. Use coins_top as references", panel.demo_refs, False))
    buttons += [
        ("sample_refs", "1. Sample references…", panel.sample_refs, False),
        ("first_build", "2. Build memory bank", panel.build, True),
        ("first_segment", "3. Segment this view…", panel.segment_view, True),
    ]
    widgets.buttons(obj, "first_use_buttons", buttons)


def selection_text(selection: dict | None) -> str:
    """``"3 labels selected (2 predictions)"``, or that nothing is selected."""
    labels = int((selection or {}).get("labels") or 0)
    if not labels:
        return "No label selected"
    predictions = int((selection or {}).get("predictions") or 0)
    where = " on the map" if (selection or {}).get("on_map") else ""
    return (
        f"{labels} label{'s' if labels != 1 else ''} selected{where} ({predictions} "
        f"prediction{'s' if predictions != 1 else ''})"
    )


def _selection(panel, obj: types.Object, state) -> None:
    """What the selection buttons act on, and a button that unselects it."""
    obj.md(f"**{selection_text(state.get('selection'))}**", name="selection_line")
    widgets.buttons(
        obj,
        "selection_buttons",
        [("clear_selection", "Clear", panel.clear_selection, False)],
    )


def _references(panel, obj: types.Object, state) -> None:
    widgets.heading(obj, "refs_heading", "References")
    rows = state.get("refs") or []
    if rows:
        obj.list(
            "refs",
            types.Object(),
            view=widgets.table(
                [
                    ("class", "Class"),
                    ("positives", "References"),
                    ("negatives", "Negatives"),
                    ("fields", "Fields"),
                ]
            ),
        )
    else:
        obj.view("refs_empty", types.Notice(label="No label is tagged as a reference yet."))
    has_neg = any(r.get("negatives") for r in rows)
    widgets.buttons(
        obj,
        "refs_show",
        [
            ("show_refs", "Show references", panel.show_refs, not rows),
            ("show_negs", "Show negatives", panel.show_negs, not has_neg),
        ],
    )
    _selection(panel, obj, state)
    # the buttons read the selection when clicked: never disabled on a count that may be
    # stale (the App does not always tell a hidden panel about selection changes)
    obj.md(
        "Select labels in the grid or the sample view (or patches in a patches view), then:",
        name="refs_selection",
    )
    widgets.buttons(
        obj,
        "refs_tag",
        [
            ("tag_refs", "Tag selected as references", panel.tag_refs, False),
            ("tag_negs", "Tag selected as negatives", panel.tag_negs, False),
            ("untag", "Untag selected", panel.untag, False),
        ],
    )
    widgets.message(obj, state, "refs")


def _banks(panel, obj: types.Object, state) -> None:
    widgets.heading(obj, "banks_heading", "Memory banks")
    rows = state.get("banks") or []
    if rows:
        # few columns, so the table fits beside the grid (the creation time is the Bank
        # cell's tooltip)
        table = widgets.table(
            [
                ("name", "Bank"),
                ("classes", "Shots per class"),
                ("negatives", "Negatives"),
                ("change", "Change"),
            ]
        )
        for index, row in enumerate(rows):
            if row.get("when"):
                table.add_tooltip(index, "name", f"created {row['when']} UTC")
        obj.list("banks", types.Object(), view=table)
        # models and file size: one line per bank, the table would be too wide with them
        details = {}
        for row in rows:
            details.setdefault(row["key"], f"**{row['key']}**: {row['models']}, {row['size']}")
        obj.md("  \n".join(details.values()), name="banks_details")
        choices = types.DropdownView(label="Bank used by preview and segment")
        for key in dict.fromkeys(r["key"] for r in rows):
            choices.add_choice(key, label=key)
        obj.enum(
            "bank",
            list(dict.fromkeys(r["key"] for r in rows)),
            default=state.get("bank"),
            view=choices,
            on_change=panel.choose_bank,
        )
    else:
        obj.view("banks_empty", types.Notice(label="No memory bank yet."))
    _build_fields(obj, state, panel)
    working = widgets.busy(panel, obj, state, "build", "banks_busy")
    has_refs = bool(state.get("refs"))
    widgets.buttons(
        obj,
        "banks_buttons",
        [("build", "Build / rebuild", panel.build, not has_refs or working)],
    )
    widgets.message(obj, state, "banks")


def _build_fields(obj: types.Object, state, panel) -> None:
    """The bank key and the preset *Build* uses (an existing key: its next version)."""
    from fiftyone_ntt.config import PRESETS

    keys = {r["key"]: r["version"] for r in reversed(state.get("banks") or [])}
    key = state.get("build_key")
    hint = (
        f"builds v{keys[key] + 1} of {key!r}"
        if key in keys
        else "a new key makes a new bank; an existing key, its next version"
    )
    prop = obj.str(
        "build_key",
        default=key,
        label="Bank key",
        description=hint,
        on_change=panel.set_build_key,
        view=types.FieldView(space=6),
    )
    widgets.field_error(obj, prop, state, "build_key")
    presets = list(PRESETS)
    chosen = state.get("build_preset")
    if chosen is not None and chosen not in presets:
        presets.append(chosen)  # shown as typed, with its error
    choices = types.DropdownView(label="Model preset", space=6)
    for name in presets:
        choices.add_choice(name, label=name)
    prop = obj.enum(
        "build_preset",
        presets,
        default=chosen or "default",
        label="Model preset",
        description="The models of the bank (a bank keeps its preset in every version)",
        view=choices,
        on_change=panel.set_build_preset,
    )
    widgets.field_error(obj, prop, state, "build_preset")
    if (state.get("errors") or {}).get("build"):
        obj.view("build_error", types.Error(label=state.get("errors")["build"]))


def _preview(panel, obj: types.Object, state) -> None:
    widgets.heading(obj, "preview_heading", "Preview")
    bank = state.get("bank")
    prop = number_field(
        obj,
        "preview_n",
        state.get("preview_n"),  # what the field shows is what Preview uses
        default=8,
        on_change=panel.set_preview_n,
        view=types.FieldView(space=4),
        **PREVIEW_N,
    )
    widgets.field_error(obj, prop, state, "preview_n")
    working = widgets.busy(panel, obj, state, "preview", "preview_busy")
    widgets.buttons(
        obj,
        "preview_buttons",
        [
            (
                "preview_sample",
                "Preview on this sample",
                panel.preview_sample,
                not (bank and state.get("modal")) or working,
            ),
            (
                "preview_view",
                "Preview on N samples of the view",
                panel.preview_view,
                not bank or working,
            ),
        ],
    )
    widgets.message(obj, state, "preview")
    obj.md(
        "Select predictions (in the sample view, or patches of a prediction field or of an "
        "evaluation), then:",
        name="judge_selection",
    )
    widgets.buttons(
        obj,
        "judge_buttons",
        [
            ("accept", "Accept selected predictions as references", panel.accept, False),
            ("reject", "Reject selected predictions (false positives)", panel.reject, False),
        ],
    )
    widgets.message(obj, state, "judge")


def _runs(panel, obj: types.Object, state) -> None:
    widgets.heading(obj, "runs_heading", "Runs")
    if state.get("worker_notice"):
        obj.view("worker_notice", types.Warning(label=state.get("worker_notice")))
    rows = state.get("runs") or []
    if rows:
        # Few, short columns: the panel usually shares the width with the grid, and the row
        # buttons must be visible without scrolling sideways.
        # (the update time is the State cell's tooltip)
        # an error is a few words in the State cell (the table has no room for a column of
        # its own); its full text: the cell's tooltip and a line below the table
        errors = [r for r in rows if r.get("error")]
        table = widgets.table(
            [
                ("kind", "Run"),
                ("field", "Field / key"),
                ("state_cell", "State"),
                ("bank", "Bank"),
            ]
        )
        for index, row in enumerate(rows):
            tip = f"updated {row['when']} UTC" if row.get("when") else ""
            if row.get("error"):
                tip = f"{row['error']} ({tip})" if tip else row["error"]
            if tip:
                table.add_tooltip(index, "state_cell", tip)
            if row.get("history"):
                table.add_tooltip(index, "field", row["history"])
        # short labels (the tooltip says the rest): three of them fit beside the columns
        for name, label, tooltip, callback, flag in (
            ("show", "Show", "Show the run's predictions", panel.run_show, "can_show"),
            ("resume", "Resume", "Segment what is left", panel.run_resume, "can_resume"),
            (
                "cancel",
                "Cancel",
                "Stop it before its next sample (what it wrote is kept; Resume continues)",
                panel.run_cancel,
                "can_cancel",
            ),
            (
                "mark_failed",
                "Mark failed",
                "Its worker is gone: mark the operation failed",
                panel.run_mark_failed,
                "can_mark_failed",
            ),
            ("evaluate", "Evaluate", "COCO evaluation", panel.run_evaluate, "can_evaluate"),
            (
                "open_eval",
                "Results",
                "Open the evaluation: Model Evaluation panel and TP/FP/FN patches",
                panel.run_open_eval,
                "can_open_eval",
            ),
            (
                "dismiss",
                "Dismiss",
                "Hide this row until the field is run again. Nothing is deleted: the run "
                "record, its predictions and the labels are kept",
                panel.run_dismiss,
                "can_dismiss",
            ),
        ):
            table.add_row_action(
                name,
                callback,
                label=label,
                tooltip=tooltip,
                rows=[bool(r.get(flag)) for r in rows],
            )
        obj.list("runs", types.Object(), view=table)
        if errors:
            lines = [
                f"**{r.get('field') or r.get('kind')}** ({r.get('state')}): {r['error']}"
                for r in errors
            ]
            obj.md("  \n".join(lines), name="runs_errors")
    else:
        obj.view("runs_empty", types.Notice(label="No segmentation run yet."))
    widgets.buttons(
        obj,
        "runs_buttons",
        [
            ("segment", "Segment this view…", panel.segment_view, not state.get("bank")),
            ("refresh", "Refresh", panel.on_refresh, False),
        ],
    )
    widgets.message(obj, state, "runs")


def _timers(panel, obj: types.Object, state) -> None:
    """The refresh timer (``poll``; faster while work or runs are under way) and, while
    work is announced, the one-shot timer that starts it (``work``)."""
    from fiftyone_ntt.fiftyone.app.panel_state import has_active_runs

    busy = state.get("busy") or {}
    working = panel.is_working(busy)
    active = working or has_active_runs(state.get("runs"))
    obj.view(
        "poll_timer",
        types.TimerView(interval=POLL_BUSY_MS if active else POLL_IDLE_MS, on_interval=panel.poll),
    )
    if working:
        obj.view(
            "work_timer",
            types.TimerView(timeout=50, on_timeout=panel.work, params={"token": busy["token"]}),
        )


def render_panel(panel, ctx) -> types.Property:
    state = ctx.panel.state
    obj = types.Object()
    widgets.message(obj, state, "top")
    _timers(panel, obj, state)
    info = state.get("first_use")
    if info:
        _first_use(panel, obj, info)
    _references(panel, obj, state)
    _banks(panel, obj, state)
    _preview(panel, obj, state)
    _runs(panel, obj, state)
    improve_layout.render_improve(panel, obj, state)
    map.render_map(panel, obj, state)
    return types.Property(obj, view=types.GridView(orientation="vertical", gap=2, pad=2))
