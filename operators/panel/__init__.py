"""The "No Time to Train" panel: references, memory banks, preview, accept/reject, runs.

Thin glue over :mod:`fiftyone_ntt.fiftyone.app`: :meth:`NTTPanel.refresh` puts the rows
computed in ``panel_state`` into the panel state (tables read them) and every button calls one
library action whose ``Effect`` :func:`.effects.apply_effect` carries out in the App. One
module per section holds its buttons (:mod:`.references`, :mod:`.banks`, :mod:`.preview`,
:mod:`.runs`), :mod:`.long_work` the busy-then-work pattern of *Build* and *Preview*, and
:mod:`.layout` what is drawn. A new section: a mixin of :class:`.actions.ActionRunner` in its
own module, added to :class:`NTTPanel`'s bases, and its part of the layout.

Staying true: a timer of the layout calls :meth:`NTTPanel.poll`, which refreshes the panel
(silently) when what it shows changed on the dataset (an operator run from the App's
operator browser, a worker, the SDK: ``panel_state.change_stamp``) and on every tick while
runs are queued or running; operators the panel opens refresh it on success.
"""

from __future__ import annotations

import hashlib
import json

import fiftyone.operators as foo

from .banks import BankActions, preset_of
from .effects import apply_effect, latest_message
from .improve import ImproveActions
from .layout import render_panel
from .library import pa, ps
from .long_work import LongWork
from .preview import PreviewActions, preview_n_error
from .references import ReferenceActions
from .runs import RunActions

__all__ = ["PANEL_NAME", "NTTPanel", "preview_n_error"]

PANEL_NAME = "ntt_panel"


def _view_key(ctx) -> str:
    """A digest of the App's view (its stages) and dataset."""
    view = ctx.view
    try:
        stages = json.dumps(view._serialize(), sort_keys=True, default=str)
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
    ReferenceActions, BankActions, PreviewActions, RunActions, ImproveActions, LongWork, foo.Panel
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

    def refresh(self, ctx, message: bool = False) -> None:
        """Recompute every table and notice from the dataset."""
        dataset = ctx.dataset
        state = ctx.panel.state
        state.refs = ps().reference_rows(dataset)
        banks = ps().bank_rows(dataset)
        state.banks = banks
        state.runs = ps().run_rows(dataset)
        state.worker_notice = _worker_notice(dataset)
        state.first_use = ps().first_use(dataset)
        keys = [b["key"] for b in banks]
        if state.get("bank") not in keys:
            state.bank = keys[-1] if keys else None
        if state.get("build_key") is None:
            state.build_key = state.get("bank") or pa().default_bank_key(
                dataset, pa().reference_field(dataset)
            )
        if state.get("build_preset") is None:
            state.build_preset = preset_of(banks, state.get("build_key"))
        state.stamp = ps().change_stamp(dataset)
        state.view_key = _view_key(ctx)
        state.modal = bool(ctx.current_sample)
        self._selection(ctx)
        if message:
            apply_effect(ctx, ps().Effect("Refreshed", variant="info"), at="runs")

    def poll(self, ctx) -> bool:
        """The layout's timer: while work runs, show its progress; else refresh (no toast)
        when the dataset changed or runs are active. Returns whether anything changed (the
        panel is drawn again only then)."""
        state = ctx.panel.state
        if state.get("busy"):
            return self._busy_tick(ctx)
        changed = ps().change_stamp(ctx.dataset) != state.get("stamp")
        if changed or ps().has_active_runs(state.get("runs")):
            self.refresh(ctx)
            return True
        return False

    def execute(self, ctx):
        # a tick of the timer, and the App's view events, draw the panel again only when
        # something changed (the App sends view events after every change of the panel's
        # state too: redrawing from their copy of the state would show an old one)
        method = {
            "poll": self.poll,
            "on_change_view": self._view_changed,
            "on_change_selected": self._selection,
            "on_change_selected_labels": self._selection,
        }.get(ctx.params.get("__method__"))
        if method is not None:
            if method(ctx):
                ctx.ops.show_panel_output(self.render(ctx))
            return None
        return super().execute(ctx)

    def _view_changed(self, ctx) -> bool:
        """The App's view changed (or says so): refresh when the view or the dataset did."""
        state = ctx.panel.state
        same_view = _view_key(ctx) == state.get("view_key")
        if same_view and ps().change_stamp(ctx.dataset) == state.get("stamp"):
            return False
        self.refresh(ctx)
        return True

    # ---- events -----------------------------------------------------------------------

    def on_load(self, ctx):
        if ctx.panel.state.get("preview_n") is None:
            ctx.panel.state.preview_n = 8
        self.refresh(ctx)

    def on_change_view(self, ctx):
        self._view_changed(ctx)

    def on_change_dataset(self, ctx):
        self.refresh(ctx)

    def on_change_current_sample(self, ctx):
        ctx.panel.state.modal = bool(ctx.current_sample)

    def on_change_selected_labels(self, ctx):
        self._selection(ctx)

    def on_change_selected(self, ctx):
        self._selection(ctx)

    def on_refresh(self, ctx):
        self.refresh(ctx, message=True)

    # ---- layout -----------------------------------------------------------------------

    def render(self, ctx):
        latest_message(ctx)
        return render_panel(self, ctx)
