"""A test session never touches a database it did not start (issue 9 §1).

FiftyOne's embedded database is a shared service: a FiftyOne process attaches to a service that
another process started, whatever its ``database_dir``. So a test session that only sets its
own ``FIFTYONE_DATABASE_DIR`` reads and writes the database of a user whose App or notebook is
open. This test plays that user: a FiftyOne process with default settings and a persistent
dataset of its own keeps its embedded service running while a database-using test session
(the demo dataset test) runs; the user's database must come out unchanged (dataset list,
document counts per collection, a hash of every document) and must not hold the session's
datasets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.integration

USER_DATASET = "users-own-dataset"
INNER_TEST = "tests/integration/test_demo_and_plugin.py::test_demo_dataset_has_coin_masks"
INNER_DATASET = "ntt-demo"  # what the inner test session writes

#: The user's process: a persistent dataset, a snapshot of the whole database, then it waits
#: (its database service stays up) until told to take a second snapshot.
USER_PROCESS = f"""
import hashlib, json, sys
import bson
import fiftyone as fo
import fiftyone.core.odm.database as fod

dataset = fo.Dataset({USER_DATASET!r})
dataset.persistent = True
dataset.add_samples(
    [
        fo.Sample(
            filepath=f"/user/images/{{i}}.jpg",
            ground_truth=fo.Detections(
                detections=[fo.Detection(label="cat", bounding_box=[0.1, 0.1, 0.5, 0.5])]
            ),
        )
        for i in range(5)
    ]
)

def snapshot():
    db = fod.get_db_conn()
    digest, counts = hashlib.sha256(), {{}}
    for name in sorted(db.list_collection_names()):
        docs = list(db[name].find({{}}).sort("_id", 1))
        counts[name] = len(docs)
        for doc in docs:
            digest.update(name.encode() + bson.encode(doc))
    return {{"datasets": fo.list_datasets(), "counts": counts, "hash": digest.hexdigest()}}

print("SNAPSHOT", json.dumps(snapshot()), flush=True)
sys.stdin.readline()
print("SNAPSHOT", json.dumps(snapshot()), flush=True)
"""


def _other_fiftyone_database_services() -> list[int]:
    """Pids of FiftyOne database services running on this machine (a real user's)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            cmdline = proc.info["cmdline"] or []
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if "--51-service" in cmdline and "db" in cmdline:
            found.append(proc.pid)
    return found


def _snapshots(text: str) -> list[dict]:
    """The snapshots the user's process printed (FiftyOne prints other lines too)."""
    return [json.loads(line[9:]) for line in text.splitlines() if line.startswith("SNAPSHOT ")]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FIFTYONE_") and k != "NTT_TEST_DATABASE_URI"
    }
    env.update(extra)
    return env


def _stop_everything_using(path: str) -> None:
    procs = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(path in part for part in proc.info["cmdline"] or []):
                procs.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    for proc in procs:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=20)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


def test_a_test_session_leaves_a_running_users_database_untouched(repo_root):
    if _other_fiftyone_database_services():
        pytest.skip(
            "a FiftyOne database service of another process is running on this machine; "
            "playing 'the user' here would write to that real database"
        )
    user_dir = Path(tempfile.mkdtemp(prefix="ntt-user-"))
    user_env = _clean_env(
        FIFTYONE_DATABASE_DIR=str(user_dir / "db"),  # the user's own database folder
        FIFTYONE_DEFAULT_DATASET_DIR=str(user_dir / "datasets"),
        FIFTYONE_CONFIG_PATH=str(user_dir / "config.json"),  # absent: default settings
        FIFTYONE_APP_CONFIG_PATH=str(user_dir / "app_config.json"),
        FIFTYONE_PLUGINS_DIR=str(user_dir / "plugins"),
        FIFTYONE_DO_NOT_TRACK="true",
        FIFTYONE_DATABASE_VALIDATION="false",
    )
    user = subprocess.Popen(
        [sys.executable, "-c", USER_PROCESS],
        env=user_env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        printed = ""
        while not printed.startswith("SNAPSHOT "):
            printed = user.stdout.readline()
            assert printed, "the user's process did not start: " + user.stderr.read()[-3000:]
        before = _snapshots(printed)[0]
        assert USER_DATASET in before["datasets"]
        assert _other_fiftyone_database_services(), "the user's process started no service"

        inner = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", INNER_TEST],
            cwd=repo_root,
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert inner.returncode == 0, (inner.stdout + inner.stderr)[-3000:]

        out, err = user.communicate("snapshot\n", timeout=120)
        assert user.returncode == 0, err[-3000:]
        after = _snapshots(out)[-1]
    finally:
        if user.poll() is None:
            user.kill()
        _stop_everything_using(str(user_dir))

    assert INNER_DATASET not in after["datasets"], "the test session wrote into the user's DB"
    assert after["datasets"] == before["datasets"]
    assert after["counts"] == before["counts"]
    assert after["hash"] == before["hash"]
