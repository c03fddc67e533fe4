"""Cancelling a queued or running segmentation: it stops before its next sample and keeps
what it wrote.

FiftyOne can mark a delegated operation failed, but the worker running it is not told: it
goes on. So a cancel also leaves a request in the dataset's execution store for each live
claim on the output field (``cancel:<claim owner>``, see
:mod:`~fiftyone_ntt.fiftyone.claims`); the run loop asks :func:`cancel_requested` before
each batch of samples and stops when its own claim is named, recording the run as
interrupted (so *Resume* continues it). The request names a claim, not a field: a run
started afterwards into the same field (a resume) is not cancelled by it.

A queued operation that no worker has taken is only marked failed: workers take queued
operations only. A running operation that has not claimed its field yet (still loading its
models) is marked failed, but its run is not stopped.
"""

from __future__ import annotations

import time
from typing import Any

from fiftyone_ntt.fiftyone.claims import live_claims, lock_store

__all__ = ["CANCELLED", "cancel", "cancel_requested", "request_cancel"]

#: The error a cancelled delegated operation is marked failed with.
CANCELLED = "cancelled by the user (the run keeps what it wrote; Resume continues it)"
_PREFIX = "cancel:"


def request_cancel(collection: Any, out_field: str) -> int:
    """Ask every live run writing ``out_field`` (each shard of a split run) to stop before
    its next sample. Returns how many live runs were asked."""
    store = lock_store(collection)
    claims = live_claims(collection, out_field)
    for holder in claims.values():
        store.set(_PREFIX + str(holder["owner"]), {"out_field": out_field, "at": time.time()})
    return len(claims)


def cancel_requested(collection: Any, lock: dict[str, Any]) -> bool:
    """For the run holding claim ``lock``: whether it was cancelled (one read of the store;
    the request is removed once seen)."""
    store = lock_store(collection)
    key = _PREFIX + str(lock.get("owner"))
    if store.get(key) is None:
        return False
    store.delete(key)
    return True


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
    from fiftyone_ntt.fiftyone.activity import mark_failed

    if not op_id and not out_field:
        raise ValueError("cancel what? give the delegated operation id or the output field")
    operation = None
    if op_id:
        operation = mark_failed(op_id, reason=CANCELLED)["id"]
    runs = request_cancel(collection, out_field) if out_field else 0
    return {"operation": operation, "runs": runs}
