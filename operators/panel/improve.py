"""The panel's *Improve the bank* section (issue 23): from a segmentation run and its
evaluation, per-class thresholds saved as a bank version, the references that attract false
positives, and the review queue.

Every button calls one function of :mod:`fiftyone_ntt.fiftyone.app.curation_actions`; what
it returns is kept in the panel state (``improve_*`` keys, which ``refresh`` leaves alone)
and drawn by :func:`.improve_layout.render_improve`. The run is the one chosen in the section's dropdown
(``improve_field``): the newest segmentation of the Runs table when the section is first
drawn (the App then keeps the dropdown's value in the state: a newer run is chosen there).
"""

from __future__ import annotations

from .actions import ActionRunner
from .effects import apply_effect, remember
from .library import ps

#: Where this section's messages show (``_message(..., "improve")``).
AT = "improve"
#: False positives kept per audited reference for *Show* (the panel state stays small).
SHOW_FALSE_POSITIVES = 50
#: Rows of a table live in a state key of their own, ``<key>_rows`` (a table property
#: reads the state key of its name).
ROWS = "_rows"
#: The state keys this section's actions write (what it draws).
SECTION_KEYS = (
    "improve_thresholds",
    "improve_thresholds" + ROWS,
    "improve_compare",
    "improve_compare" + ROWS,
    "improve_audit",
    "improve_audit" + ROWS,
    "improve_review",
)


def ca():
    """:mod:`fiftyone_ntt.fiftyone.app.curation_actions`, imported when first used (it
    brings in the engine; see :mod:`.library`)."""
    from fiftyone_ntt.fiftyone.app import curation_actions

    return curation_actions


def run_choices(state) -> list[dict]:
    """The segmentation rows of the Runs table whose field exists, newest first."""
    return ps().segmentation_choices(state.get("runs"))


def chosen_run(state) -> dict | None:
    """The run the section works on: the chosen one (``improve_field``) while it is
    listed, else the newest."""
    return ps().chosen_segmentation(state.get("runs"), state.get("improve_field"))


