"""Long work in the panel (*Build*, *Preview*): a busy notice first, then the work.

:meth:`LongWork._start` puts a busy state (its buttons disabled, the old message gone) and the
layout's one-shot timer then calls :meth:`LongWork.work`, so that the App draws the notice
before the work blocks the request. The build's progress reaches the notice through
:data:`_PROGRESS`, read by the panel's poll timer (another request to the same App server).
"""

from __future__ import annotations

import threading
import time
import uuid

from .actions import ActionRunner
from .effects import apply_effect, set_message
from .library import pa

#: Progress text of the work running for a panel, by panel id: the work writes it, the
#: panel's timer (``poll``) shows it.
_PROGRESS: dict[str, str] = {}
#: Work tokens started (a timer that fires twice starts its work once), and when.
_STARTED: dict[str, float] = {}
_FINISHED: set[str] = set()
_LOCK = threading.Lock()
#: Seconds after which announced work that never started (the App restarted) is dropped.
_LOST_AFTER_S = 30


class LongWork(ActionRunner):
    def _changed(self, ctx) -> bool:  # pragma: no cover - the panel's
        raise NotImplementedError

    @staticmethod
    def is_working(busy: dict | None) -> bool:
        """Whether the work announced in ``busy`` (the panel state's) is still to do or
        under way (a copy of the state from before its end is not)."""
        return bool(busy) and busy.get("token") not in _FINISHED

    def _busy_tick(self, ctx) -> bool:
        """The poll timer while work is announced: show its progress, or drop a busy state
        whose work ended or never started. Returns whether the panel must be drawn again."""
        state = ctx.panel.state
        busy = state.get("busy")
        token = busy.get("token")
        if token in _FINISHED:
            # a copy of the state from before the work ended: the work's own response
            # cleared the busy state in the App and drew the result, so this tick draws
            # only what changed since (the copy is cleared here, not in the App: every
            # response with App operations makes the App repaint all labels)
            ctx.panel_state.update(busy=None, progress=None)
            return self._changed(ctx)
        lost = token not in _STARTED and time.time() - (busy.get("since") or 0) > _LOST_AFTER_S
        if lost:
            # work that never started (the App restarted): show the panel as it is
            state.busy = None
            state.progress = None
            self.refresh(ctx)
            return True
        text = _PROGRESS.get(ctx.panel_id)
        if text and text != state.get("progress"):
            state.progress = text
            return True
        return False

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
        set_message(ctx, None, None, at)

    def work(self, ctx):
        """Do the work :meth:`_start` announced (once per token), then clear the busy state
        and show the result."""
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
                    pa().build_bank,
                    ctx.dataset,
                    params.get("bank_key"),
                    preset=params.get("preset") or "default",
                    progress=progress,
                )
                if isinstance(effect.result, dict) and effect.result.get("key"):
                    state.bank = effect.result["key"]
            else:
                effect = self._call(
                    pa().run_preview,
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
