"""One segmentation split into 3 shards, run by 3 real ``fiftyone delegated launch``
workers on this session's database (issue 13 §3).

Each worker is FiftyOne's own CLI (``fiftyone.core.cli.main``, ``delegated launch``) in a
subprocess that inherits this session's environment (database URI, plugins folder,
``FIFTYONE_NTT_TEST_MODELS=fake``); before starting the CLI it wraps the fake proposer with a
delay read from a file (so that the test can slow the workers down and kill one mid-shard)
and logs every image it reads (so that the test sees each sample segmented exactly once).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ntt_snapshots import detections_by_sample

pytestmark = pytest.mark.integration

GT = "ground_truth"
N_SAMPLES = 60
REPO = Path(__file__).resolve().parents[2]

WORKER = r"""
import os, sys, time
delay_file, log_file = sys.argv[1], sys.argv[2]
import fiftyone_ntt.fiftyone.dataset.model_cache as models
import fiftyone_ntt.images as images
from fiftyone_ntt.testing import ColorEncoder, RegionProposer

class Slow(RegionProposer):
    def embed(self, pixels):
        try:
            time.sleep(float(open(delay_file).read() or 0))
        except (OSError, ValueError):
            pass
        return super().embed(pixels)

models.get_models = lambda *a, **k: (ColorEncoder(), Slow())
_load = images.load_image

def load_image(path, *args, **kwargs):
    with open(log_file, "a") as log:
        log.write(f"{os.getpid()} {path}\n")
    return _load(path, *args, **kwargs)

