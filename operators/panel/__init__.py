"""The "No Time to Train" panel: references, memory banks, preview, accept/reject, runs.

Thin glue over :mod:`fiftyone_ntt.fiftyone.app.panel_state`: :meth:`NTTPanel.refresh` puts the
rows computed there into the panel state (tables read them), every button calls one action
there and :func:`apply_effect` turns the returned ``Effect`` into App operations. The layout
is in :mod:`.layout`.

Staying true: a timer of the layout calls :meth:`NTTPanel.poll`, which refreshes the panel
(silently) when what it shows changed on the dataset (an operator run from the App's
operator browser, a worker, the SDK: :func:`~fiftyone_ntt.fiftyone.app.panel_state.change_stamp`)
and on every tick while runs are queued or running; operators the panel opens refresh it on
success. Long work (*Build*, *Preview*) first shows a busy notice with its buttons disabled,
then runs from a one-shot timer (:meth:`NTTPanel.work`) so that the App draws that notice
first; the build's progress reaches the notice through :data:`_PROGRESS`.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid

import fiftyone.operators as foo

from .._numbers import bound_error
from .layout import PREVIEW_N, render_panel

PLUGIN = "@fiftyone-ntt/no-time-to-train"
PANEL_NAME = "ntt_panel"

#: Progress text of the work running for a panel, by panel id: the work writes it, the
#: panel's timer (``poll``, another request to the same App server) shows it.
_PROGRESS: dict[str, str] = {}
#: Work tokens started (a timer that fires twice starts its work once), and when.
_STARTED: dict[str, float] = {}
_FINISHED: set[str] = set()
#: The latest message of each panel (by panel id): see :func:`_latest_message`.
_MESSAGES: dict[str, dict] = {}
_LOCK = threading.Lock()
#: Where a build parameter's error is shown (``<control>_error`` below the control).
_BUILD_CONTROLS = {"bank_key": "build_key", "preset": "build_preset"}


def _ps():
    from fiftyone_ntt.fiftyone.app import panel_state

    return panel_state


def _pa():
    from fiftyone_ntt.fiftyone.app import panel_actions

    return panel_actions


def _ra():
    from fiftyone_ntt.fiftyone.app import run_actions

    return run_actions


def apply_effect(ctx, effect, at: str = "top") -> None:
    """Carry out an :class:`~fiftyone_ntt.fiftyone.app.panel_state.Effect` in the App; its
    message is shown in section ``at`` of the panel (where the button that caused it is)."""
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
        _set_message(ctx, effect.message, effect.variant, at)


def _set_message(ctx, message: str | None, variant: str | None, at: str) -> None:
    """The panel's message (None: none), in the panel state and, against older copies of
    that state, in :data:`_MESSAGES`."""
    entry = {"message": message, "variant": variant, "at": at, "seq": time.time_ns()}
    _MESSAGES[ctx.panel_id] = entry
    _put_message(ctx.panel.state, entry)


def _put_message(state, entry: dict) -> None:
    state.message = entry["message"]
    state.message_variant = entry["variant"]
    state.message_at = entry["at"]
    state.message_seq = entry["seq"]


def _latest_message(ctx) -> None:
    """The App sends events (selection, view) with a copy of the panel state taken before
    the last action's changes arrived; the layout drawn from it would drop that action's
    message. Put the latest message back into such a copy before drawing."""
    entry = _MESSAGES.get(ctx.panel_id)
    if entry and entry["seq"] > (ctx.panel.state.get("message_seq") or 0):
        _put_message(ctx.panel.state, entry)


def preview_n_error(value) -> str | None:
    """Why the preview's N cannot be used: empty, or out of :data:`.layout.PREVIEW_N`'s
    bounds (:func:`operators._numbers.bound_error`'s words); None when it can."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return (
            f"{PREVIEW_N['label']} is empty: enter a whole number from {PREVIEW_N['min']} "
            f"to {PREVIEW_N['max']}"
        )
    return bound_error(value, **PREVIEW_N)


def _view_key(ctx) -> str:
    """A digest of the App's view (its stages) and dataset."""
    view = ctx.view
    try:
        stages = json.dumps(view._serialize(), sort_keys=True, default=str)
    except Exception:  # a view that cannot be serialized: compare its text
        stages = repr(view)
    text = f"{getattr(ctx, 'dataset_name', '')}|{stages}"
    return hashlib.sha1(text.encode()).hexdigest()


def _preset_of(banks: list[dict], key: str | None) -> str:
    """The preset of the newest version of bank ``key`` (``"default"`` for a new key)."""
    for row in banks:  # newest version first
        if row.get("key") == key:
            return row.get("preset") or "default"
    return "default"


