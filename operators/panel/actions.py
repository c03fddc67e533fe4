"""How every button of the panel runs: one library action, its ``Effect`` shown in the App.

:class:`ActionRunner` is the base of the section mixins (:mod:`.references`, :mod:`.banks`,
:mod:`.preview`, :mod:`.runs`): a bad input becomes an error message in the section of the
button, never a crash of the panel, and the panel's tables are refreshed after each action.
"""

from __future__ import annotations

from .effects import apply_effect
from .library import pa, ps

#: The actions that also take a lasso on the map in the Embeddings panel (:func:`lasso`).
LASSO_ACTIONS = ("accept_selected", "reject_selected", "untag_selected")


def lasso(ctx) -> dict:
    """A lasso in FiftyOne's Embeddings panel as the App sends it with every callback: its
    extended selection (``ctx.extended_selection``) and its extended stages (the request's
    ``extended``, where FiftyOne 1.22's panel puts a lasso); the library reads the map
    labels in them (:func:`fiftyone_ntt.fiftyone.app.map_actions.lasso_labels`)."""
    return {
        "extended_selection": ctx.extended_selection,
        "extended_stages": ctx.request_params.get("extended"),
    }


def selection_counts(ctx) -> dict:
    """The count of the selection line: selected labels, ticked patches, else a lasso."""
    return pa().selection_counts(ctx.view, ctx.selected_labels, ctx.selected, **lasso(ctx))


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
        counts = selection_counts(ctx)
        changed = counts != ctx.panel.state.get("selection")
        ctx.panel.state.selection = counts
        return changed

    def _clear_selection(self, ctx) -> None:
        """Unselect the labels and samples (patches) in the App, and a lasso on the map
        (``reset`` drops the Embeddings panel's lasso stage and the extended selection)."""
        ctx.ops.clear_selected_labels()
        ctx.ops.clear_selected_samples()
        # deferred like :mod:`.library`: map_actions brings in FiftyOne's brain
        from fiftyone_ntt.fiftyone.app.map_actions import lasso_ids

        if lasso_ids(**lasso(ctx)):
            ctx.ops.set_extended_selection(reset=True)
        ctx.panel.state.selection = {"labels": 0, "predictions": 0}

    def _on_selection(self, ctx, action, *args, at: str = "judge") -> None:
        """An action on the selected labels (or patches) of the App's view; accept, reject
        and untag also on a lasso on the map (:data:`LASSO_ACTIONS`)."""
        extra = lasso(ctx) if getattr(action, "__name__", "") in LASSO_ACTIONS else {}
        self._run(
            ctx,
            action,
            ctx.view,
            ctx.selected_labels,
            *args,
            selected=ctx.selected,
            clear_selection=True,
            at=at,
            **extra,
        )

    def clear_selection(self, ctx):
        self._clear_selection(ctx)
