"""Reliability (issue 6): runs that are killed or overlap.

Worker processes (``python -c``) share this session's MongoDB and use the fake models with a
sleep per image, so that they can be killed or overlapped at a known point.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from ntt_snapshots import detections_by_sample

pytestmark = pytest.mark.integration

GT = "ground_truth"
PLUGIN = "@fiftyone-ntt/no-time-to-train"

WORKER = r"""
import json, sys, time
mode, name, field, sleep = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
import fiftyone_ntt.fiftyone.dataset.model_cache as models
from fiftyone_ntt.testing import ColorEncoder, RegionProposer

class Slow(RegionProposer):
    def embed(self, pixels):
        time.sleep(sleep)
        return super().embed(pixels)

models.get_models = lambda *a, **k: (ColorEncoder(), Slow())
import fiftyone as fo
if mode == "delegated":
    from fiftyone.operators.delegated import DelegatedOperationService
    for result in DelegatedOperationService().execute_queued_operations(dataset_name=name):
        print(json.dumps({"error": str(getattr(result, "error", None))}))
else:
    from fiftyone_ntt.fiftyone.runs.job import segment
    summary = segment(fo.load_dataset(name), "colours", field, points_per_side=16, batch_size=1)
    print(json.dumps({k: summary[k] for k in ("status", "processed", "done_before")}))