def _worker_notice(dataset) -> str | None:
    """A run queued a while ago that no worker has picked up: how to start one."""
    from fiftyone_ntt.fiftyone.app.scheduling import unclaimed_notice

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
        if state.get("build_key") is None:
            state.build_key = state.get("bank") or _pa().default_bank_key(
                dataset, _pa().reference_field(dataset)
            )
        if state.get("build_preset") is None:
            state.build_preset = _preset_of(banks, state.get("build_key"))
        state.stamp = ps.change_stamp(dataset)
        state.view_key = _view_key(ctx)
        state.modal = bool(ctx.current_sample)
        self._selection(ctx)
        if message:
            apply_effect(ctx, ps.Effect("Refreshed", variant="info"), at="runs")

    def poll(self, ctx) -> bool:
        """The layout's timer: while work runs, show its progress; else refresh (no toast)
        when the dataset changed or runs are active. Returns whether anything changed (the
        panel is drawn again only then)."""
        ps = _ps()
        state = ctx.panel.state
        busy = state.get("busy")
        if busy:
            token = busy.get("token")
            lost = token not in _STARTED and time.time() - (busy.get("since") or 0) > 30
            if token in _FINISHED or lost:
                # a state still busy after the work (a stale copy), or work that never
                # started (the App restarted): show the panel as it is
                state.busy = None
                state.progress = None
                self.refresh(ctx)
                return True
            text = _PROGRESS.get(ctx.panel_id)
            if text and text != state.get("progress"):
                state.progress = text
                return True
            return False
        changed = ps.change_stamp(ctx.dataset) != state.get("stamp")
        if changed or ps.has_active_runs(state.get("runs")):
            self.refresh(ctx)
            return True
        return False

    @staticmethod
    def is_working(busy: dict | None) -> bool:
        """Whether the work announced in ``busy`` (the panel state's) is still to do or
        under way (a copy of the state from before its end is not)."""
        return bool(busy) and busy.get("token") not in _FINISHED

    def refresh_quiet(self, ctx):
        """After an operator the panel opened: refresh, without a toast."""
        self.refresh(ctx)

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
        if _view_key(ctx) == state.get("view_key") and _ps().change_stamp(ctx.dataset) == state.get(
            "stamp"
        ):
            return False
        self.refresh(ctx)
        return True

    # ---- long work: a busy state first, then the work from a one-shot timer ------------

    def _start(self, ctx, action: str, text: str, params: dict, at: str) -> None:
        """Show that ``action`` is under way (the old message goes, its buttons are
        disabled); the layout's one-shot timer then calls :meth:`work`."""
        state = ctx.panel.state
        state.busy = {
            "token": uuid.uuid4().hex,
            "action": action,
            "text": text,
            "params": params,
            "since": time.time(),
        }
        state.progress = None
        _set_message(ctx, None, None, at)

    def work(self, ctx):
        """Do the work :meth:`_start` announced (once per token), then clear the busy state
        and show the result."""
        pa = _pa()
        state = ctx.panel.state
        busy = state.get("busy") or {}
        token = ctx.params.get("token")
        if not token or busy.get("token") != token:
            return
        with _LOCK:
            if token in _STARTED:
                return
            now = time.time()
            for old in [t for t, when in _STARTED.items() if now - when > 86400]:
                _STARTED.pop(old, None)
                _FINISHED.discard(old)
            _STARTED[token] = now
        panel_id = ctx.panel_id
        params = busy.get("params") or {}

        def progress(done, total):
            _PROGRESS[panel_id] = f"references embedded {done}/{total}"

        at = "banks" if busy.get("action") == "build" else "preview"
        try:
            if busy.get("action") == "build":
                effect = self._call(
                    pa.build_bank,
                    ctx.dataset,
                    params.get("bank_key"),
                    preset=params.get("preset") or "default",
                    progress=progress,
                )
                if isinstance(effect.result, dict) and effect.result.get("key"):
                    state.bank = effect.result["key"]
            else:
                effect = self._call(
                    pa.run_preview,
                    ctx.view,
                    params.get("bank"),
                    n=int(params.get("n") or 8),
                    sample_ids=params.get("sample_ids"),
                )
        finally:
            _PROGRESS.pop(panel_id, None)
            _FINISHED.add(token)
            state.busy = None
            state.progress = None
        self.refresh(ctx)
        apply_effect(ctx, effect, at=at)

    def _selection(self, ctx) -> bool:
        """Count the selection; returns whether the count changed."""
        counts = _pa().selection_counts(ctx.view, ctx.selected_labels, ctx.selected)
        changed = counts != ctx.panel.state.get("selection")
        ctx.panel.state.selection = counts
        return changed

    def _clear_selection(self, ctx) -> None:
        """Unselect the labels and samples (patches) in the App."""
        ctx.ops.clear_selected_labels()
        ctx.ops.clear_selected_samples()
        ctx.panel.state.selection = {"labels": 0, "predictions": 0}

    @staticmethod
    def _call(action, *args, **kwargs):
        """``action(...)``; a bad input becomes an error Effect, never a crash."""
        try:
            return action(*args, **kwargs)
        except (ValueError, KeyError, RuntimeError, OSError) as error:
            return _ps().Effect(str(error).strip("'\""), variant="error")

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
        apply_effect(ctx, _ps().Effect(message, variant="error"), at=at)

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
            at="refs" if action in (_pa().tag_selected, _pa().untag_selected) else "judge",
        )

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

    def clear_selection(self, ctx):
        self._clear_selection(ctx)

    def on_refresh(self, ctx):
        self.refresh(ctx, message=True)

    # ---- references -------------------------------------------------------------------

    def show_refs(self, ctx):
        ps = _ps()
        self._run(ctx, _pa().show_references, ctx.dataset, ps.REF_TAG, at="refs")

    def show_negs(self, ctx):
        ps = _ps()
        self._run(ctx, _pa().show_references, ctx.dataset, ps.NEG_TAG, at="refs")

    def tag_refs(self, ctx):
        self._on_selection(ctx, _pa().tag_selected, _ps().REF_TAG)

    def tag_negs(self, ctx):
        self._on_selection(ctx, _pa().tag_selected, _ps().NEG_TAG)

    def untag(self, ctx):
        self._on_selection(ctx, _pa().untag_selected)

    def sample_refs(self, ctx):
        self._run(ctx, _pa().sample_references_prompt, ctx.dataset, PLUGIN, at="refs")

    def demo_refs(self, ctx):
        self._run(ctx, _pa().demo_references, ctx.dataset, at="refs")

    # ---- banks ------------------------------------------------------------------------

    def _build_inputs(self, ctx) -> tuple[str, str, list[tuple[str, str]]]:
        """The key and preset in the Build fields and their problems, each shown next to
        its field (``errors``)."""
        pa = _pa()
        state = ctx.panel.state
        key = state.get("build_key")
        if key is None:
            key = state.get("bank") or pa.default_bank_key(ctx.dataset)
        preset = state.get("build_preset")
        if preset is None:
            preset = "default"
        problems = pa.build_problems(ctx.dataset, key, preset)
        errors = {k: v for k, v in (state.get("errors") or {}).items() if not k.startswith("build")}
        for name, message in problems:
            errors.setdefault(_BUILD_CONTROLS.get(name, "build"), message)
        state.errors = errors
        return key, preset, problems

    def build(self, ctx):
        pa = _pa()
        if pa.reference_field(ctx.dataset) is None:  # the action says what to do first
            self._run(ctx, pa.build_bank, ctx.dataset, None, at="banks")
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
            state.build_preset = _preset_of(state.get("banks") or [], key)
            self._build_inputs(ctx)

    # ---- preview, accept / reject -----------------------------------------------------

    def preview_sample(self, ctx):
        bank = ctx.panel.state.get("bank")
        if not bank or not ctx.current_sample:  # the action says what is missing
            self._run(ctx, _pa().run_preview, ctx.view, bank, sample_ids=None, at="preview")
            return
        self._start(
            ctx,
            "preview",
            f"Previewing {bank!r} on this sample",
            {"bank": bank, "sample_ids": [ctx.current_sample]},
            at="preview",
        )

    def _preview_n(self, ctx) -> int | None:
        """N as the field shows it, or None with its error next to the field."""
        state = ctx.panel.state
        errors = dict(state.get("errors") or {})
        error = preview_n_error(state.get("preview_n"))
        if error:
            errors["preview_n"] = error
        else:
            errors.pop("preview_n", None)
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
            self._run(ctx, _pa().run_preview, ctx.view, bank, n=n, at="preview")
            return
        self._start(
            ctx,
            "preview",
            f"Previewing {bank!r} on {n} sample(s) of the view",
            {"bank": bank, "n": n},
            at="preview",
        )

    def set_preview_n(self, ctx):
        # the field keeps what was typed (the value shown is the value used); a bad value
        # gets its error next to the field
        ctx.panel.state.preview_n = ctx.params.get("value")
        self._preview_n(ctx)

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
            _ra().segment_prompt,
            ctx.dataset,
            PLUGIN,
            ctx.panel.state.get("bank"),
            on_success=self.refresh_quiet,
            at="runs",
        )

    def run_show(self, ctx):
        self._run(ctx, _ra().show_predictions, ctx.dataset, self._row(ctx), at="runs")

    def run_resume(self, ctx):
        self._run(ctx, _ra().resume_prompt, ctx.dataset, PLUGIN, self._row(ctx), at="runs")

    def run_mark_failed(self, ctx):
        self._run(ctx, _ra().mark_run_failed, ctx.dataset, self._row(ctx), at="runs")

    def run_cancel(self, ctx):
        self._run(ctx, _ra().cancel_run, ctx.dataset, self._row(ctx), at="runs")

    def run_dismiss(self, ctx):
        self._run(ctx, _ra().dismiss_run, ctx.dataset, self._row(ctx), at="runs")

    def run_evaluate(self, ctx):
        self._run(ctx, _ra().evaluate_run, ctx.dataset, self._row(ctx), at="runs")

    def run_open_eval(self, ctx):
        self._run(ctx, _ra().open_evaluation, ctx.dataset, self._row(ctx), at="runs")

    # ---- layout -----------------------------------------------------------------------

    def render(self, ctx):
        _latest_message(ctx)
        return render_panel(self, ctx)
