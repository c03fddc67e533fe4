"""The panel's *References* section: show, tag, untag and sample references and negatives."""

from __future__ import annotations

from .actions import ActionRunner
from .library import PLUGIN, pa, ps


class ReferenceActions(ActionRunner):
    def show_refs(self, ctx):
        self._run(ctx, pa().show_references, ctx.dataset, ps().REF_TAG, at="refs")

    def show_negs(self, ctx):
        self._run(ctx, pa().show_references, ctx.dataset, ps().NEG_TAG, at="refs")

    def tag_refs(self, ctx):
        self._on_selection(ctx, pa().tag_selected, ps().REF_TAG, at="refs")

    def tag_negs(self, ctx):
        self._on_selection(ctx, pa().tag_selected, ps().NEG_TAG, at="refs")

    def untag(self, ctx):
        self._on_selection(ctx, pa().untag_selected, at="refs")

    def sample_refs(self, ctx):
        self._run(ctx, pa().sample_references_prompt, ctx.dataset, PLUGIN, at="refs")

    def demo_refs(self, ctx):
        self._run(ctx, pa().demo_references, ctx.dataset, at="refs")
