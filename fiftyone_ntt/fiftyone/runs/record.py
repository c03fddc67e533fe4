"""The record of a segmentation run (FiftyOne run results keyed by the output field) and
where it stands: one summary for a whole-field run, one entry per shard for a split one."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import fiftyone.core.runs as fors
from fiftyone import ViewField as F

from fiftyone_ntt.config import NTTConfig
from fiftyone_ntt.fiftyone.dataset.fields import RUN_ATTRIBUTE
from fiftyone_ntt.fiftyone.dataset.store import execution_store
from fiftyone_ntt.fiftyone.runs.claims import describe, field_lock
from fiftyone_ntt.fiftyone.runs.output_field import reload_schema
from fiftyone_ntt.fiftyone.runs.settings import recorded_settings

__all__ = ["forget_shards", "record_run", "run_fingerprint", "run_state", "written_count"]


def run_fingerprint(bank: Any, config: NTTConfig, models: dict[str, Any]) -> str:
    """What determines the predictions: bank content, settings (but not the device), models."""
    settings = recorded_settings(config)
    payload = json.dumps(
        {"bank": bank.fingerprint, "config": settings, "models": models},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _overall(statuses: list[str]) -> str:
    if "running" in statuses:
        return "running"
    if statuses and all(s == "completed" for s in statuses):
        return "completed"
    if "interrupted" in statuses:
        return "interrupted"
    return "partial" if "completed" in statuses else "none"


#: Store key prefixes: ``split:<field>`` = ``{"num_shards", "run_fingerprint"}`` of the
#: current split of a field, ``shard:<field>:<i>/<n>`` = the summary of one shard.
_SPLIT = "split:"
_SHARD = "shard:"


def _shard_key(out_field: str, index: int, count: int) -> str:
    return f"{_SHARD}{out_field}:{index}/{count}"


def forget_shards(dataset: Any, out_field: str) -> None:
    """Delete the split record and the shard summaries of ``out_field`` (its run is gone)."""
    store = execution_store(dataset)
    prefix = f"{_SHARD}{out_field}:"
    for key in store.list_keys():
        if key == _SPLIT + out_field or key.startswith(prefix):
            store.delete(key)


def record_run(
    dataset: Any, run_key: str, summary: dict[str, Any], shard: tuple[int, int] | None
) -> None:
    """Save a run's summary.

    A whole-field run saves it as the FiftyOne run results of ``run_key`` (and ends any
    split record of the field). A shard saves it under its own key of the dataset's
    execution store (one atomic document per shard: FiftyOne's run results are one file
    per run, which concurrent writers would overwrite), and marks the field as split into
    ``n`` shards with these settings.
    """

    store = execution_store(dataset)
    if shard is None:
        store.delete(_SPLIT + run_key)
        info = dataset.get_run_info(run_key)
        results = fors.RunResults(dataset, info.config, run_key, **summary)
        dataset.save_run_results(run_key, results, overwrite=True)
        return
    index, count = shard
    split = {"num_shards": count, "run_fingerprint": summary.get("run_fingerprint")}
    if store.get(_SPLIT + run_key) != split:
        store.set(_SPLIT + run_key, split)
    store.set(_shard_key(run_key, index, count), summary)


def run_state(collection: Any, out_field: str) -> dict[str, Any]:
    """Where the segmentation run into ``out_field`` stands.

    Returns:
        ``status``: ``"completed"``, ``"running"`` (a live process holds the field or one of
        its shards), ``"interrupted"`` (stopped by an error, or its process died),
        ``"partial"`` (a split run: some shards completed, the others not started yet) or
        ``"none"`` (no run); ``finished`` (completed); ``total``: samples of the run as
        last recorded; ``processed``: samples holding the run's predictions, counted in the
        database (:func:`written_count`); ``lock``: a live claim or None. A split run adds ``num_shards`` and
        ``shards``: one dict per shard (``shard`` ``"i/n"`` 1-based, ``index``, ``status``
        as above or ``"none"`` when never started, ``total``, ``processed`` (as its worker
        last recorded), ``failed``, ``pid``, ``host``, ``lock``, ``tracking``) and, for a
        tracked video run, ``tracking``: the shards' settings, keyframes and videos together.
    """

    dataset = collection._root_dataset
    reload_schema(dataset)  # another process (a worker) may have registered the run
    if out_field not in dataset.list_runs():
        return {"status": "none", "finished": False, "lock": None}
    split = execution_store(dataset).get(_SPLIT + out_field)
    if split:
        return _sharded_state(dataset, out_field, split)
    results = dataset.load_run_results(out_field, cache=False)
    recorded = getattr(results, "status", None) if results is not None else None
    lock = field_lock(dataset, out_field)
    status = recorded or "interrupted"
    if status == "running" and lock is None:
        status = "interrupted"  # its process is gone
    return {
        "status": status,
        "finished": status == "completed",
        "total": getattr(results, "total", None),
        "processed": written_count(dataset, out_field),
        "lock": lock,
    }


def written_count(dataset: Any, out_field: str) -> int | None:
    """How many samples (frames, for a run over video frames) hold the predictions of the
    run into ``out_field``: those marked with its fingerprint, counted in the database.

    This is the count every view of a run shows (:func:`run_state`, the activity list, the
    panel's Runs table): a process killed with ``kill -9`` never saves its own counter, and
    a resumed run's counter holds only what the last process did. None when the run
    records no fingerprint.
    """

    config = dataset.get_run_info(out_field).config
    fingerprint = getattr(config, "run_fingerprint", None)
    field = getattr(config, "out_field", None) or out_field
    if not fingerprint:
        return None
    if dataset.media_type == "group":  # every slice
        dataset = dataset.select_group_slices(_allow_mixed=True)
    if field.startswith("frames."):
        name = field[len("frames.") :]
        if not dataset.has_frame_field(name):
            return 0
        matched = dataset.match_frames(F(f"{name}.{RUN_ATTRIBUTE}") == fingerprint)
        return int(matched.count("frames"))
    if not dataset.has_sample_field(field):
        return 0
    return int(dataset.match(F(f"{field}.{RUN_ATTRIBUTE}") == fingerprint).count())


def _sharded_state(dataset: Any, out_field: str, split: dict[str, Any]) -> dict[str, Any]:
    store = execution_store(dataset)
    count = int(split["num_shards"])
    shards = []
    for index in range(count):
        entry = dict(store.get(_shard_key(out_field, index, count)) or {})
        if entry.get("run_fingerprint") != split.get("run_fingerprint"):
            entry = {}  # a shard of an earlier split with other settings
        lock = field_lock(dataset, out_field, (index, count))
        status = entry.get("status", "none")
        if status == "running" and lock is None:
            status = "interrupted"  # its worker is gone
        shards.append(
            {
                "shard": describe((index, count)).split(" ", 1)[1],
                "index": index,
                "status": status,
                "total": entry.get("total"),
                "processed": entry.get("processed"),
                "failed": entry.get("failed"),
                "failures": entry.get("failures") or [],
                "pid": entry.get("pid"),
                "host": entry.get("host"),
                "lock": lock,
                "tracking": entry.get("tracking"),
            }
        )
    status = _overall([s["status"] for s in shards])
    lock = next((s["lock"] for s in shards if s["lock"] is not None), None)
    state = {
        "status": status,
        "finished": status == "completed",
        "total": sum(int(s["total"] or 0) for s in shards),
        "processed": written_count(dataset, out_field),
        "lock": lock or field_lock(dataset, out_field),
        "num_shards": count,
        "shards": shards,
    }
    tracked = [s["tracking"] for s in shards if s["tracking"]]
    if tracked:  # a tracked video run: its shards' videos together
        state["tracking"] = {
            **{k: v for k, v in tracked[0].items() if k not in ("keyframes", "videos")},
            "keyframes": sum(int(t.get("keyframes") or 0) for t in tracked),
            "videos": {k: v for t in tracked for k, v in (t.get("videos") or {}).items()},
        }
    return state
