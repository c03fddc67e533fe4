"""The "No Time to Train" panel: references, memory banks, preview, accept/reject, runs.

Thin glue over :mod:`fiftyone_ntt.fiftyone.panel_state`: :meth:`NTTPanel.refresh` puts the
rows computed there into the panel state (tables read them), every button calls one action
there and :func:`apply_effect` turns the returned ``Effect`` into App operations. The layout
is in :mod:`.layout`.
"""

from __future__ import annotations

import fiftyone.operators as foo

from .._numbers import bound_error
from .layout import PREVIEW_N, render_panel

PLUGIN = "@fiftyone-ntt/no-time-to-train"
PANEL_NAME = "ntt_panel"


def _ps():
    from fiftyone_ntt.fiftyone import panel_state

    return panel_state


def _pa():
    from fiftyone_ntt.fiftyone import panel_actions

    return panel_actions


def apply_effect(ctx, effect) -> None:
    """Carry out an :class:`~fiftyone_ntt.fiftyone.panel_state.Effect` in the App."""
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
        ctx.panel.state.message = effect.message
        ctx.panel.state.message_variant = effect.variant


def _worker_notice(dataset) -> str | None:
    """A run queued a while ago that no worker has picked up: how to start one."""
    from fiftyone_ntt.fiftyone.scheduling import unclaimed_notice

    return unclaimed_notice(dataset)


