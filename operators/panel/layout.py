"""Layout of the "No Time to Train" panel: sections of tables, notices and buttons.

Everything shown is read from the panel state that ``NTTPanel.refresh`` fills from
:mod:`fiftyone_ntt.fiftyone.panel_state`; nothing here touches the dataset.
"""

from __future__ import annotations

import fiftyone.operators.types as types

from .._numbers import number_field

#: The preview's N: its label and bound (``NTTPanel.set_preview_n`` checks a new value).
PREVIEW_N = {"label": "N (samples of the view to preview)", "min": 1}

_NOTICE = {"error": types.Error, "warning": types.Warning, "success": types.Success}


def _table(columns: list[tuple[str, str]]) -> types.TableView:
    table = types.TableView(max_inline_actions=5)
    for key, label in columns:
        table.add_column(key, label=label)
    return table


def _buttons(parent: types.Object, name: str, buttons: list[tuple]) -> None:
    """A row of buttons: ``(name, label, callback, disabled)``."""
    stack = parent.h_stack(name, gap=1, align_x="left")
    for key, label, callback, disabled in buttons:
        stack.btn(key, label=label, on_click=callback, disabled=disabled, variant="outlined")


def _heading(parent: types.Object, name: str, text: str) -> None:
    parent.md(f"##### {text}", name=name)


def _first_use(panel, obj: types.Object, info: dict) -> None:
    _heading(obj, "first_use_heading", "Getting started")
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
    _buttons(obj, "first_use_buttons", buttons)


def selection_text(selection: dict | None) -> str:
    """``"3 labels selected (2 predictions)"``, or that nothing is selected."""
    labels = int((selection or {}).get("labels") or 0)
    if not labels:
        return "No label selected"
    predictions = int((selection or {}).get("predictions") or 0)
    return (
        f"{labels} label{'s' if labels != 1 else ''} selected ({predictions} "
        f"prediction{'s' if predictions != 1 else ''})"
    )


def _selection(panel, obj: types.Object, state) -> None:
    """What the selection buttons act on, and a button that unselects it."""
    obj.md(f"**{selection_text(state.get('selection'))}**", name="selection_line")
    _buttons(
        obj,
        "selection_buttons",
        [("clear_selection", "Clear", panel.clear_selection, False)],
    )


def _references(panel, obj: types.Object, state) -> None:
    _heading(obj, "refs_heading", "References")
    rows = state.get("refs") or []
    if rows:
        obj.list(
            "refs",
            types.Object(),
            view=_table(
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
    _buttons(
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
    _buttons(
        obj,
        "refs_tag",
        [
            ("tag_refs", "Tag selected as references", panel.tag_refs, False),
            ("tag_negs", "Tag selected as negatives", panel.tag_negs, False),
            ("untag", "Untag selected", panel.untag, False),
        ],
    )


def _banks(panel, obj: types.Object, state) -> None:
    _heading(obj, "banks_heading", "Memory banks")
    rows = state.get("banks") or []
    if rows:
        # few columns, so the table fits beside the grid (the creation time is the Bank
        # cell's tooltip)
        table = _table(
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
    has_refs = bool(state.get("refs"))
    _buttons(obj, "banks_buttons", [("build", "Build / rebuild", panel.build, not has_refs)])


def _preview(panel, obj: types.Object, state) -> None:
    _heading(obj, "preview_heading", "Preview")
    bank = state.get("bank")
    number_field(
        obj,
        "preview_n",
        state.get("preview_n_entered"),  # a refused value says why under the field
        default=state.get("preview_n") or 8,
        on_change=panel.set_preview_n,
        view=types.FieldView(space=4),
        **PREVIEW_N,
    )
    _buttons(
        obj,
        "preview_buttons",
        [
            (
                "preview_sample",
                "Preview on this sample",
                panel.preview_sample,
                not (bank and state.get("modal")),
            ),
            ("preview_view", "Preview on N samples of the view", panel.preview_view, not bank),
        ],
    )
    obj.md(
        "Select predictions (in the sample view, or patches of a prediction field or of an "
        "evaluation), then:",
        name="judge_selection",
    )
    _buttons(
        obj,
        "judge_buttons",
        [
            ("accept", "Accept selected predictions as references", panel.accept, False),
            ("reject", "Reject selected predictions (false positives)", panel.reject, False),
        ],
    )


def _runs(panel, obj: types.Object, state) -> None:
    _heading(obj, "runs_heading", "Runs")
    if state.get("worker_notice"):
        obj.view("worker_notice", types.Warning(label=state.get("worker_notice")))
    rows = state.get("runs") or []
    if rows:
        # Few, short columns: the panel usually shares the width with the grid, and the row
        # buttons must be visible without scrolling sideways.
        # (the update time is the State cell's tooltip)
        columns = [
            ("kind", "Run"),
            ("field", "Field / key"),
            ("status", "State"),
            ("bank", "Bank"),
        ]
        if any(r.get("error") for r in rows):
            columns.append(("error", "Error"))
        table = _table(columns)
        for index, row in enumerate(rows):
            if row.get("when"):
                table.add_tooltip(index, "status", f"updated {row['when']} UTC")
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
        ):
            table.add_row_action(
                name,
                callback,
                label=label,
                tooltip=tooltip,
                rows=[bool(r.get(flag)) for r in rows],
            )
        obj.list("runs", types.Object(), view=table)
    else:
        obj.view("runs_empty", types.Notice(label="No segmentation run yet."))
    _buttons(
        obj,
        "runs_buttons",
        [
            ("segment", "Segment this view…", panel.segment_view, not state.get("bank")),
            ("refresh", "Refresh", panel.on_refresh, False),
        ],
    )


def render_panel(panel, ctx) -> types.Property:
    state = ctx.panel.state
    obj = types.Object()
    message = state.get("message")
    if message:
        kind = _NOTICE.get(state.get("message_variant"), types.Notice)
        obj.view("message", kind(label=message))
    info = state.get("first_use")
    if info:
        _first_use(panel, obj, info)
    _references(panel, obj, state)
    _banks(panel, obj, state)
    _preview(panel, obj, state)
    _runs(panel, obj, state)
    return types.Property(obj, view=types.GridView(orientation="vertical", gap=2, pad=2))
