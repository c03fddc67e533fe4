"""The "No Time to Train" panel: references, memory banks, preview, accept/reject, runs,
improving the bank (thresholds, audit, review queue) and the embeddings map.

Thin glue over :mod:`fiftyone_ntt.fiftyone.app`: :meth:`NTTPanel.refresh` puts the rows
computed in ``panel_state`` into the panel state (tables read them) and every button calls one
library action whose ``Effect`` :func:`.effects.apply_effect` carries out in the App. One
module per section holds its buttons (:mod:`.references`, :mod:`.banks`, :mod:`.preview`,
:mod:`.runs`, :mod:`.improve`, :mod:`.map`), :mod:`.long_work` the busy-then-work pattern of
*Build* and *Preview*, :mod:`.layout` what is drawn (with :mod:`.widgets`; the larger sections
draw in their own module: :mod:`.improve_layout`, :func:`.map.render_map`). A new section: a
mixin of :class:`.actions.ActionRunner` in its own module, added to :class:`NTTPanel`'s bases,
and its part of the layout, drawn with :mod:`.widgets`.

Staying true: a timer of the layout calls :meth:`NTTPanel.poll`, which refreshes the panel
(silently) when what it shows changed on the dataset (an operator run from the App's
operator browser, a worker, the SDK: ``panel_state.change_stamp``) and on every tick while
runs are queued or running; operators the panel opens refresh it on success.

Staying quiet: every response of the panel that carries App operations makes FiftyOne 1.22's
App paint the labels of every image shown again, and two such rounds close together can cost
the App its label painting for good (docs/architecture.md, "The panel and the App's label
painting"). So App events and timer ticks (:meth:`NTTPanel.execute`) send nothing unless
what the panel shows changed since it last drew (:data:`_SHOWN`, by panel id: the App's
events carry a copy of the panel state from before the latest changes, so they are compared
with what was drawn, not with that copy), and the grid's panel sends nothing while the
sample view hides it (the sample view has its own panel).
"""

from __future__ import annotations

import hashlib
import json

import fiftyone.operators as foo

from fiftyone_ntt.fiftyone.app.panel_state import has_active_runs

from .actions import selection_counts
from .banks import BankActions, preset_of
from .effects import apply_effect, labels_written, latest_message, view_stages
from .improve import ImproveActions
from .layout import render_panel
from .library import pa, ps
from .long_work import LongWork
from .map import MapActions
from .preview import PreviewActions, preview_n_error
from .references import ReferenceActions
from .runs import RunActions

__all__ = ["PANEL_NAME", "NTTPanel", "preview_n_error"]

PANEL_NAME = "ntt_panel"

#: The state keys :meth:`NTTPanel.refresh` computes: what the panel shows of the dataset,
#: the App's view and selection, and whether a sample is open.
SHOWN_KEYS = (
    "refs",
    "banks",
    "runs",
    "worker_notice",
    "first_use",
    "bank",
    "build_key",
    "build_preset",
    "stamp",
    "view_key",
    "modal",
    "selection",
    "labels_written",
)
#: What each panel last drew (by panel id): the digest of its :data:`SHOWN_KEYS`, the
#: dataset's change stamp and whether runs were active.
_SHOWN: dict[str, dict] = {}
#: Handlers of fields the App shows as typed: they return whether to draw again.
TYPED = ("set_preview_n",)
#: The App's events and the timer: they draw the panel only when what it shows changed.
EVENTS = (
    "poll",
    "on_change_view",
    "on_change_dataset",
    "on_change_current_sample",
    "on_change_selected",
    "on_change_selected_labels",
    "on_change_extended_selection",
)


def _view_key(ctx) -> str:
    """A digest of the App's view (its stages) and dataset."""
    view = ctx.view
    try:
        stages = json.dumps(view_stages(view), sort_keys=True, default=str)
    except Exception:  # a view that cannot be serialized: compare its text
        stages = repr(view)
    text = f"{getattr(ctx, 'dataset_name', '')}|{stages}"
    return hashlib.sha1(text.encode()).hexdigest()


def _worker_notice(dataset) -> str | None:
    """A run queued a while ago that no worker has picked up: how to start one."""
    # deferred: scheduling reads FiftyOne's orchestrator settings, only when a panel opens
    from fiftyone_ntt.fiftyone.app.scheduling import unclaimed_notice

    return unclaimed_notice(dataset)


