"""The panel's *Map* section (issue 22): a run's predictions with the bank's references and
negatives on FiftyOne's Embeddings panel, and *More like this* from a label selected there.

*Map predictions* opens the map operator for the chosen run (its field and bank; computing
missing features first when the run kept none), which opens the Embeddings panel. Labels
selected on the map (a lasso, or patches of the map field) are what the *Preview* section's
*Accept* / *Reject* and the *References* section's *Untag selected* act on: the library
maps them back to the labels they copy
(:func:`fiftyone_ntt.fiftyone.app.map_actions.curate_effect`). Every button calls one
function of :mod:`fiftyone_ntt.fiftyone.app.map_actions`.
"""

from __future__ import annotations

import fiftyone.operators.types as types

from . import widgets
from .actions import ActionRunner
from .effects import apply_effect
from .library import PLUGIN, ps

#: Where this section's messages show.
AT = "map"


def ma():
    """:mod:`fiftyone_ntt.fiftyone.app.map_actions`, imported when first used (it brings in
    FiftyOne's brain; see :mod:`.library`)."""
    from fiftyone_ntt.fiftyone.app import map_actions

    return map_actions


def map_choices(state) -> list[str]:
    """The fields of the segmentation runs of the Runs table that exist (newest first)."""
    return [r["field"] for r in ps().segmentation_choices(state.get("runs"))]


def chosen_field(state) -> str | None:
    """The run field the section maps: the chosen one (``map_field``) while it is listed,
    else the newest."""
    row = ps().chosen_segmentation(state.get("runs"), state.get("map_field"))
    return row["field"] if row else None


class MapActions(ActionRunner):
    def map_choose(self, ctx):
        ctx.panel.state.map_field = ctx.params.get("value")

    def map_open(self, ctx):
        state = ctx.panel.state
        self._run(
            ctx,
            ma().map_prompt,
            ctx.dataset,
            PLUGIN,
            chosen_field(state),
            state.get("bank"),
            on_success=self.refresh_quiet,
            at=AT,
        )

    def map_select_role(self, ctx):
        """Select every point of a role on the run's newest map (``params["role"]``, default
        ``fp``): the App's selected labels, as a lasso around that cluster gives them."""
        effect = self._call(
            ma().role_selection,
            ctx.dataset,
            chosen_field(ctx.panel.state),
            ctx.params.get("role") or "fp",
        )
        if effect.result:
            ctx.ops.set_selected_labels(effect.result)
        self.refresh(ctx)
        apply_effect(ctx, effect, at=AT)

    def map_more_like_this(self, ctx):
        self._run(
            ctx,
            ma().more_like_this_effect,
            ctx.view,
            ctx.selected_labels,
            PLUGIN,
            ctx.panel.state.get("bank"),
            at=AT,
        )


def render_map(panel, obj: types.Object, state) -> None:
    """The section: the run chooser and its buttons."""
    widgets.heading(obj, "map_heading", "Map")
    fields = map_choices(state)
    field = chosen_field(state)
    if field is None:
        obj.view(
            "map_empty",
            types.Notice(
                label="Segment a view first ('Segment this view…' keeps the features): "
                "its predictions, the references and the negatives then go on one map."
            ),
        )
    else:
        choices = types.DropdownView(label="Segmentation to map", space=8)
        for name in fields:
            choices.add_choice(name, label=name)
        obj.enum("map_field", fields, default=field, view=choices, on_change=panel.map_choose)
    obj.md(
        "On the map (Embeddings panel, colour by `ntt_role`), lasso or select points (or "
        "*Select false positives*: every fp point), then *Accept* / *Reject* above (*Untag "
        "selected* undoes), or:",
        name="map_selection",
    )
    widgets.buttons(
        obj,
        "map_buttons",
        [
            ("map_open_btn", "Map predictions", panel.map_open, field is None),
            ("map_fp_btn", "Select false positives", panel.map_select_role, field is None),
            ("map_more_btn", "More like this", panel.map_more_like_this, False),
        ],
    )
    widgets.message(obj, state, AT)
