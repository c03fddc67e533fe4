"""Drives the "No Time to Train" panel the way the App does, without a browser.

Each call goes through FiftyOne's operator machinery (``execute_operator`` on the panel's
URI with ``__method__``, ``panel_id`` and ``panel_state``), then the App operations the
callback triggered are applied to this driver's copy of the App state: panel-state patches,
``set_view`` (the driver's view), ``show_panel_output`` (the rendered layout),
``clear_selected_labels``/``clear_selected_samples`` (the driver's selection), the rest
recorded.
"""

from __future__ import annotations

from typing import Any

PANEL_URI = "@fiftyone-ntt/no-time-to-train/ntt_panel"


class PanelDriver:
    def __init__(self, dataset):
        self.dataset = dataset
        self.state: dict[str, Any] = {}
        self.view = None
        self.selected_labels: list[dict[str, Any]] = []
        #: selected sample ids (in a patches view: patch ids), ``ctx.selected``
        self.selected: list[str] = []
        self.current_sample: str | None = None
        self.output: dict[str, Any] | None = None
        self.requests: list[dict[str, Any]] = []

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
            params={
                "__method__": method,
                "panel_id": "ntt-test-panel",
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
                if name == "set_view":
                    self.view = self._view(args.get("view") or [])
                others.append(request)
        self.requests = others
        return others

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

    def button(self, stack: str, name: str) -> dict[str, Any]:
        props = self.output["type"]["properties"][stack]["type"]["properties"]
        return props[name]["view"]
