"""Claims on output fields and on shards of them: one writer at a time, stale takeover.

A claim is a document in the dataset's execution store (``lock:<field>`` for a whole-field
run, ``lock:<field>:shard:<i>/<n>`` for shard ``i`` of ``n``) holding ``owner`` (a random
id), ``pid``, ``host``, ``started`` and ``heartbeat`` (Unix seconds). It is taken atomically
(``set_if_absent``) before anything is written, refreshed every :data:`HEARTBEAT_SECONDS`
and deleted at the end. A claim whose process is gone (same host, pid not alive) or which
has had no heartbeat for :data:`LOCK_STALE_SECONDS` is stale and is taken over
(``compare_and_set``, so two takers never both win).

Shards of one field coexist: shard ``i/n`` only conflicts with the same shard, with a
whole-field run, and with shards of another split (``j/m``, ``m != n``). Each run claims its
own key first and then looks for conflicting live claims (releasing its own and refusing if
it finds one): of two runs that start together at least one sees the other, so two
conflicting runs never both proceed.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from contextlib import contextmanager
from typing import Any

from fiftyone_ntt.fiftyone.dataset.store import execution_store

__all__ = [
    "HEARTBEAT_SECONDS",
    "LOCK_STALE_SECONDS",
    "FieldLockedError",
    "claim",
    "field_lock",
    "heartbeat",
    "live_claims",
    "lock_key",
    "release",
    "schema_turn",
]

#: A claim whose holder has not sent a heartbeat for this long is stale (its process is
#: taken to be gone); a holder on this host whose pid is gone is stale at once.
LOCK_STALE_SECONDS = 120.0
#: How often a running segmentation refreshes its claim.
HEARTBEAT_SECONDS = 10.0
LOCK_PREFIX = "lock:"
#: Not a field name (those may not contain "__"): the turn for schema changes.
SCHEMA_LOCK = "__schema__"
_SHARD = ":shard:"


class FieldLockedError(RuntimeError):
    """Another live run is writing the same output field (or the same shard of it)."""


def lock_key(out_field: str, shard: tuple[int, int] | None = None) -> str:
    """The store key of a claim on ``out_field`` (or on one of its shards)."""
    if shard is None:
        return LOCK_PREFIX + out_field
    return f"{LOCK_PREFIX}{out_field}{_SHARD}{shard[0]}/{shard[1]}"


def _parse_key(key: str) -> tuple[str, tuple[int, int] | None] | None:
    if not key.startswith(LOCK_PREFIX):
        return None
    rest = key[len(LOCK_PREFIX) :]
    if _SHARD not in rest:
        return rest, None
    field, spec = rest.split(_SHARD, 1)
    try:
        i, n = (int(v) for v in spec.split("/"))
    except ValueError:
        return None
    return field, (i, n)


def describe(shard: tuple[int, int] | None) -> str:
    """``"shard 2/3"`` (1-based for people) or ``"the whole field"``."""
    return "the whole field" if shard is None else f"shard {shard[0] + 1}/{shard[1]}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def is_stale(holder: dict[str, Any], stale_after: float | None = None) -> bool:
    """Whether a claim's holder is gone (see module doc)."""
    limit = LOCK_STALE_SECONDS if stale_after is None else stale_after
    if holder.get("host") == socket.gethostname() and not _pid_alive(holder.get("pid", -1)):
        return True
    return time.time() - float(holder.get("heartbeat", 0)) > limit


def field_lock(
    collection: Any, out_field: str, shard: tuple[int, int] | None = None
) -> dict[str, Any] | None:
    """The live claim on ``out_field`` (or on shard ``(i, n)`` of it): ``owner``, ``pid``,
    ``host``, ``started``, ``heartbeat``; None when no live run holds it (a stale claim
    counts as none)."""
    holder = execution_store(collection).get(lock_key(out_field, shard))
    if holder is None or is_stale(holder):
        return None
    return dict(holder)


def live_claims(collection: Any, out_field: str) -> dict[tuple[int, int] | None, dict[str, Any]]:
    """Every live claim on ``out_field``: ``{None: whole-field claim, (i, n): shard claim}``."""
    store = execution_store(collection)
    out: dict[tuple[int, int] | None, dict[str, Any]] = {}
    for key in store.list_keys():
        parsed = _parse_key(key)
        if parsed is None or parsed[0] != out_field:
            continue
        holder = store.get(key)
        if holder is not None and not is_stale(holder):
            out[parsed[1]] = dict(holder)
    return out


