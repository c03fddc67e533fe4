"""The record of a segmentation run (FiftyOne run results keyed by the output field) and
where it stands: one summary for a whole-field run, one entry per shard for a split one."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fiftyone_ntt.config import NTTConfig
from fiftyone_ntt.fiftyone.claims import describe, field_lock, schema_turn

__all__ = ["record_run", "run_fingerprint", "run_state"]

_SUMMED = ("total", "done_before", "processed", "failed", "detections")


def run_fingerprint(bank: Any, config: NTTConfig, models: dict[str, Any]) -> str:
    """What determines the predictions: bank content, settings (but not the device), models."""
    settings = config.to_dict()
    settings["models"] = {k: v for k, v in settings["models"].items() if k != "device"}
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


def record_run(
    dataset: Any, run_key: str, summary: dict[str, Any], shard: tuple[int, int] | None
) -> None:
    """Save a run's summary as its FiftyOne run results.

    A whole-field run replaces the results. A shard updates its own entry of
    ``results.shards`` (``{"<i>": summary}``) under the dataset's schema turn, so that the
    shards of one split, in any number of processes, never lose each other's entries; a
    split with another shard count or other settings starts a fresh record.
    """
    import fiftyone.core.runs as fors

    info = dataset.get_run_info(run_key)
    if shard is None:
        results = fors.RunResults(dataset, info.config, run_key, **summary)
        dataset.save_run_results(run_key, results, overwrite=True)
        return
    index, count = shard
    with schema_turn(dataset):
        previous = dataset.load_run_results(run_key, cache=False)
        shards = {}
        if (
            previous is not None
            and getattr(previous, "num_shards", None) == count
            and getattr(previous, "run_fingerprint", None) == summary.get("run_fingerprint")
        ):
            shards = dict(getattr(previous, "shards", None) or {})
        shards[str(index)] = summary
        statuses = [shards.get(str(i), {}).get("status", "none") for i in range(count)]
        totals = {k: sum(int(s.get(k) or 0) for s in shards.values()) for k in _SUMMED}
        results = fors.RunResults(
            dataset,
            info.config,
            run_key,
            out_field=summary.get("out_field"),
            status=_overall(statuses),
            num_shards=count,
            run_fingerprint=summary.get("run_fingerprint"),
            shards=shards,
            **totals,
        )
        dataset.save_run_results(run_key, results, overwrite=True)


def run_state(collection: Any, out_field: str) -> dict[str, Any]:
    """Where the segmentation run into ``out_field`` stands.

    Returns:
        ``status``: ``"completed"``, ``"running"`` (a live process holds the field or one of
        its shards), ``"interrupted"`` (stopped by an error, or its process died),
        ``"partial"`` (a split run: some shards completed, the others not started yet) or
        ``"none"`` (no run); ``finished`` (completed); ``total``/``processed`` samples as
        last recorded; ``lock``: a live claim or None. A split run adds ``num_shards`` and
        ``shards``: one dict per shard (``shard`` ``"i/n"`` 1-based, ``index``, ``status``
        as above or ``"none"`` when never started, ``total``, ``processed``, ``failed``,
        ``pid``, ``host``, ``lock``).
    """
    dataset = collection._root_dataset
    if out_field not in dataset.list_runs():
        return {"status": "none", "finished": False, "lock": None}
    results = dataset.load_run_results(out_field, cache=False)
    count = getattr(results, "num_shards", None) if results is not None else None
    if count:
        return _sharded_state(dataset, out_field, results, int(count))
    recorded = getattr(results, "status", None) if results is not None else None
    lock = field_lock(dataset, out_field)
    status = recorded or "interrupted"
    if status == "running" and lock is None:
        status = "interrupted"  # its process is gone
    return {
        "status": status,
        "finished": status == "completed",
        "total": getattr(results, "total", None),
        "processed": getattr(results, "processed", None),
        "lock": lock,
    }


def _sharded_state(dataset: Any, out_field: str, results: Any, count: int) -> dict[str, Any]:
    recorded = getattr(results, "shards", None) or {}
    shards = []
    for index in range(count):
        entry = dict(recorded.get(str(index)) or {})
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
                "pid": entry.get("pid"),
                "host": entry.get("host"),
                "lock": lock,
            }
        )
    status = _overall([s["status"] for s in shards])
    lock = next((s["lock"] for s in shards if s["lock"] is not None), None)
    return {
        "status": status,
        "finished": status == "completed",
        "total": sum(int(s["total"] or 0) for s in shards),
        "processed": sum(int(s["processed"] or 0) for s in shards),
        "lock": lock or field_lock(dataset, out_field),
        "num_shards": count,
        "shards": shards,
    }
