"""Test-session setup shared by all tiers.

Tiers: ``tests/unit`` (pure library code; never imports fiftyone), ``tests/integration``
(real FiftyOne with a real MongoDB) and ``tests/e2e`` (the App in headless Chromium). Each
test gets its tier's marker from its folder, and tests run unit first, then integration,
then e2e, so the cheap failures show first.

FiftyOne reads its configuration when it is first imported, so the isolation below happens
at import time of this file, before any test module can import fiftyone: the session starts
and owns its database server (``mongod`` on a free loopback port, data in the session folder,
``FIFTYONE_DATABASE_URI`` pointing at it), and gets its own dataset folder, config files and
plugins folder; no ``FIFTYONE_*`` setting of the caller's shell leaks in. A database folder
alone is not isolation: FiftyOne's embedded database service is shared, and a new FiftyOne
process attaches to any service already running on the machine (a user's App or notebook),
whatever its ``database_dir``. With a URI it starts no service and looks for none. When the
test process exits, the server is stopped and the folder is deleted.

To run the database tiers against a MongoDB you run yourself, set ``NTT_TEST_DATABASE_URI``;
the session then uses a database of its own on that server and drops it at the end.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PLUGIN_NAME = "@fiftyone-ntt/no-time-to-train"
PLUGIN_LINK_NAME = "no-time-to-train"
TIERS = ("unit", "integration", "e2e")

SESSION_DIR = Path(tempfile.mkdtemp(prefix="ntt-tests-"))
_DATABASE_NAME = f"ntt-test-{uuid.uuid4().hex[:8]}"


def _load_private_mongod():
    spec = importlib.util.spec_from_file_location(
        "ntt_private_mongod", REPO_ROOT / "scripts" / "private_mongod.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


#: The session's own database server (None with ``NTT_TEST_DATABASE_URI``).
_MONGOD = None


def _isolate_fiftyone() -> dict[str, str]:
    """FiftyOne settings for this session; applied to os.environ at import time."""
    plugins_dir = SESSION_DIR / "plugins"
    plugins_dir.mkdir()
    # One symlink to this checkout: FiftyOne finds exactly this plugin (it follows links
    # and skips hidden folders), whatever else lies next to the checkout.
    (plugins_dir / PLUGIN_LINK_NAME).symlink_to(REPO_ROOT, target_is_directory=True)

    env = {
        "FIFTYONE_DATABASE_DIR": str(SESSION_DIR / "db"),
        "FIFTYONE_DEFAULT_DATASET_DIR": str(SESSION_DIR / "datasets"),
        "FIFTYONE_PLUGINS_DIR": str(plugins_dir),
        "FIFTYONE_CONFIG_PATH": str(SESSION_DIR / "config.json"),  # absent: defaults
        "FIFTYONE_APP_CONFIG_PATH": str(SESSION_DIR / "app_config.json"),
        "FIFTYONE_DO_NOT_TRACK": "true",
        "FIFTYONE_DATABASE_VALIDATION": "false",
        "FIFTYONE_SHOW_PROGRESS_BARS": "false",
    }
    external = os.environ.get("NTT_TEST_DATABASE_URI")
    if external:
        env["FIFTYONE_DATABASE_URI"] = external
        env["FIFTYONE_DATABASE_NAME"] = _DATABASE_NAME
    else:
        global _MONGOD
        _MONGOD = _load_private_mongod().start_mongod(SESSION_DIR / "db")
        env["FIFTYONE_DATABASE_URI"] = _MONGOD.uri
    for key in [k for k in os.environ if k.startswith("FIFTYONE_")]:
        del os.environ[key]
    os.environ.update(env)
    return env


FIFTYONE_ENV = _isolate_fiftyone()


def _tier(item: pytest.Item) -> str | None:
    try:
        parts = Path(str(item.path)).resolve().relative_to(REPO_ROOT / "tests").parts
    except ValueError:
        return None
    return parts[0] if parts and parts[0] in TIERS else None


def pytest_collection_modifyitems(session, config, items):
    for item in items:
        tier = _tier(item)
        if tier and not item.get_closest_marker(tier):
            item.add_marker(getattr(pytest.mark, tier))
    order = {tier: i for i, tier in enumerate(TIERS)}
    items.sort(key=lambda item: order.get(_tier(item) or "unit", 0))  # stable


def _stop_session_processes() -> None:
    """Stops the database server started for this session, then anything still running whose
    command line names the session folder, which only processes started for this session
    can (e.g. a worker a test left behind)."""
    import psutil

    if _MONGOD is not None:
        _MONGOD.stop()

    mine = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(str(SESSION_DIR) in part for part in proc.info["cmdline"] or []):
                mine.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    _, alive = psutil.wait_procs(mine, timeout=15)
    for proc in alive:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(alive, timeout=15)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


def _drop_external_database() -> None:
    if "FIFTYONE_DATABASE_NAME" not in FIFTYONE_ENV or "fiftyone" not in sys.modules:
        return
    import pymongo

    with pymongo.MongoClient(FIFTYONE_ENV["FIFTYONE_DATABASE_URI"]) as client:
        client.drop_database(_DATABASE_NAME)


@atexit.register
def _cleanup_session() -> None:
    """Registered before fiftyone is imported, so it runs after FiftyOne's own exit handler
    (which still needs the database to delete non-persistent datasets)."""
    try:
        _drop_external_database()
    finally:
        _stop_session_processes()
        shutil.rmtree(SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The checkout (also the plugin folder)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def session_dir() -> Path:
    """This session's scratch folder (database, datasets, plugins dir); deleted at the end."""
    return SESSION_DIR


@pytest.fixture(scope="session")
def fo_session():
    """The ``fiftyone`` module, imported under this session's isolation (checked, so that a
    test never writes to a user's own database or plugins)."""
    import fiftyone as fo

    assert fo.config.database_uri == FIFTYONE_ENV["FIFTYONE_DATABASE_URI"]
    assert fo.config.plugins_dir == FIFTYONE_ENV["FIFTYONE_PLUGINS_DIR"]
    assert fo.config.default_dataset_dir == FIFTYONE_ENV["FIFTYONE_DEFAULT_DATASET_DIR"]
    return fo


@pytest.fixture(scope="session")
def demo_dataset(fo_session):
    """The demo dataset (``make app``'s), built once per session in the session database."""
    from fiftyone_ntt.fiftyone.demo import build_demo_dataset

    return build_demo_dataset()
