"""How every button of the panel runs: one library action, its ``Effect`` shown in the App.

:class:`ActionRunner` is the base of the section mixins (:mod:`.references`, :mod:`.banks`,
:mod:`.preview`, :mod:`.runs`): a bad input becomes an error message in the section of the
button, never a crash of the panel, and the panel's tables are refreshed after each action.
"""

from __future__ import annotations

from .effects import apply_effect
from .library import pa, ps


class ActionRunner:
    """Running actions; the panel class provides ``refresh(ctx)``."""

    def refresh(self, ctx, message: bool = False) -> None:  # pragma: no cover - the panel's
        raise NotImplementedError

    def refresh_quiet(self, ctx):
        """After an operator the panel opened: refresh, without a toast."""
        self.refresh(ctx)

    @staticmethod
    def _call(action, *args, **kwargs):
        """``action(...)``; a bad input becomes an error Effect, never a crash."""
        try:
            return action(*args, **kwargs)
        except (ValueError, KeyError, RuntimeError, OSError) as error:
            return ps().Effect(str(error).strip("'\""), variant="error")

    def _run(
        self, ctx, action, *args, clear_selection: bool = False, at: str = "top", **kwargs
    ) -> None:
        """Run an action; a bad input becomes an error message, never a crash of the panel.
        ``clear_selection``: the action used the selection; once it succeeded, unselect (a
        label selected for it must not be carried into the next action). ``at``: the
        section whose button it is (its message shows there). An operator form the action
        opens refreshes the panel when it succeeds."""
        effect = self._call(action, *args, **kwargs)
        if effect.prompt is not None and not effect.prompt.get("on_success"):
            effect.prompt["on_success"] = self.refresh_quiet
        self.refresh(ctx)
        if clear_selection and effect.variant == "success":
            self._clear_selection(ctx)
        apply_effect(ctx, effect, at=at)

    def _refuse(self, ctx, errors: dict, message: str, at: str) -> None:
        """Show ``errors`` next to their controls and ``message`` in section ``at``."""
        state = ctx.panel.state
        state.errors = errors
        self.refresh(ctx)
        apply_effect(ctx, ps().Effect(message, variant="error"), at=at)

    # ---- the App's selection ----------------------------------------------------------

    def _selection(self, ctx) -> bool:
        """Count the selection; returns whether the count changed."""
        counts = pa().selection_counts(ctx.view, ctx.selected_labels, ctx.selected)
        changed = counts != ctx.panel.state.get("selection")
        ctx.panel.state.selection = counts
        return changed

    def _clear_selection(self, ctx) -> None:
        """Unselect the labels and samples (patches) in the App."""
        ctx.ops.clear_selected_labels()
        ctx.ops.clear_selected_samples()
        ctx.panel.state.selection = {"labels": 0, "predictions": 0}

    def _on_selection(self, ctx, action, *args, at: str = "judge") -> None:
        """An action on the selected labels (or patches) of the App's view."""
        self._run(
            ctx,
            action,
            ctx.view,
            ctx.selected_labels,
            *args,
            selected=ctx.selected,
            clear_selection=True,
            at=at,
        )

    def clear_selection(self, ctx):
        self._clear_selection(ctx)