def _holder_text(holder: dict[str, Any]) -> str:
    age = time.time() - float(holder.get("heartbeat", 0))
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(holder.get("started", 0))))
    return (
        f"pid {holder.get('pid')} on {holder.get('host')!r}, started {started}, last "
        f"heartbeat {age:.0f} s ago"
    )


def _conflicts(mine: tuple[int, int] | None, other: tuple[int, int] | None) -> bool:
    if mine is None or other is None:
        return True
    return mine == other or mine[1] != other[1]


def claim(collection: Any, out_field: str, shard: tuple[int, int] | None = None) -> dict[str, Any]:
    """Atomically claim ``out_field`` (or shard ``(i, n)`` of it) for this process; take over
    a stale claim.

    Returns:
        The claim (pass it to :func:`heartbeat` and :func:`release`).

    Raises:
        FieldLockedError: a live run holds the same claim or a conflicting one (the message
            names its pid, host and age, and what to do).
    """
    store = execution_store(collection)
    key = lock_key(out_field, shard)
    now = time.time()
    mine = {
        "owner": uuid.uuid4().hex,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": now,
        "heartbeat": now,
        "shard": list(shard) if shard is not None else None,
    }
    what = f"field {out_field!r}" if shard is None else f"{describe(shard)} of field {out_field!r}"
    for _ in range(5):
        if store.set_if_absent(key, mine):
            break
        holder = store.get(key)
        if holder is None:
            continue  # released meanwhile
        if not is_stale(holder):
            raise FieldLockedError(
                f"{what} is being written by another run ({_holder_text(holder)}); wait for "
                "it to finish, or segment into another output field. If that process is "
                f"gone, its claim expires {LOCK_STALE_SECONDS:.0f} s after its last heartbeat"
            )
        if store.compare_and_set(key, holder, mine):
            break
    else:
        raise FieldLockedError(f"could not claim {what}: other runs keep claiming it; try again")
    if out_field == SCHEMA_LOCK:
        return mine
    for other, holder in live_claims(collection, out_field).items():
        if holder.get("owner") == mine["owner"] or not _conflicts(shard, other):
            continue
        release(collection, out_field, mine, shard)
        if shard is None:
            fix = "wait for the shards to finish (or rerun a dead one), then run again"
        elif other is None:
            fix = "wait for it to finish, or segment into another output field"
        else:
            fix = f"use the same split ({other[1]} shards) or wait for it to finish"
        raise FieldLockedError(
            f"{what} cannot be written now: {describe(other)} of it is being written by "
            f"another run ({_holder_text(holder)}); {fix}"
        )
    return mine


def heartbeat(
    collection: Any, out_field: str, lock: dict[str, Any], shard: tuple[int, int] | None = None
) -> dict[str, Any]:
    """Refresh a claim; raise :class:`FieldLockedError` when another run took it over."""
    fresh = {**lock, "heartbeat": time.time()}
    if not execution_store(collection).compare_and_set(lock_key(out_field, shard), lock, fresh):
        raise FieldLockedError(
            f"this run lost its claim on {describe(shard)} of field {out_field!r} (it was "
            f"idle for more than {LOCK_STALE_SECONDS:.0f} s and another run took over); "
            "stopping so that the two never interleave; rerun to resume"
        )
    return fresh


def release(
    collection: Any, out_field: str, lock: dict[str, Any], shard: tuple[int, int] | None = None
) -> None:
    """Delete a claim if this run still holds it."""
    store = execution_store(collection)
    key = lock_key(out_field, shard)
    holder = store.get(key)
    if holder is not None and holder.get("owner") == lock.get("owner"):
        store.delete(key)


@contextmanager
def schema_turn(dataset: Any, timeout: float = 60.0):
    """Hold the dataset-wide claim ``lock:__schema__`` (waiting for it) while changing the
    dataset's schema or runs: FiftyOne saves a dataset's fields and runs as a whole, so two
    processes changing them at once can lose one change."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            lock = claim(dataset, SCHEMA_LOCK)
            break
        except FieldLockedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        yield
    finally:
        release(dataset, SCHEMA_LOCK, lock)
