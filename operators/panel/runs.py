"""The panel's *Runs* section: segment the view, and each run row's buttons."""

from __future__ import annotations

from .actions import ActionRunner
from .library import PLUGIN, ra


class RunActions(ActionRunner):
    def _row(self, ctx):
        rows = ctx.panel.state.get("runs") or []
        index = ctx.params.get("row")
        if index is None or not 0 <= int(index) < len(rows):
            return None
        return rows[int(index)]

    def segment_view(self, ctx):
        self._run(
            ctx,
            ra().segment_prompt,
            ctx.dataset,
            PLUGIN,
            ctx.panel.state.get("bank"),
            on_success=self.refresh_quiet,
            at="runs",
        )

    def run_show(self, ctx):
        self._run(ctx, ra().show_predictions, ctx.dataset, self._row(ctx), at="runs")

    def run_resume(self, ctx):
        self._run(ctx, ra().resume_prompt, ctx.dataset, PLUGIN, self._row(ctx), at="runs")

    def run_mark_failed(self, ctx):
        self._run(ctx, ra().mark_run_failed, ctx.dataset, self._row(ctx), at="runs")

    def run_cancel(self, ctx):
        self._run(ctx, ra().cancel_run, ctx.dataset, self._row(ctx), at="runs")

    def run_dismiss(self, ctx):
        self._run(ctx, ra().dismiss_run, ctx.dataset, self._row(ctx), at="runs")

    def run_evaluate(self, ctx):
        self._run(ctx, ra().evaluate_run, ctx.dataset, self._row(ctx), at="runs")

    def run_open_eval(self, ctx):
        self._run(ctx, ra().open_evaluation, ctx.dataset, self._row(ctx), at="runs")
