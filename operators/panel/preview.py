"""The panel's *Preview* section: preview the chosen bank (long work), accept or reject."""

from __future__ import annotations

from .._numbers import bound_error
from .actions import ActionRunner
from .layout import PREVIEW_N
from .library import pa


def preview_n_error(value) -> str | None:
    """Why the preview's N cannot be used: empty, or out of :data:`.layout.PREVIEW_N`'s
    bounds (:func:`operators._numbers.bound_error`'s words); None when it can."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return (
            f"{PREVIEW_N['label']} is empty: enter a whole number from {PREVIEW_N['min']} "
            f"to {PREVIEW_N['max']}"
        )
    return bound_error(value, **PREVIEW_N)


class PreviewActions(ActionRunner):
    def preview_sample(self, ctx):
        bank = ctx.panel.state.get("bank")
        if not bank or not ctx.current_sample:  # the action says what is missing
            self._run(ctx, pa().run_preview, ctx.view, bank, sample_ids=None, at="preview")
            return
        self._start(
            ctx,
            "preview",
            f"Previewing {bank!r} on this sample",
            {"bank": bank, "sample_ids": [ctx.current_sample]},
            at="preview",
        )

    def _preview_n(self, ctx) -> int | None:
        """N as the field shows it, or None with its error next to the field (the state is
        written only when the error changed)."""
        state = ctx.panel.state
        errors = dict(state.get("errors") or {})
        error = preview_n_error(state.get("preview_n"))
        if error:
            errors["preview_n"] = error
        else:
            errors.pop("preview_n", None)
        if errors != (state.get("errors") or {}):
            state.errors = errors
        return None if error else int(state.get("preview_n"))

    def preview_view(self, ctx):
        state = ctx.panel.state
        n = self._preview_n(ctx)
        if n is None:
            errors = state.get("errors")
            self._refuse(ctx, errors, errors["preview_n"], at="preview")
            return
        bank = state.get("bank")
        if not bank:
            self._run(ctx, pa().run_preview, ctx.view, bank, n=n, at="preview")
            return
        self._start(
            ctx,
            "preview",
            f"Previewing {bank!r} on {n} sample(s) of the view",
            {"bank": bank, "n": n},
            at="preview",
        )

    def set_preview_n(self, ctx) -> bool:
        """The field keeps what was typed (the value shown is the value used); a bad value
        gets its error next to the field. Returns whether the panel must be drawn again:
        only when the error changed (typing sends nothing else, see the panel's
        docstring)."""
        state = ctx.panel.state
        before = (state.get("errors") or {}).get("preview_n")
        value = ctx.params.get("value")
        if state.get("preview_n") != value:  # the App holds it already, as a rule
            state.preview_n = value
        self._preview_n(ctx)
        return (state.get("errors") or {}).get("preview_n") != before

    def accept(self, ctx):
        self._on_selection(ctx, pa().accept_selected)

    def reject(self, ctx):
        self._on_selection(ctx, pa().reject_selected)
