"""What No Time to Train has done and is doing on a dataset: one list for the App.

Three sources, one row format:

- segmentation runs (custom runs keyed by their output field, state from
  :func:`fiftyone_ntt.fiftyone.runs.record.run_state`);
- evaluations of prediction fields (FiftyOne's ``list_evaluations``);
- delegated operations of this plugin (``DelegatedOperationService``): queued, running,
  completed or failed, with their progress and error. The open-source App has no list of
  these, so the plugin shows this one (``ntt_runs``, the panel's Runs section).

A row is a dict: ``id``, ``source`` (``"run"``, ``"evaluation"`` or ``"delegated"``),
``kind`` (``"segment"``, ``"evaluate"``, ``"build"``, ... for delegated operations: the
operator's short name without ``ntt_``), ``state`` (``queued``, ``running``, ``interrupted``,
``completed`` or ``failed``), ``done``/``total`` (samples, None when unknown), ``bank``,
``bank_version`` (None when banks carry no version), ``out_field``, ``error``, ``started``
and ``updated`` (ISO 8601 UTC strings or None).
"""

from __future__ import annotations

import re
from typing import Any

import fiftyone as fo
from bson import ObjectId
from fiftyone.operators.delegated import DelegatedOperationService
from fiftyone.operators.executor import ExecutionResult

from fiftyone_ntt.fiftyone.runs.cancel import request_cancel
from fiftyone_ntt.fiftyone.runs.config import list_ntt_runs
from fiftyone_ntt.fiftyone.runs.record import run_state

__all__ = [
    "PLUGIN_NAME",
    "STATES",
    "bank_of_field",
    "list_activity",
    "mark_failed",
    "operation_rows",
]

#: The plugin's name in ``fiftyone.yml``: operator URIs start with it.
PLUGIN_NAME = "@fiftyone-ntt/no-time-to-train"
#: Every state a row can be in.
STATES = ("queued", "running", "interrupted", "completed", "failed")

# progress labels written by the operators: "<what>: <done>/<total>"
_DONE_OF = re.compile(r"(\d+)\s*/\s*(\d+)")
_DELEGATED_STATES = {
    "scheduled": "queued",
    "queued": "queued",
    "running": "running",
    "processing": "running",
    "completed": "completed",
    "failed": "failed",
}


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    iso = getattr(value, "isoformat", None)
    return iso() if iso else str(value)


def _row(**values: Any) -> dict[str, Any]:
    row = {
        "id": None,
        "source": None,
        "kind": None,
        "state": None,
        "done": None,
        "total": None,
        "bank": None,
        "bank_version": None,
        "out_field": None,
        "error": None,
        "started": None,
        "updated": None,
    }
    row.update(values)
    return row


def _segmentation_rows(dataset: Any) -> list[dict[str, Any]]:

    rows = []
    for key in list_ntt_runs(dataset):
        info = dataset.get_run_info(key)
        config = info.config
        try:
            state = run_state(dataset, key)
        except Exception as error:  # unreadable results: say so rather than hide the run
            state = {"status": "interrupted", "error": str(error)}
        status = state.get("status")
        results = None
        if status != "none":
            try:
                results = dataset.load_run_results(key, cache=False)
            except Exception:
                results = None
        failures = getattr(results, "failed", None)
        rows.append(
            _row(
                id=f"run:{key}",
                source="run",
                kind="segment",
                state=status if status in STATES else "interrupted",
                done=_done(state),
                total=state.get("total"),
                bank=getattr(config, "bank_key", None),
                bank_version=getattr(config, "bank_version", None),
                out_field=getattr(config, "out_field", key),
                error=state.get("error") or (f"{failures} sample(s) skipped" if failures else None),
                started=_iso(getattr(info, "timestamp", None)),
                updated=_iso(getattr(info, "timestamp", None)),
            )
        )
    return rows


def _done(state: dict[str, Any]) -> int | None:
    """Samples done: what :func:`~.run_record.run_state` counts in the database."""
    processed = state.get("processed")
    if processed is None:
        return None
    return int(processed)


def _evaluation_rows(dataset: Any) -> list[dict[str, Any]]:
    rows = []
    for key in dataset.list_evaluations():
        info = dataset.get_evaluation_info(key)
        config = info.config
        bank, bank_version = bank_of_field(dataset, getattr(config, "pred_field", None))
        rows.append(
            _row(
                id=f"evaluation:{key}",
                source="evaluation",
                kind="evaluate",
                state="completed",
                out_field=key,
                bank=bank,
                bank_version=bank_version,
                started=_iso(getattr(info, "timestamp", None)),
                updated=_iso(getattr(info, "timestamp", None)),
            )
        )
    return rows


def bank_of_field(dataset: Any, field: str | None) -> tuple[str | None, int | None]:
    """The bank (key, version) of the run that wrote ``field``, as its run row shows it."""

    if field and field in list_ntt_runs(dataset):
        config = dataset.get_run_info(field).config
        return getattr(config, "bank_key", None), getattr(config, "bank_version", None)
    return None, None


