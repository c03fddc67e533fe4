"""The panel's *Memory banks* section: choose a bank, build a new version (long work)."""

from __future__ import annotations

from .actions import ActionRunner
from .library import pa

#: Where a build parameter's error is shown (``<control>_error`` below the control).
_BUILD_CONTROLS = {"bank_key": "build_key", "preset": "build_preset"}


def preset_of(banks: list[dict], key: str | None) -> str:
    """The preset of the newest version of bank ``key`` (``"default"`` for a new key)."""
    for row in banks:  # newest version first
        if row.get("key") == key:
            return row.get("preset") or "default"
    return "default"


class BankActions(ActionRunner):
    def _build_inputs(self, ctx) -> tuple[str, str, list[tuple[str, str]]]:
        """The key and preset in the Build fields and their problems, each shown next to
        its field (``errors``)."""
        state = ctx.panel.state
        key = state.get("build_key")
        if key is None:
            key = state.get("bank") or pa().default_bank_key(ctx.dataset)
        preset = state.get("build_preset")
        if preset is None:
            preset = "default"
        problems = pa().build_problems(ctx.dataset, key, preset)
        errors = {k: v for k, v in (state.get("errors") or {}).items() if not k.startswith("build")}
        for name, message in problems:
            errors.setdefault(_BUILD_CONTROLS.get(name, "build"), message)
        state.errors = errors
        return key, preset, problems

    def build(self, ctx):
        if pa().reference_field(ctx.dataset) is None:  # the action says what to do first
            self._run(ctx, pa().build_bank, ctx.dataset, None, at="banks")
            return
        key, preset, problems = self._build_inputs(ctx)
        if problems:
            message = "; ".join(m for _, m in problems)
            self._refuse(ctx, ctx.panel.state.get("errors"), message, at="banks")
            return
        versions = [b["version"] for b in ctx.panel.state.get("banks") or [] if b["key"] == key]
        what = f"{key!r} v{max(versions) + 1}" if versions else f"{key!r}"
        self._start(
            ctx,
            "build",
            f"Building bank {what} (preset {preset!r})",
            {"bank_key": key, "preset": preset},
            at="banks",
        )

    def set_build_key(self, ctx):
        ctx.panel.state.build_key = ctx.params.get("value")
        self._build_inputs(ctx)

    def set_build_preset(self, ctx):
        ctx.panel.state.build_preset = ctx.params.get("value")
        self._build_inputs(ctx)

    def choose_bank(self, ctx):
        state = ctx.panel.state
        key = ctx.params.get("value")
        state.bank = key
        if key:  # Build then rebuilds the chosen bank, with its preset
            state.build_key = key
            state.build_preset = preset_of(state.get("banks") or [], key)
            self._build_inputs(ctx)