"""


def _worker_env():
    import fiftyone as fo
    import fiftyone.core.odm.database as fod

    host, port = fod.get_db_client().address
    env = dict(os.environ)
    env["FIFTYONE_DATABASE_URI"] = f"mongodb://{host}:{port}"
    env["FIFTYONE_DATABASE_NAME"] = fo.config.database_name
    return env


def _start(mode, dataset, field, sleep):
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, mode, dataset.name, field, str(sleep)],
        env=_worker_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _protected_hashes(dataset):
    import hashlib

    import bson

    fields = {"filepath": 1, "tags": 1, GT: 1, "notes": 1, "metadata": 1}
    digest = hashlib.sha256()
    for doc in dataset._sample_collection.find({}, fields).sort("_id", 1):
        digest.update(bson.encode({k: doc.get(k) for k in fields}))
    return digest.hexdigest()


@pytest.fixture
def runs_dataset(painted_dataset):
    """The painted dataset (persistent, so that worker processes never delete it on exit), a
    bank ``colours``, an unrelated field, and the uninterrupted predictions in ``ref``."""
    import fiftyone as fo

    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    dataset.persistent = True
    dataset.add_sample_field("notes", fo.StringField)
    dataset.set_values("notes", [f"note {i}" for i in range(len(dataset))])
    dataset.untag_labels("ntt:ref", label_fields=[GT])  # only the first two references
    samples = list(dataset.select_fields(GT))
    ids = [
        samples[0][GT].detections[0].id,
        samples[0][GT].detections[1].id,
        samples[1][GT].detections[0].id,
    ]
    dataset.select_labels(ids=ids, fields=GT).tag_labels("ntt:ref", label_fields=[GT])
    nf.build_bank(dataset, GT, "colours")
    summary = nf.segment(dataset, "colours", "ref", points_per_side=16)
    assert summary["processed"] == 6
    return dataset


def _wait(predicate, timeout=60.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"worker ended early ({proc.returncode}): {out}\n{err[-3000:]}")
        time.sleep(0.05)
    return False


def test_killed_delegated_run_resumes_to_the_same_predictions(runs_dataset):
    import fiftyone.operators as foo

    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.runs.record import run_state

    dataset = runs_dataset
    reference = detections_by_sample(dataset, "ref")
    before = _protected_hashes(dataset)
    queued = foo.execute_operator(
        f"{PLUGIN}/ntt_segment",
        dataset=dataset,
        params={"bank": "colours", "out_field": "ntt", "points_per_side": 16, "batch_size": 1},
        request_delegation=True,
    )
    assert queued.delegated
    worker = _start("delegated", dataset, "ntt", sleep=0.4)
    try:
        written = lambda: dataset._sample_collection.count_documents({"ntt": {"$ne": None}})  # noqa: E731
        assert _wait(lambda: written() >= 2, proc=worker)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    dataset.reload()
    written = dataset.exists("ntt").values("id")
    assert 2 <= len(written) < 6, "killed too late: the test cannot show a resume"

    # the samples written so far are intact: exactly what an uninterrupted run writes
    partial = detections_by_sample(dataset, "ntt")
    for sample_id in written:
        assert partial[sample_id] == reference[sample_id]
    # the run's state says it did not finish (its worker is gone)
    state = run_state(dataset, "ntt")
    assert state["finished"] is False and state["status"] == "interrupted", state
    assert _protected_hashes(dataset) == before

    # rerun: resumes (the dead worker's claim on the field is stale) and completes
    summary = nf.segment(dataset, "colours", "ntt", points_per_side=16)
    assert summary["status"] == "completed"
    assert summary["done_before"] == len(written)
    assert summary["processed"] == 6 - len(written)
    assert detections_by_sample(dataset, "ntt") == reference
    assert run_state(dataset, "ntt")["finished"] is True
    assert _protected_hashes(dataset) == before


def test_two_runs_into_different_fields_at_the_same_time(runs_dataset):
    dataset = runs_dataset
    reference = detections_by_sample(dataset, "ref")
    before = _protected_hashes(dataset)
    workers = [_start("segment", dataset, field, sleep=0.1) for field in ("a", "b")]
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err[-3000:]
        assert json.loads(out.strip().splitlines()[-1])["status"] == "completed"
    dataset.reload()
    assert detections_by_sample(dataset, "a") == reference
    assert detections_by_sample(dataset, "b") == reference
    assert _protected_hashes(dataset) == before


def test_second_run_into_the_same_field_is_refused(runs_dataset):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.runs.claims import FieldLockedError, field_lock

    dataset = runs_dataset
    reference = detections_by_sample(dataset, "ref")
    before = _protected_hashes(dataset)
    worker = _start("segment", dataset, "same", sleep=0.4)
    try:
        assert _wait(lambda: field_lock(dataset, "same") is not None, proc=worker)
        with pytest.raises(FieldLockedError) as error:
            nf.segment(dataset, "colours", "same", points_per_side=16, overwrite=True)
        message = str(error.value)
        assert "'same'" in message and str(worker.pid) in message and "wait" in message
        out, err = worker.communicate(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, err[-3000:]
    assert json.loads(out.strip().splitlines()[-1])["processed"] == 6
    dataset.reload()
    # never interleaved: every sample is the first run's, and the lock is gone
    assert detections_by_sample(dataset, "same") == reference
    assert field_lock(dataset, "same") is None
    assert _protected_hashes(dataset) == before


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize(
    "holder,refused",
    [
        (lambda: {"pid": os.getppid(), "host": socket.gethostname(), "age": 0}, True),
        (lambda: {"pid": _dead_pid(), "host": socket.gethostname(), "age": 0}, False),
        (lambda: {"pid": 1, "host": "elsewhere", "age": 5}, True),
        (lambda: {"pid": 1, "host": "elsewhere", "age": 3600}, False),
    ],
    ids=["live-here", "dead-here", "fresh-elsewhere", "stale-elsewhere"],
)
def test_field_lock_stale_detection(runs_dataset, holder, refused):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.dataset.store import execution_store as _lock_store
    from fiftyone_ntt.fiftyone.runs.claims import FieldLockedError, field_lock

    dataset = runs_dataset
    h = holder()
    now = time.time()
    _lock_store(dataset).set(
        "lock:x",
        {
            "owner": "test",
            "pid": h["pid"],
            "host": h["host"],
            "started": now - h["age"],
            "heartbeat": now - h["age"],
        },
    )
    if refused:
        with pytest.raises(FieldLockedError, match="being written"):
            nf.segment(dataset, "colours", "x", points_per_side=16)
        assert not dataset.has_sample_field("x")
        _lock_store(dataset).delete("lock:x")
    else:
        assert nf.segment(dataset, "colours", "x", points_per_side=16)["processed"] == 6
    assert field_lock(dataset, "x") is None