def operation_rows(dataset: Any, include_finished: bool = True) -> list[dict[str, Any]]:
    """The rows of this plugin's delegated operations on ``dataset`` (newest first)."""

    rows = []
    for op in DelegatedOperationService().list_operations(dataset_name=dataset.name):
        operator = str(getattr(op, "operator", "") or "")
        if not operator.startswith(PLUGIN_NAME + "/"):
            continue
        name = operator.rsplit("/", 1)[-1]
        params = _params(op)
        state = _DELEGATED_STATES.get(str(op.run_state), str(op.run_state))
        done, total = _progress(op)
        out_field = params.get("out_field") or params.get("eval_key")
        if state == "running" and name == "ntt_segment" and out_field:
            run = _run_of_operation(dataset, out_field)
            if run.get("status") == "interrupted":
                # its worker is gone: no progress label is coming; for a whole-field run,
                # the count is what its run row shows, the samples written (issue 20 §6)
                state = "interrupted"
                if not params.get("shard"):
                    done, total = _done(run), run.get("total")
        if not include_finished and state in ("completed", "failed"):
            continue
        result = getattr(op, "result", None)
        rows.append(
            _row(
                id=str(op.id),
                source="delegated",
                kind=name[4:] if name.startswith("ntt_") else name,
                state=state,
                done=done,
                total=total,
                bank=params.get("bank") or params.get("bank_key"),
                bank_version=params.get("bank_version"),
                out_field=out_field,
                error=_error_text(getattr(result, "error", None) if result is not None else None),
                started=_iso(op.started_at or op.queued_at or op.scheduled_at),
                updated=_iso(op.completed_at or op.failed_at or op.updated_at),
            )
        )
    rows.sort(key=lambda r: r["updated"] or "", reverse=True)
    return rows


def _error_text(error: Any) -> str | None:
    """The message of an operation's error; FiftyOne stores a whole traceback, whose last
    line is what the user needs (the full one stays in `fiftyone delegated info`)."""
    if not error:
        return None
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if lines and lines[0].startswith("Traceback"):
        return lines[-1]
    return str(error).strip()


def _params(op: Any) -> dict[str, Any]:
    context = getattr(op, "context", None)
    request = getattr(context, "request_params", None) or {}
    params = request.get("params") if isinstance(request, dict) else None
    return dict(params or {})


def _progress(op: Any) -> tuple[int | None, int | None]:
    status = getattr(op, "status", None)
    label = getattr(status, "label", None) if status is not None else None
    match = _DONE_OF.search(str(label or ""))
    if match:
        return int(match.group(1)), int(match.group(2))
    return None, None


def _run_of_operation(dataset: Any, out_field: str) -> dict[str, Any]:
    """The state of the run of a delegated segmentation that reads "running": ``status``
    ``"interrupted"`` when its process no longer holds the field (killed worker); before it
    has claimed the field, or when the state cannot be read, ``{}``."""

    try:
        return run_state(dataset, out_field)
    except Exception:
        return {}


def list_activity(dataset: Any) -> list[dict[str, Any]]:
    """Every row for ``dataset``: delegated operations first (newest first), then the
    segmentation runs and the evaluations (by key). See the module doc for the row format."""
    dataset = getattr(dataset, "_root_dataset", dataset)
    return operation_rows(dataset) + _segmentation_rows(dataset) + _evaluation_rows(dataset)


def mark_failed(op_id: str, reason: str | None = None) -> dict[str, Any]:
    """Mark delegated operation ``op_id`` failed (e.g. its worker was killed and it still
    reads running). Returns its new row.

    Raises:
        KeyError: no delegated operation ``op_id``.
        ValueError: the operation is not this plugin's, or it already finished.
    """

    service = DelegatedOperationService()
    try:
        op = service.get(ObjectId(str(op_id)))
    except Exception:
        op = None
    if op is None:
        raise KeyError(f"no delegated operation {op_id!r}; see `fiftyone delegated list`")
    if not str(op.operator).startswith(PLUGIN_NAME + "/"):
        raise ValueError(f"operation {op_id!r} ({op.operator}) is not a No Time to Train one")
    state = _DELEGATED_STATES.get(str(op.run_state), str(op.run_state))
    if state in ("completed", "failed"):
        raise ValueError(f"operation {op_id!r} already {state}; nothing to mark")
    message = reason or "marked failed by the user (its worker was stopped)"
    service.set_failed(op.id, result=ExecutionResult(error=message))

    dataset = fo.load_dataset(_params_dataset(op)) if _params_dataset(op) else None
    if dataset is not None:
        for row in operation_rows(dataset):
            if row["id"] == str(op.id):
                return row
    return _row(id=str(op.id), source="delegated", state="failed", error=message)


def _params_dataset(op: Any) -> str | None:
    context = getattr(op, "context", None)
    request = getattr(context, "request_params", None) or {}
    return request.get("dataset_name") if isinstance(request, dict) else None


#: The error a cancelled delegated operation is marked failed with.
CANCELLED = "cancelled by the user (the run keeps what it wrote; Resume continues it)"


def cancel(
    collection: Any, op_id: str | None = None, out_field: str | None = None
) -> dict[str, Any]:
    """Cancel delegated operation ``op_id`` (marked failed with :data:`CANCELLED`) and the
    live runs writing ``out_field``.

    Returns:
        ``operation``: the id of the operation marked failed, or None; ``runs``: how many
        live runs were asked to stop.

    Raises:
        KeyError: no delegated operation ``op_id``.
        ValueError: ``op_id`` is not this plugin's, or already finished; neither ``op_id``
            nor ``out_field`` given.
    """
    if not op_id and not out_field:
        raise ValueError("cancel what? give the delegated operation id or the output field")
    operation = None
    if op_id:
        operation = mark_failed(op_id, reason=CANCELLED)["id"]
    runs = request_cancel(collection, out_field) if out_field else 0
    return {"operation": operation, "runs": runs}
