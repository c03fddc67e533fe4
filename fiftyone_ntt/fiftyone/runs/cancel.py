"""Cancelling a queued or running segmentation: it stops before its next sample and keeps
what it wrote.

FiftyOne can mark a delegated operation failed, but the worker running it is not told: it
goes on. So a cancel also leaves a request in the dataset's execution store for each live
claim on the output field (``cancel:<claim owner>``, see
:mod:`~fiftyone_ntt.fiftyone.runs.claims`); the run loop asks :func:`cancel_requested` before
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

from fiftyone_ntt.fiftyone.dataset.store import execution_store
from fiftyone_ntt.fiftyone.runs.claims import live_claims

__all__ = ["cancel_requested", "request_cancel"]

_PREFIX = "cancel:"


def request_cancel(collection: Any, out_field: str) -> int:
    """Ask every live run writing ``out_field`` (each shard of a split run) to stop before
    its next sample. Returns how many live runs were asked."""
    store = execution_store(collection)
    claims = live_claims(collection, out_field)
    for holder in claims.values():
        store.set(_PREFIX + str(holder["owner"]), {"out_field": out_field, "at": time.time()})
    return len(claims)


def cancel_requested(collection: Any, lock: dict[str, Any]) -> bool:
    """For the run holding claim ``lock``: whether it was cancelled (one read of the store;
    the request is removed once seen)."""
    store = execution_store(collection)
    key = _PREFIX + str(lock.get("owner"))
    if store.get(key) is None:
        return False
    store.delete(key)
    return True
