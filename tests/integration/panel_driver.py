"""Drives the "No Time to Train" panel the way the App does, without a browser.

Each call goes through FiftyOne's operator machinery (``execute_operator`` on the panel's
URI with ``__method__``, ``panel_id`` and ``panel_state``), then the App operations the
callback triggered are applied to this driver's copy of the App state: panel-state patches,
``set_view`` (the driver's view), ``show_panel_output`` (the rendered layout),
``clear_selected_labels``/``clear_selected_samples``/``set_extended_selection`` (the driver's
selection), the rest recorded. Like the App, a one-shot timer (``TimerView`` with ``timeout``) that appears in the
rendered layout fires its method once (``auto_timers=False`` leaves that to the test:
:meth:`timers`); interval timers are left to the test (``call("poll")``).
"""

from __future__ import annotations

from typing import Any

PANEL_URI = "@fiftyone-ntt/no-time-to-train/ntt_panel"


class PanelDriver:
    def __init__(self, dataset, panel_id: str = "ntt-test-panel"):
        self.dataset = dataset
        #: two drivers with one id are one panel of the App (e.g. an event with an old copy)
        self.panel_id = panel_id
        self.state: dict[str, Any] = {}
        self.view = None
        self.selected_labels: list[dict[str, Any]] = []
        #: selected sample ids (in a patches view: patch ids), ``ctx.selected``
        self.selected: list[str] = []
        #: the App's extended selection, ``ctx.extended_selection`` (``{"selection": [ids],
        #: "scope": ...}``), and its extended stages, the request's ``extended``
        #: (``{stage class: kwargs}``): where FiftyOne 1.22's Embeddings panel puts a lasso
        self.extended_selection: dict[str, Any] | None = None
        self.extended: dict[str, Any] | None = None
        self.current_sample: str | None = None
        self.output: dict[str, Any] | None = None
        self.requests: list[dict[str, Any]] = []
        #: fire one-shot timers of the layout as the App does when it mounts them
        self.auto_timers = True
        self._fired: set[str] = set()

    def call(self, method: str, **params: Any) -> list[dict[str, Any]]:
        """Run panel callback ``method``; returns the App operations it triggered (besides
        the state patches and the re-render)."""
        import fiftyone.operators as foo
        import pydash

        result = foo.execute_operator(
            PANEL_URI,
            dataset=self.dataset,
            view=self.view,
            selected=self.selected,
            selected_labels=self.selected_labels,
            current_sample=self.current_sample,
            extended_selection=self.extended_selection,
            extended=self.extended,
            params={
                "__method__": method,
                "panel_id": self.panel_id,
                "panel_state": self.state,
                **params,
            },
        )
        result.raise_exceptions()
        requests = result.executor.to_json()["requests"]
        others = []
        for request in requests:
            name, args = request["operator_uri"], request.get("params") or {}
            if name == "patch_panel_state":
                for key, value in (args.get("state") or {}).items():
                    pydash.set_(self.state, key, value)
            elif name == "show_panel_output":
                self.output = args["output"]
            else:
                if name == "clear_selected_labels":
                    self.selected_labels = []
                elif name == "clear_selected_samples":
                    self.selected = []
                elif name == "set_extended_selection":
                    self._extend(args)
                if name == "set_view":
                    self.view = self._view(args.get("view") or [])
                others.append(request)
        self.requests = others
        if self.auto_timers:
            for name, method, timer_params in self.timers(one_shot=True):
                if name not in self._fired:
                    self._fired.add(name)
                    return others + self.call(method, **timer_params)
        return others

    def timers(self, one_shot: bool | None = None) -> list[tuple[str, str, dict[str, Any]]]:
        """``(name, method, params)`` of the ``TimerView`` entries of the rendered layout;
        ``one_shot``: only those with a ``timeout`` (True) or an ``interval`` (False)."""
        found = []
        for node in _walk(self.output or {}):
            view = node.get("view") if isinstance(node, dict) else None
            if not isinstance(view, dict) or view.get("name") != "TimerView":
                continue
            is_one_shot = bool(view.get("timeout")) and not view.get("interval")
            if one_shot is not None and is_one_shot != one_shot:
                continue
            uri = view.get("on_timeout") if is_one_shot else view.get("on_interval")
            params = dict(view.get("params") or {})
            key = f"{uri}:{sorted(params.items())}"
            found.append((key, str(uri).rsplit("#", 1)[-1], params))
        return found

    def _extend(self, args: dict[str, Any]) -> None:
        """``set_extended_selection`` as the App applies it: ``reset`` also drops the
        Embeddings panel's lasso stage, ``clear`` only the extended selection."""
        if args.get("reset"):
            self.extended_selection = self.extended = None
        elif args.get("clear"):
            self.extended_selection = None
        else:
            self.extended_selection = {
                "selection": args.get("selection"),
                "scope": args.get("scope"),
            }

    def _view(self, stages):
        import fiftyone.server.view as fosv

        return fosv.get_view(self.dataset.name, stages=stages, reload=True)

    def triggered(self) -> list[str]:
        return [r["operator_uri"] for r in self.requests]

    def params_of(self, operator: str) -> dict[str, Any]:
        for request in self.requests:
            if request["operator_uri"] == operator:
                return request.get("params") or {}
        raise AssertionError(f"{operator!r} not triggered; triggered: {self.triggered()}")

    def notice(self) -> str:
        return str(self.state.get("message") or "")

    def layout_names(self) -> list[str]:
        """Names of the rendered layout's top-level entries (sections, tables, buttons)."""
        props = ((self.output or {}).get("type") or {}).get("properties") or {}
        return list(props)

    def find(self, name: str) -> dict[str, Any] | None:
        """The rendered property ``name``, at any depth of the layout."""
        for node in _walk(self.output or {}):
            props = (node.get("type") or {}).get("properties") if isinstance(node, dict) else None
            if isinstance(props, dict) and name in props:
                return props[name]
        return None

    def button(self, stack: str, name: str) -> dict[str, Any]:
        props = self.output["type"]["properties"][stack]["type"]["properties"]
        return props[name]["view"]


def _walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)
