"""Runs rows the user dismissed from the panel, kept in the panel's own execution store: a
row stays hidden until its field gets a new attempt."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fiftyone_ntt.fiftyone.dataset.store import execution_store


def row_key(row: Mapping[str, Any]) -> str:
    """What a Runs row is about: ``"<kind>:<field>"`` (an operation without a field: its
    id). Attempts with the same key are one row."""
    if row.get("field"):
        return f"{row.get('kind')}:{row['field']}"
    return f"id:{row.get('id')}"


_PANEL_STORE = "ntt_panel"


_DISMISSED = "dismissed_runs"


def _panel_store(dataset: Any) -> Any:
    return execution_store(dataset, _PANEL_STORE)


def _dismiss_stamp(row: Mapping[str, Any]) -> str:
    return f"{row.get('id')}@{row.get('updated_iso')}@{row.get('state')}"


def dismissed_rows(collection: Any) -> dict[str, str]:
    """``{row key: stamp}`` of the Runs rows dismissed on this dataset (a row stays hidden
    until its field gets a new attempt)."""
    return dict(_panel_store(collection).get(_DISMISSED) or {})


def dismiss_row(collection: Any, row: Mapping[str, Any]) -> None:
    """Hide a Runs row from the panel: only the panel's list of dismissed rows changes (the
    run record, the operation, the predictions and the labels are kept)."""
    store = _panel_store(collection)
    dismissed = dict(store.get(_DISMISSED) or {})
    dismissed[row_key(row)] = _dismiss_stamp(row)
    store.set(_DISMISSED, dismissed)


def without_dismissed(dataset: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    dismissed = dismissed_rows(dataset)
    if not dismissed:
        return rows
    return [r for r in rows if dismissed.get(row_key(r)) != _dismiss_stamp(r)]
