"""Scheduled (delegated) runs: whether this FiftyOne offers them, the command that starts a
worker for them, and the notice for a run that no worker has picked up.

FiftyOne 1.22 offers "Schedule" in the open-source App only with the setting
``allow_legacy_orchestrators`` (environment ``FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS=true``, or
``"allow_legacy_orchestrators": true`` in ``~/.fiftyone/config.json``); without it the App
shows no "Schedule" button. A scheduled run is then executed by a worker,
``fiftyone delegated launch``, which must see the same plugins folder and database as the App.
"""

from __future__ import annotations

import datetime
import os
import shlex
import sys
from collections.abc import Mapping
from typing import Any

import fiftyone as fo

from fiftyone_ntt.fiftyone.app.activity import operation_rows

__all__ = [
    "SCHEDULING_CONFIG_KEY",
    "SCHEDULING_ENV",
    "UNCLAIMED_AFTER_S",
    "enable_scheduling_help",
    "scheduling_available",
    "unclaimed_notice",
    "worker_command",
]

#: FiftyOne's setting that offers "Schedule" in the open-source App (config key, env var).
SCHEDULING_CONFIG_KEY = "allow_legacy_orchestrators"
SCHEDULING_ENV = "FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS"
#: Set by FiftyOne for its own processes, not what the worker needs to find the same plugins
#: and database (the App server gets FIFTYONE_SERVER and FIFTYONE_DISABLE_SERVICES, but a
#: worker must start or attach to the database service itself; FiftyOne rewrites
#: FIFTYONE_DO_NOT_TRACK for it).
_PROCESS_SETTINGS = frozenset(
    {"FIFTYONE_CONTEXT", "FIFTYONE_DISABLE_SERVICES", "FIFTYONE_DO_NOT_TRACK", "FIFTYONE_SERVER"}
)
#: A run queued longer than this with no worker gets a notice in the panel.
UNCLAIMED_AFTER_S = 60


def scheduling_available() -> bool:
    """Whether this FiftyOne process offers scheduled runs in the App (read at call time).

    FiftyOne releases before the setting existed always offered them."""

    return bool(getattr(fo.config, SCHEDULING_CONFIG_KEY, True))


def _fiftyone_executable() -> str:
    """The ``fiftyone`` command of this Python environment (the worker must run in it)."""
    candidate = os.path.join(os.path.dirname(sys.executable), "fiftyone")
    return candidate if os.access(candidate, os.X_OK) else "fiftyone"


def worker_command(environ: Mapping[str, str] | None = None) -> str:
    """The shell command that starts a worker for the runs scheduled from an App whose
    environment is ``environ`` (default: this process's): every ``FIFTYONE_*`` setting of it
    (plugins folder, database, test models, ...), the plugins folder FiftyOne uses here if the
    environment does not name one, scheduling on, then ``fiftyone delegated launch``.
    FiftyOne's per-process settings (:data:`_PROCESS_SETTINGS`) are left out."""
    env = {k: v for k, v in (os.environ if environ is None else environ).items()}
    settings = {
        k: v
        for k, v in sorted(env.items())
        if k.startswith("FIFTYONE_") and k not in _PROCESS_SETTINGS
    }
    if "FIFTYONE_PLUGINS_DIR" not in settings and "fiftyone" in sys.modules:
        plugins_dir = getattr(sys.modules["fiftyone"].config, "plugins_dir", None)
        if plugins_dir:
            settings["FIFTYONE_PLUGINS_DIR"] = plugins_dir
    settings[SCHEDULING_ENV] = "true"
    words = [f"{k}={shlex.quote(v)}" for k, v in sorted(settings.items())]
    return " ".join([*words, shlex.quote(_fiftyone_executable()), "delegated", "launch"])


def enable_scheduling_help() -> str:
    """What to set so that the App offers "Schedule", and how to start the worker."""
    return (
        f"To schedule it for a worker instead, set {SCHEDULING_ENV}=true (or "
        f'"{SCHEDULING_CONFIG_KEY}": true in ~/.fiftyone/config.json) for the App, restart '
        f"it (`make app` does this), and start a worker with the same plugins folder and "
        f"database: {worker_command()}"
    )


def _age_s(value: Any, now: datetime.datetime) -> float | None:
    if not value:
        return None
    when = value if isinstance(value, datetime.datetime) else None
    if when is None:
        try:
            when = datetime.datetime.fromisoformat(str(value))
        except ValueError:
            return None
    if when.tzinfo is None:  # FiftyOne stores naive UTC times
        when = when.replace(tzinfo=datetime.timezone.utc)
    return (now - when).total_seconds()


def unclaimed_notice(
    dataset: Any, after_s: float = UNCLAIMED_AFTER_S, now: datetime.datetime | None = None
) -> str | None:
    """A notice when a run of this plugin on ``dataset`` has been queued for more than
    ``after_s`` seconds and no worker has picked it up; None otherwise."""

    now = now or datetime.datetime.now(datetime.timezone.utc)
    dataset = getattr(dataset, "_root_dataset", dataset)
    waiting = [
        row
        for row in operation_rows(dataset, include_finished=False)
        if row["state"] == "queued" and (_age_s(row["started"], now) or 0) > after_s
    ]
    if not waiting:
        return None
    oldest = max(_age_s(row["started"], now) or 0 for row in waiting)
    waited = f"{oldest:.0f} s" if oldest < 120 else f"{oldest / 60:.0f} min"
    runs = "this run" if len(waiting) == 1 else f"these {len(waiting)} runs"
    return (
        f"Queued for {waited}: no worker has picked {runs} up; start one with: {worker_command()}"
    )