def _number(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def short_id(label_id: str) -> str:
    return f"…{label_id[-6:]}"


class ImproveActions(ActionRunner):
    def _act(self, ctx, action, *args, keep=None, **kwargs) -> None:
        """Run one curation action; on success ``keep(state, effect)`` stores what the
        section draws; its message shows in this section."""
        effect = self._call(action, *args, **kwargs)
        if keep is not None and effect.variant != "error":
            keep(ctx.panel.state, effect)
            state = ctx.panel.state
            remember(ctx, {key: state.get(key) for key in SECTION_KEYS})
        self.refresh(ctx)
        apply_effect(ctx, effect, at=AT)

    def _run_or_refuse(self, ctx) -> dict | None:
        row = chosen_run(ctx.panel.state)
        if row is None:
            self._refuse(
                ctx,
                ctx.panel.state.get("errors") or {},
                "no segmentation to improve from yet: 'Segment this view…', then Evaluate it",
                at=AT,
            )
        return row

    def improve_choose(self, ctx):
        # what the section shows stays: each title names its run and evaluation (and the
        # saved thresholds are what a newer run is compared with)
        ctx.panel.state.improve_field = ctx.params.get("value")

    # ---- thresholds -----------------------------------------------------------------

    def improve_thresholds(self, ctx):
        row = self._run_or_refuse(ctx)
        if row is None:
            return

        def keep(state, effect):
            table = effect.result
            _store(
                state,
                "improve_thresholds",
                {
                    "eval_key": table["eval_key"],
                    "bank_key": table["bank_key"],
                    "bank_version": table["bank_version"],
                    "pred_field": table["pred_field"],
                    "count": len(table["thresholds"]),
                    "rows": [
                        {
                            "class": r["class_name"],
                            "threshold": _number(r["threshold"]),
                            "precision": _number(r["precision"]),
                            "recall": _number(r["recall"]),
                            "f1": _number(r["f1"]),
                            "kept": f"{r['kept']} / {r['total']}",
                            "reason": r.get("reason") or "",
                        }
                        for r in table["rows"]
                    ],
                    "saved": None,
                },
            )

        self._act(
            ctx, ca().thresholds_for_run, ctx.dataset, row["field"], row["evaluation"], keep=keep
        )

    def improve_save_thresholds(self, ctx):
        table = ctx.panel.state.get("improve_thresholds") or {}
        if not table:
            self._refuse(ctx, {}, "click Thresholds first", at=AT)
            return

        def keep(state, effect):
            state.improve_thresholds = dict(table, saved=effect.result["version"]["version"])

        self._act(
            ctx,
            ca().save_class_thresholds,
            ctx.dataset,
            table["eval_key"],
            table["bank_key"],
            keep=keep,
        )

    def improve_compare(self, ctx):
        table = ctx.panel.state.get("improve_thresholds") or {}
        row = chosen_run(ctx.panel.state)
        if not table or row is None or not row.get("evaluation"):
            self._refuse(ctx, {}, "save thresholds, segment again and evaluate first", at=AT)
            return

        def keep(state, effect):
            _store(
                state,
                "improve_compare",
                {
                    "before": table["eval_key"],
                    "after": row["evaluation"],
                    "rows": [
                        {
                            "class": r["class"],
                            **{
                                m: f"{_number(r[f'{m}_before'], 2)} → {_number(r[f'{m}_after'], 2)}"
                                for m in ("precision", "recall", "f1")
                            },
                        }
                        for r in effect.result
                    ],
                },
            )

        self._act(
            ctx,
            ca().compare_for_runs,
            ctx.dataset,
            table["eval_key"],
            row["evaluation"],
            keep=keep,
        )

    # ---- reference audit --------------------------------------------------------------

    def improve_audit(self, ctx):
        row = self._run_or_refuse(ctx)
        if row is None:
            return

        def keep(state, effect):
            audit = effect.result
            rows = audit["rows"]
            _store(
                state,
                "improve_audit",
                {
                    **{k: audit[k] for k in ("eval_key", "bank_key", "bank_version", "pred_field")},
                    "quiet": sum(1 for r in rows if not r["nearest_fp"]),
                    "rows": [
                        {
                            "reference": short_id(r["reference_id"]),
                            "reference_id": r["reference_id"],
                            "class": r["class_name"],
                            "class_name": r["class_name"],
                            "field": r["field"],
                            "fp": r["nearest_fp"],
                            "tp": r["nearest_tp"],
                            "precision": _number(r["precision"], 2),
                            "raw_precision": r["precision"],
                            "without": _number(r["precision_without"], 2),
                            "harm": _number(r["harm"], 2),
                            "false_positives": r["false_positives"][:SHOW_FALSE_POSITIVES],
                        }
                        for r in rows
                        if r["nearest_fp"]
                    ],
                },
            )

        self._act(ctx, ca().audit_for_run, ctx.dataset, row["field"], row["evaluation"], keep=keep)

    def _audit_row(self, ctx) -> tuple[dict, dict | None]:
        audit = ctx.panel.state.get("improve_audit") or {}
        rows = ctx.panel.state.get("improve_audit" + ROWS) or []
        index = ctx.params.get("row")
        if index is None or not 0 <= int(index) < len(rows):
            return audit, None
        row = dict(rows[int(index)])
        row["precision"] = row["raw_precision"]  # the library's row keys
        return audit, row

    def _drop_audit_row(self, state, reference_id: str) -> None:
        rows = state.get("improve_audit" + ROWS) or []
        state.set("improve_audit" + ROWS, [r for r in rows if r["reference_id"] != reference_id])

    def improve_show(self, ctx):
        audit, row = self._audit_row(ctx)
        if row is not None:
            self._act(ctx, ca().show_reference_audit_row, ctx.dataset, row, audit["pred_field"])

    def improve_untag(self, ctx):
        _, row = self._audit_row(ctx)
        if row is not None:
            self._act(
                ctx,
                ca().untag_audited_reference,
                ctx.dataset,
                row,
                keep=lambda state, _: self._drop_audit_row(state, row["reference_id"]),
            )

    def improve_replace(self, ctx):
        audit, row = self._audit_row(ctx)
        if row is not None:
            self._act(
                ctx,
                ca().replace_audited_reference,
                ctx.dataset,
                audit,
                row,
                keep=lambda state, effect: (
                    self._drop_audit_row(state, row["reference_id"])
                    if effect.variant == "success"
                    else None
                ),
            )

    # ---- review queue -----------------------------------------------------------------

    def improve_review(self, ctx):
        row = self._run_or_refuse(ctx)
        if row is None:
            return

        def keep(state, effect):
            state.improve_review = {
                "pred_field": row["field"],
                "next": effect.extra.get("next"),
                "left": effect.extra.get("left", 0),
            }

        self._act(ctx, ca().review_for_run, ctx.dataset, row["field"], keep=keep)

    def _decide(self, ctx, decision: str) -> None:
        review = ctx.panel.state.get("improve_review") or {}
        if not review.get("next"):
            self._refuse(ctx, {}, "the queue is empty: click Review queue", at=AT)
            return

        def keep(state, effect):
            state.improve_review = dict(
                review, next=effect.extra.get("next"), left=effect.extra.get("left", 0)
            )

        self._act(
            ctx,
            ca().decide_and_next,
            ctx.dataset,
            review["pred_field"],
            review["next"],
            decision,
            keep=keep,
        )

    def improve_accept(self, ctx):
        self._decide(ctx, "accept")

    def improve_reject(self, ctx):
        self._decide(ctx, "reject")


def _store(state, key: str, info: dict) -> None:
    """``info`` in state ``key``, its ``rows`` (a table's) in ``key + ROWS``."""
    info = dict(info)
    state.set(key + ROWS, info.pop("rows"))
    state.set(key, info)