class NTTPanel(foo.Panel):
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
        ps = _ps()
        dataset = ctx.dataset
        state = ctx.panel.state
        state.refs = ps.reference_rows(dataset)
        banks = ps.bank_rows(dataset)
        state.banks = banks
        state.runs = ps.run_rows(dataset)
        state.worker_notice = _worker_notice(dataset)
        state.first_use = ps.first_use(dataset)
        keys = [b["key"] for b in banks]
        if state.get("bank") not in keys:
            state.bank = keys[-1] if keys else None
        if not state.get("preview_n"):
            state.preview_n = 8
        state.modal = bool(ctx.current_sample)
        self._selection(ctx)
        if message:
            apply_effect(ctx, ps.Effect("Refreshed", variant="info"))

    def _selection(self, ctx) -> None:
        ctx.panel.state.selection = _pa().selection_counts(
            ctx.view, ctx.selected_labels, ctx.selected
        )

    def _clear_selection(self, ctx) -> None:
        """Unselect the labels and samples (patches) in the App."""
        ctx.ops.clear_selected_labels()
        ctx.ops.clear_selected_samples()
        ctx.panel.state.selection = {"labels": 0, "predictions": 0}

    def _run(self, ctx, action, *args, clear_selection: bool = False, **kwargs) -> None:
        """Run an action; a bad input becomes an error message, never a crash of the panel.
        ``clear_selection``: the action used the selection; once it succeeded, unselect (a
        label selected for it must not be carried into the next action)."""
        ps = _ps()
        try:
            effect = action(*args, **kwargs)
        except (ValueError, KeyError, RuntimeError, OSError) as error:
            effect = ps.Effect(str(error).strip("'\""), variant="error")
        self.refresh(ctx)
        if clear_selection and effect.variant == "success":
            self._clear_selection(ctx)
        apply_effect(ctx, effect)

    def _on_selection(self, ctx, action, *args) -> None:
        """An action on the selected labels (or patches) of the App's view."""
        self._run(
            ctx,
            action,
            ctx.view,
            ctx.selected_labels,
            *args,
            selected=ctx.selected,
            clear_selection=True,
        )

    # ---- events -----------------------------------------------------------------------

    def on_load(self, ctx):
        self.refresh(ctx)

    def on_change_view(self, ctx):
        self.refresh(ctx)

    def on_change_dataset(self, ctx):
        self.refresh(ctx)

    def on_change_current_sample(self, ctx):
        ctx.panel.state.modal = bool(ctx.current_sample)

    def on_change_selected_labels(self, ctx):
        self._selection(ctx)

    def on_change_selected(self, ctx):
        self._selection(ctx)

    def clear_selection(self, ctx):
        self._clear_selection(ctx)

    def on_refresh(self, ctx):
        self.refresh(ctx, message=True)

    # ---- references -------------------------------------------------------------------

    def show_refs(self, ctx):
        ps = _ps()
        self._run(ctx, _pa().show_references, ctx.dataset, ps.REF_TAG)

    def show_negs(self, ctx):
        ps = _ps()
        self._run(ctx, _pa().show_references, ctx.dataset, ps.NEG_TAG)

    def tag_refs(self, ctx):
        self._on_selection(ctx, _pa().tag_selected, _ps().REF_TAG)

    def tag_negs(self, ctx):
        self._on_selection(ctx, _pa().tag_selected, _ps().NEG_TAG)

    def untag(self, ctx):
        self._on_selection(ctx, _pa().untag_selected)

    def sample_refs(self, ctx):
        self._run(ctx, _pa().sample_references_prompt, ctx.dataset, PLUGIN)

    def demo_refs(self, ctx):
        self._run(ctx, _pa().demo_references, ctx.dataset)

    # ---- banks ------------------------------------------------------------------------

    def build(self, ctx):
        self._run(ctx, _pa().build_bank, ctx.dataset, ctx.panel.state.get("bank"))

    def choose_bank(self, ctx):
        ctx.panel.state.bank = ctx.params.get("value")

    # ---- preview, accept / reject -----------------------------------------------------

    def preview_sample(self, ctx):
        self._run(
            ctx,
            _pa().run_preview,
            ctx.view,
            ctx.panel.state.get("bank"),
            sample_ids=[ctx.current_sample] if ctx.current_sample else None,
        )

    def preview_view(self, ctx):
        n = ctx.panel.state.get("preview_n") or 8
        self._run(ctx, _pa().run_preview, ctx.view, ctx.panel.state.get("bank"), n=int(n))

    def set_preview_n(self, ctx):
        value = ctx.params.get("value")
        ctx.panel.state.preview_n_entered = value  # the layout says why a bad one is refused
        if value is not None and bound_error(value, **PREVIEW_N) is None:
            ctx.panel.state.preview_n = int(value)

    def accept(self, ctx):
        self._on_selection(ctx, _pa().accept_selected)

    def reject(self, ctx):
        self._on_selection(ctx, _pa().reject_selected)

    # ---- runs -------------------------------------------------------------------------

    def _row(self, ctx):
        rows = ctx.panel.state.get("runs") or []
        index = ctx.params.get("row")
        if index is None or not 0 <= int(index) < len(rows):
            return None
        return rows[int(index)]

    def segment_view(self, ctx):
        self._run(
            ctx,
            _pa().segment_prompt,
            ctx.dataset,
            PLUGIN,
            ctx.panel.state.get("bank"),
            on_success=self.on_refresh,
        )

    def run_show(self, ctx):
        self._run(ctx, _pa().show_predictions, ctx.dataset, self._row(ctx))

    def run_resume(self, ctx):
        self._run(ctx, _pa().resume_prompt, ctx.dataset, PLUGIN, self._row(ctx))

    def run_mark_failed(self, ctx):
        self._run(ctx, _pa().mark_run_failed, ctx.dataset, self._row(ctx))

    def run_cancel(self, ctx):
        self._run(ctx, _pa().cancel_run, ctx.dataset, self._row(ctx))

    def run_evaluate(self, ctx):
        self._run(ctx, _pa().evaluate_run, ctx.dataset, self._row(ctx))

    def run_open_eval(self, ctx):
        self._run(ctx, _pa().open_evaluation, ctx.dataset, self._row(ctx))

    # ---- layout -----------------------------------------------------------------------

    def render(self, ctx):
        return render_panel(self, ctx)