images.load_image = load_image
from fiftyone.core.cli import main
sys.argv = ["fiftyone", "delegated", "launch"]
main()
"""


@pytest.fixture
def sixty(make_dataset, fo_session, tmp_path, monkeypatch):
    """60 painted samples (the 8 layouts in turn), references on samples 0 and 1, a bank
    ``colours`` and the unsplit predictions in ``ref``."""
    import fiftyone as fo
    from ntt_painted import PAINT_LAYOUTS, REFERENCE_POSITIONS, _paint_sample

    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.config import NTTConfig

    monkeypatch.setenv("FIFTYONE_NTT_TEST_MODELS", "fake")
    monkeypatch.setenv("FIFTYONE_NTT_BANKS_DIR", str(tmp_path / "banks"))
    dataset = make_dataset("ntt-scale")
    dataset.persistent = True  # worker processes must never delete it on exit
    images = tmp_path / "images"
    images.mkdir()
    dataset.add_samples(
        [
            _paint_sample(fo, images, i, PAINT_LAYOUTS[i % len(PAINT_LAYOUTS)])
            for i in range(N_SAMPLES)
        ],
        progress=False,
    )
    samples = list(dataset.select_fields(GT))
    ids = [samples[s][GT].detections[d].id for s, d in REFERENCE_POSITIONS]
    dataset.select_labels(ids=ids, fields=GT).tag_labels("ntt:ref", label_fields=[GT])
    # small model inputs and 8×8 prompts: the fakes are cheap, the test stays short
    nf.build_bank(dataset, GT, "colours", config=NTTConfig(points_per_side=8, semantic_size=224))
    summary = nf.segment(dataset, "colours", "ref", progress=False)
    assert summary["processed"] == N_SAMPLES - 2
    return dataset


@pytest.fixture
def workers(tmp_path):
    """``start(n)`` launches n workers; all are SIGKILLed at teardown."""
    delay = tmp_path / "delay"
    delay.write_text("0.02")
    log = tmp_path / "reads.log"
    log.write_text("")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    procs: list[subprocess.Popen] = []

    def start(n):
        for _ in range(n):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", WORKER, str(delay), str(log)],
                    env=env,
                    stdout=open(tmp_path / f"worker-{len(procs)}.err", "w"),
                    stderr=subprocess.STDOUT,
                )
            )
        return procs

    def errors() -> str:
        return f"{len(log.read_text().splitlines())} reads\n" + "\n".join(
            f"--- worker {i}:\n" + (tmp_path / f"worker-{i}.err").read_text()[-2000:]
            for i in range(len(procs))
        )

    start.delay = delay
    start.log = log
    start.procs = procs
    start.errors = errors
    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)


def _wait(predicate, timeout, procs=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            raise AssertionError(f"a worker ended early (exit {dead[0].returncode})")
        time.sleep(0.5)
    return False


def test_three_workers_three_shards_then_a_killed_worker_and_its_shard_rerun(sixty, workers):
    from bson import ObjectId

    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.runs.claims import live_claims
    from fiftyone_ntt.fiftyone.runs.record import run_state
    from fiftyone_ntt.fiftyone.runs.shards import queue_shards, shard_bounds

    dataset = sixty
    reference = detections_by_sample(dataset, "ref")
    procs = workers(3)

    # 1. a 3-shard run on 3 workers: every sample exactly once, the unsplit run's field
    ids = queue_shards(dataset, "colours", "split", 3, batch_size=1)
    assert len(set(ids)) == 3
    assert _wait(lambda: run_state(dataset, "split")["status"] == "completed", 240, procs), (
        run_state(dataset, "split"),
        workers.errors(),
    )
    dataset.reload()
    assert detections_by_sample(dataset, "split") == reference
    reads = [line.split() for line in workers.log.read_text().splitlines()]
    paths = [path for _, path in reads]
    assert len(paths) == N_SAMPLES - 2 and len(set(paths)) == N_SAMPLES - 2
    state = run_state(dataset, "split")
    assert [s["status"] for s in state["shards"]] == ["completed"] * 3
    assert sum(s["processed"] for s in state["shards"]) == N_SAMPLES - 2

    # 2. slower workers; SIGKILL the one holding a shard after it wrote a few samples
    workers.delay.write_text("0.3")
    queue_shards(dataset, "colours", "killed", 3, batch_size=1)
    ids = sorted(dataset.values("id"))
    chosen = []

    def a_live_shard_wrote_two():
        """The claim of a shard that has written at least two samples."""
        for shard, holder in sorted(live_claims(dataset, "killed").items(), key=str):
            if shard is None:
                continue
            start, stop = shard_bounds(len(ids), *shard)
            written = dataset._sample_collection.count_documents(
                {"_id": {"$in": [ObjectId(i) for i in ids[start:stop]]}, "killed": {"$ne": None}}
            )
            if written >= 2:
                chosen[:] = [shard, holder]
                return True
        return False

    assert _wait(a_live_shard_wrote_two, 240, procs)
    shard, holder = chosen
    victim = next(p for p in procs if p.pid == holder["pid"])
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    others = [p for p in procs if p is not victim]

    def others_done():
        shards = run_state(dataset, "killed")["shards"]
        return all(s["status"] == "completed" for s in shards if s["index"] != shard[0])

    assert _wait(others_done, 240, others)
    state = run_state(dataset, "killed")
    mine = state["shards"][shard[0]]
    assert mine["status"] == "interrupted", state
    assert state["status"] == "interrupted" and state["finished"] is False
    dataset.reload()
    written = set(dataset.exists("killed").values("id"))
    assert len(written) < N_SAMPLES - 2, "killed too late: the test cannot show a resume"
    partial = detections_by_sample(dataset, "killed")
    assert all(partial[i] == reference[i] for i in written)

    # 3. a rerun of that shard alone (here, in this process) resumes and completes it
    workers.delay.write_text("0")
    summary = nf.segment(dataset, "colours", "killed", shard=shard, progress=False)
    assert summary["status"] == "completed" and summary["done_before"] >= 1
    assert summary["processed"] == summary["total"] - summary["done_before"] >= 1
    assert run_state(dataset, "killed")["status"] == "completed"
    dataset.reload()
    assert detections_by_sample(dataset, "killed") == reference