class NTTPanel(
    ReferenceActions,
    BankActions,
    PreviewActions,
    RunActions,
    ImproveActions,
    MapActions,
    LongWork,
    foo.Panel,
):
    @property
    def config(self):
        return foo.PanelConfig(
            name=PANEL_NAME,
            label="No Time to Train",
            icon="auto_awesome",
            surfaces="grid modal",
            help_markdown=(
                "Choose references, build a memory bank, preview it, correct it by accepting "
                "or rejecting predictions, segment and evaluate: the whole loop in one place."
            ),
        )

    # ---- state ------------------------------------------------------------------------

    def shown(self, ctx) -> dict:
        """What the panel shows now (:data:`SHOWN_KEYS`), computed from the dataset, the
        App's view and selection; the choices of the state (bank, build key and preset) are
        kept while they are valid."""
        dataset = ctx.dataset
        state = ctx.panel.state
        banks = ps().bank_rows(dataset)
        keys = [b["key"] for b in banks]
        bank = state.get("bank")
        if bank not in keys:
            bank = keys[-1] if keys else None
        build_key = state.get("build_key")
        if build_key is None:
            build_key = bank or pa().default_bank_key(dataset, pa().reference_field(dataset))
        build_preset = state.get("build_preset")
        if build_preset is None:
            build_preset = preset_of(banks, build_key)
        return {
            "refs": ps().reference_rows(dataset),
            "banks": banks,
            "runs": ps().run_rows(dataset),
            "worker_notice": _worker_notice(dataset),
            "first_use": ps().first_use(dataset),
            "bank": bank,
            "build_key": build_key,
            "build_preset": build_preset,
            "stamp": ps().change_stamp(dataset),
            "view_key": _view_key(ctx),
            "modal": bool(ctx.current_sample),
            "selection": selection_counts(ctx),
            "labels_written": labels_written(ctx.dataset_name),
        }

    def refresh(self, ctx, message: bool = False) -> None:
        """Recompute every table and notice from the dataset (one state patch)."""
        ctx.panel.state.set(self.shown(ctx))
        if message:
            apply_effect(ctx, ps().Effect("Refreshed", variant="info"), at="runs")

    def poll(self, ctx) -> bool:
        """The layout's timer: while work runs, show its progress; else refresh (no toast)
        when the dataset changed or runs are active. Returns whether anything changed (the
        panel is drawn again only then)."""
        state = ctx.panel.state
        if state.get("busy"):
            return self._busy_tick(ctx)
        last = _SHOWN.get(ctx.panel_id)
        if last and not last["active"] and ps().change_stamp(ctx.dataset) == last["stamp"]:
            return False  # nothing the timer watches changed
        return self._changed(ctx)

    def _changed(self, ctx) -> bool:
        """Refresh the state when what the panel shows differs from what it last drew;
        returns whether it did (nothing is sent to the App otherwise)."""
        now = self.shown(ctx)
        last = _SHOWN.get(ctx.panel_id)
        if last is not None and _digest(now) == last["digest"]:
            return False
        if last and now["labels_written"] != last["labels_written"] and not ctx.current_sample:
            # labels were written from the sample view's panel while it hid the grid,
            # whose tiles keep the samples they loaded: load them again
            ctx.ops.reload_samples()
        ctx.panel.state.set(now)
        return True

    def execute(self, ctx):
        # the App's events and the timer's ticks draw the panel again only when what it
        # shows changed since it was last drawn (see the module's docstring)
        method = ctx.params.get("__method__")
        if method in EVENTS:
            if ctx.current_sample and ctx.panel.state.get("surface") == "grid":
                # the grid's panel, hidden behind the sample view: it catches up when the
                # sample view closes (that event comes without a sample)
                return None
            changed = self.poll(ctx) if method == "poll" else self._changed(ctx)
        elif method in TYPED:
            changed = getattr(self, method)(ctx)
        else:
            return super().execute(ctx)
        if changed:
            ctx.ops.show_panel_output(self.render(ctx))
        return None

    # ---- events -----------------------------------------------------------------------

    def on_load(self, ctx):
        # one state patch (each patch is a round of painting in the App)
        preview_n = ctx.panel.state.get("preview_n")
        first = {
            "preview_n": 8 if preview_n is None else preview_n,
            # the sample view's panel loads while a sample is open, the grid's without one
            "surface": "modal" if ctx.current_sample else "grid",
        }
        ctx.panel.state.set({**first, **self.shown(ctx)})

    # the App's events (registered by these names; :meth:`execute` handles them)

    def on_change_view(self, ctx):
        self._changed(ctx)

    def on_change_dataset(self, ctx):
        self._changed(ctx)

    def on_change_current_sample(self, ctx):
        self._changed(ctx)

    def on_change_selected_labels(self, ctx):
        self._changed(ctx)

    def on_change_selected(self, ctx):
        self._changed(ctx)

    def on_change_extended_selection(self, ctx):
        self._changed(ctx)  # a lasso in the Embeddings panel: the selection line counts it

    def on_refresh(self, ctx):
        self.refresh(ctx, message=True)

    # ---- layout -----------------------------------------------------------------------

    def render(self, ctx):
        state = ctx.panel.state
        updates = latest_message(ctx)
        written = labels_written(ctx.dataset_name)
        if state.get("labels_written") != written:  # an action's effect wrote labels
            updates["labels_written"] = written
        if updates:  # one state patch (each is a round of label painting in the App)
            state.set(updates)
        _SHOWN[ctx.panel_id] = {
            "digest": _digest({k: state.get(k) for k in SHOWN_KEYS}),
            "stamp": state.get("stamp"),
            "active": has_active_runs(state.get("runs")),
            "labels_written": state.get("labels_written"),
        }
        return render_panel(self, ctx)


def _digest(shown: dict) -> str:
    return hashlib.sha1(json.dumps(shown, sort_keys=True, default=str).encode()).hexdigest()
