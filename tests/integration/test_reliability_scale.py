"""Reliability of split runs and batches (issue 13 §2–3): bad shard specs and batch sizes,
claims on shards (the same shard twice, a whole-field run over live shards, another split,
stale shards), shards of an empty view. Each refusal names the value or the holder and the
fix; ground truth, tags and unrelated fields are hash-identical afterwards."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.integration

GT = "ground_truth"
FIELD = "pred"

WORKER = r"""
import json, sys, time
name, field, index, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
import fiftyone_ntt.fiftyone.dataset.model_cache as models
from fiftyone_ntt.testing import ColorEncoder, RegionProposer

class Slow(RegionProposer):
    def embed(self, pixels):
        time.sleep(0.5)
        return super().embed(pixels)

models.get_models = lambda *a, **k: (ColorEncoder(), Slow())
import fiftyone as fo
from fiftyone_ntt.fiftyone.runs.job import segment
summary = segment(fo.load_dataset(name), "colours", field, shard=(index, count),
                  batch_size=1, progress=False)
print(json.dumps({k: summary[k] for k in ("status", "processed", "total")}))
"""


def _protected_hashes(dataset):
    import hashlib

    import bson

    fields = {"filepath": 1, "tags": 1, GT: 1, "notes": 1, "metadata": 1}
    digest = hashlib.sha256()
    for doc in dataset._sample_collection.find({}, fields).sort("_id", 1):
        digest.update(bson.encode({k: doc.get(k) for k in fields}))
    return digest.hexdigest()


@pytest.fixture
def scale_dataset(painted_dataset):
    """The painted dataset (persistent for worker processes), a bank ``colours`` with a
    cheap config and an unrelated field ``notes``."""
    import fiftyone as fo

    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.config import NTTConfig

    dataset = painted_dataset
    dataset.persistent = True
    dataset.add_sample_field("notes", fo.StringField)
    dataset.set_values("notes", [f"note {i}" for i in range(len(dataset))])
    nf.build_bank(dataset, GT, "colours", config=NTTConfig(points_per_side=8, semantic_size=224))
    return dataset


def _segment(dataset, field=FIELD, **kwargs):
    import fiftyone_ntt.fiftyone as nf

    return nf.segment(dataset, "colours", field, progress=False, **kwargs)


# ------------------------------------------------------------------- bad specifications

SHARD_CASES = {
    "index = n": ((3, 3), ["shard=(3, 3)", "i=3", "0..2"]),
    "index > n": ((5, 3), ["shard=(5, 3)", "0..2"]),
    "negative index": ((-1, 3), ["i=-1", "0..2"]),
    "n = 0": ((0, 0), ["n=0", "at least 1"]),
    "negative n": ((0, -2), ["n=-2", "at least 1"]),
    "not integers": (("a", 3), ["'a'", "pair of integers", "shard=(0, 3)"]),
    "fractional index": ((0.5, 2), ["0.5", "pair of integers"]),
    "one number": ((1,), ["(1,)", "pair of integers"]),
    "a bare int": (3, ["shard=3", "pair of integers"]),
}

BATCH_IMAGES_CASES = {
    "zero": (0, ["batch_images=0", "positive integer"]),
    "negative": (-2, ["batch_images=-2", "positive integer"]),
    "a bool": (True, ["batch_images=True", "positive integer"]),
    "a string": ("4", ["batch_images='4'", "positive integer"]),
}


@pytest.mark.parametrize("case", list(SHARD_CASES))
def test_bad_shard_spec_is_refused_before_anything_is_written(scale_dataset, case):
    dataset = scale_dataset
    before = _protected_hashes(dataset)
    shard, words = SHARD_CASES[case]
    with pytest.raises(ValueError) as error:
        _segment(dataset, shard=shard)
    for word in words:
        assert word in str(error.value), (word, str(error.value))
    assert not dataset.has_sample_field(FIELD) and FIELD not in dataset.list_runs()
    assert _protected_hashes(dataset) == before


@pytest.mark.parametrize("case", list(BATCH_IMAGES_CASES))
def test_bad_batch_images_is_refused(scale_dataset, case):
    dataset = scale_dataset
    before = _protected_hashes(dataset)
    value, words = BATCH_IMAGES_CASES[case]
    with pytest.raises(ValueError) as error:
        _segment(dataset, batch_images=value)
    for word in words:
        assert word in str(error.value), (word, str(error.value))
    assert not dataset.has_sample_field(FIELD)
    assert _protected_hashes(dataset) == before


def _queue_bank_object(dataset):
    from fiftyone_ntt.fiftyone import load_bank

    return (load_bank(dataset, "colours"), FIELD, 3), ["MemoryBank", "key of a bank"]


QUEUE_CASES = {
    "no shards": lambda d: (("colours", FIELD, 0), ["n=0", "at least 1"]),
    "unknown bank": lambda d: (("nope", FIELD, 2), ["'nope'", "build_bank"]),
    "a bank object": _queue_bank_object,
    "ground-truth field": lambda d: (("colours", GT, 2), ["ground-truth field"]),
}


@pytest.mark.parametrize("case", list(QUEUE_CASES))
def test_queue_shards_refuses_bad_input_and_queues_nothing(scale_dataset, case):
    from fiftyone.operators.delegated import DelegatedOperationService

    from fiftyone_ntt.fiftyone.runs.shards import queue_shards

    dataset = scale_dataset
    before = _protected_hashes(dataset)
    service = DelegatedOperationService()
    queued = len(service.list_operations(dataset_name=dataset.name))
    args, words = QUEUE_CASES[case](dataset)
    with pytest.raises(ValueError) as error:
        queue_shards(dataset, *args)
    for word in words:
        assert word in str(error.value), (word, str(error.value))
    assert len(service.list_operations(dataset_name=dataset.name)) == queued
    assert _protected_hashes(dataset) == before


# ---------------------------------------------------------------------------- claims


def _hold(dataset, shard, pid=None, host=None, age=0.0):
    from fiftyone_ntt.fiftyone.dataset.store import execution_store
    from fiftyone_ntt.fiftyone.runs.claims import lock_key

    now = time.time()
    execution_store(dataset).set(
        lock_key(FIELD, shard),
        {
            "owner": "test",
            "pid": os.getppid() if pid is None else pid,
            "host": host or socket.gethostname(),
            "started": now - age,
            "heartbeat": now - age,
        },
    )


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


#: held claim -> the run attempted, and the words of its refusal (None: it must complete)
CLAIM_CASES = {
    "same shard live": ((1, 3), (1, 3), ["shard 2/3", "'pred'", "being written", "wait"]),
    "whole field over a live shard": ((2, 3), None, ["shard 3/3", "wait for the shards"]),
    "shard over a live whole-field run": (None, (0, 3), ["the whole field", "wait"]),
    "another split over live shards": ((1, 3), (0, 2), ["shard 2/3", "same split (3 shards)"]),
    "another shard of the same split": ((0, 3), (1, 3), None),
    "same shard, holder dead": ("dead", (1, 3), None),
    "same shard, stale elsewhere": ("stale", (1, 3), None),
}


@pytest.mark.parametrize("case", list(CLAIM_CASES))
def test_claims_between_shards_and_whole_field_runs(scale_dataset, case):
    from fiftyone_ntt.fiftyone.dataset.store import execution_store
    from fiftyone_ntt.fiftyone.runs.claims import FieldLockedError, field_lock, lock_key

    dataset = scale_dataset
    held, attempted, words = CLAIM_CASES[case]
    if held == "dead":
        _hold(dataset, (1, 3), pid=_dead_pid())
        held = (1, 3)
    elif held == "stale":
        _hold(dataset, (1, 3), pid=1, host="elsewhere", age=3600)
        held = (1, 3)
    else:
        _hold(dataset, held, pid=os.getppid())
    before = _protected_hashes(dataset)
    try:
        if words is None:
            summary = _segment(dataset, shard=attempted)
            assert summary["status"] == "completed" and summary["shard"] == list(attempted)
            assert field_lock(dataset, FIELD, attempted) is None  # released
        else:
            with pytest.raises(FieldLockedError) as error:
                _segment(dataset, shard=attempted)
            message = str(error.value)
            for word in [*words, str(os.getppid())]:
                assert word in message, (word, message)
            assert not dataset.has_sample_field(FIELD)
            # its own claim released (the held one, when the same, stays the holder's)
            lock = field_lock(dataset, FIELD, attempted)
            assert lock is None or lock["owner"] == "test", lock
    finally:
        execution_store(dataset).delete(lock_key(FIELD, held))
    assert _protected_hashes(dataset) == before


def test_two_workers_claiming_the_same_shard(scale_dataset):
    """A real worker process holds shard 1/2; the same shard here is refused naming it, the
    other shard runs alongside, and the worker finishes its shard untouched."""
    from fiftyone_ntt.fiftyone.runs.claims import FieldLockedError, field_lock
    from fiftyone_ntt.fiftyone.runs.record import run_state

    dataset = scale_dataset
    before = _protected_hashes(dataset)
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, dataset.name, FIELD, "0", "2"],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while field_lock(dataset, FIELD, (0, 2)) is None:
            assert worker.poll() is None, worker.communicate()[1][-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.1)
        with pytest.raises(FieldLockedError) as error:
            _segment(dataset, shard=(0, 2))
        assert str(worker.pid) in str(error.value) and "shard 1/2" in str(error.value)
        other = _segment(dataset, shard=(1, 2))
        assert other["status"] == "completed"
        out, err = worker.communicate(timeout=180)
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
    assert worker.returncode == 0, err[-3000:]
    done = json.loads(out.strip().splitlines()[-1])
    assert done["status"] == "completed" and done["processed"] == done["total"]
    state = run_state(dataset, FIELD)
    assert state["status"] == "completed" and state["num_shards"] == 2, state
    assert state["processed"] == len(dataset) - 2  # references skipped, every other once
    assert _protected_hashes(dataset) == before


# ------------------------------------------------------------------------ empty shards


def test_shards_of_an_empty_view_complete_with_nothing(scale_dataset):
    from fiftyone_ntt.fiftyone.runs.record import run_state

    dataset = scale_dataset
    before = _protected_hashes(dataset)
    for index in range(3):
        summary = _segment(dataset.limit(0), shard=(index, 3))
        assert summary["status"] == "completed" and summary["total"] == 0
    state = run_state(dataset, FIELD)
    assert state["status"] == "completed" and state["processed"] == 0
    assert [s["status"] for s in state["shards"]] == ["completed"] * 3
    assert dataset.count(f"{FIELD}.detections") == 0
    assert _protected_hashes(dataset) == before


def test_more_shards_than_samples_gives_the_unsplit_field(scale_dataset, field_hash):
    """Some of 11 shards of 8 samples are empty; together they write exactly the unsplit
    run's field."""
    from fiftyone_ntt.fiftyone.runs.record import run_state

    dataset = scale_dataset
    _segment(dataset, "whole")
    totals = [_segment(dataset, shard=(i, 11))["total"] for i in range(11)]
    assert 0 in totals and sum(totals) == len(dataset) - 2
    assert run_state(dataset, FIELD)["status"] == "completed"
    assert dataset.values(FIELD) is not None
    whole = [
        None if d is None else [(x.label, x.confidence, x.bounding_box) for x in d.detections]
        for d in dataset.values("whole")
    ]
    split = [
        None if d is None else [(x.label, x.confidence, x.bounding_box) for x in d.detections]
        for d in dataset.values(FIELD)
    ]
    assert split == whole


def _count_cases() -> dict[str, int]:
    """How many bad-input cases this file covers (reported in the issue)."""
    return {
        "shard specs": len(SHARD_CASES),
        "batch_images": len(BATCH_IMAGES_CASES),
        "queue_shards": len(QUEUE_CASES),
        "claims": len(CLAIM_CASES) + 1,  # + two real workers on one shard
        "empty shards": 2,
    }


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(_count_cases()))


def test_deleting_a_split_run_forgets_its_shards(scale_dataset):
    """After ``delete_run``, a new split must not show the old shards as completed."""
    from fiftyone_ntt.fiftyone.dataset.store import execution_store
    from fiftyone_ntt.fiftyone.runs.record import run_state

    dataset = scale_dataset
    for index in range(2):
        _segment(dataset, shard=(index, 2))
    assert run_state(dataset, FIELD)["status"] == "completed"
    dataset.delete_run(FIELD)
    assert not dataset.has_sample_field(FIELD)
    assert not [k for k in execution_store(dataset).list_keys() if FIELD in k]
    _segment(dataset, shard=(0, 2))
    state = run_state(dataset, FIELD)
    assert [s["status"] for s in state["shards"]] == ["completed", "none"]
    assert state["status"] == "partial" and state["finished"] is False
