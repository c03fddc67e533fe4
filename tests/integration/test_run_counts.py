"""How many samples a run has done, as ``run_state``, the activity list and the panel's Runs
table say (issue 19 item 9, issue 20 item 6): counted from the labels the run stored, so a
run whose process was killed (``kill -9``: it never saved its counter) shows what it wrote,
and a resumed run counts the samples of both processes.

The workers and the dataset are those of ``test_reliability_runs`` (fake models that sleep
per image, killed at a known point)."""

from __future__ import annotations

import signal

import pytest
import test_reliability_runs
from test_reliability_runs import PLUGIN, _start, _wait

pytestmark = pytest.mark.integration

TARGETS = 6  # the painted dataset's 8 samples less the 2 holding references

# that module's fixture, registered in this one under this name
_runs_dataset = test_reliability_runs.runs_dataset


@pytest.fixture
def kill_dataset(request):
    """The dataset of ``test_reliability_runs`` (bank ``colours``, a reference run)."""
    return request.getfixturevalue("_runs_dataset")


def _written(dataset, field):
    return dataset._sample_collection.count_documents({field: {"$ne": None}})


def _kill_after_two(worker, dataset, field):
    try:
        assert _wait(lambda: _written(dataset, field) >= 2, proc=worker)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    written = _written(dataset, field)
    assert 2 <= written < TARGETS, "killed too late: the test cannot show a partial run"
    return written


def _rows(dataset):
    from fiftyone_ntt.fiftyone.app.activity import list_activity
    from fiftyone_ntt.fiftyone.app.panel_state import run_rows

    # The panel shows one row per output field (its latest attempt: the run, or the
    # delegated operation that wrote it), so its rows are looked up by field.
    return {r["id"]: r for r in list_activity(dataset)}, {r["field"]: r for r in run_rows(dataset)}


@pytest.mark.parametrize("mode", ["delegated", "sdk"])
def test_a_killed_run_counts_what_it_wrote_and_a_resumed_one_counts_all(kill_dataset, mode):
    import fiftyone.operators as foo

    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.app.activity import mark_failed
    from fiftyone_ntt.fiftyone.runs.record import run_state

    dataset = kill_dataset
    op_id = None
    if mode == "delegated":
        queued = foo.execute_operator(
            f"{PLUGIN}/ntt_segment",
            dataset=dataset,
            params={"bank": "colours", "out_field": "ntt", "points_per_side": 16, "batch_size": 1},
            request_delegation=True,
        )
        op_id = str(queued.result["id"])
    written = _kill_after_two(_start(mode, dataset, "ntt", sleep=0.4), dataset, "ntt")

    state = run_state(dataset, "ntt")
    assert state["status"] == "interrupted", state
    assert (state["processed"], state["total"]) == (written, TARGETS), state
    activity, panel = _rows(dataset)
    run = activity["run:ntt"]
    assert run["state"] == "interrupted" and (run["done"], run["total"]) == (written, TARGETS)
    assert panel["ntt"]["status"] == f"interrupted {written} / {TARGETS}", panel
    if op_id is not None:  # the operation's row says the same as its run's
        assert activity[op_id]["state"] == "interrupted"
        assert (activity[op_id]["done"], activity[op_id]["total"]) == (written, TARGETS)
        mark_failed(op_id)  # what the panel offers for it, before a resume

    # resumed in this process: the count is every sample written, by either process
    summary = nf.segment(dataset, "colours", "ntt", points_per_side=16, progress=False)
    assert summary["done_before"] == written and summary["processed"] == TARGETS - written
    state = run_state(dataset, "ntt")
    assert state["status"] == "completed" and state["processed"] == TARGETS, state
    activity, panel = _rows(dataset)
    assert (activity["run:ntt"]["done"], activity["run:ntt"]["total"]) == (TARGETS, TARGETS)
    assert panel["ntt"]["status"] == f"completed {TARGETS} / {TARGETS}", panel


def test_the_count_is_of_this_runs_labels_only(kill_dataset):
    """Labels of an earlier run with other settings in the same field are not this run's:
    an overwrite that is stopped counts only what it rewrote."""
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.runs.record import run_state

    dataset = kill_dataset
    nf.segment(dataset, "colours", "ntt", points_per_side=16, progress=False)
    assert run_state(dataset, "ntt")["processed"] == TARGETS

    class Stop(Exception):
        pass

    def stop_after_three(done, total):
        if done == 3:
            raise Stop

    with pytest.raises(Stop):  # other settings: another fingerprint
        nf.segment(
            dataset,
            "colours",
            "ntt",
            points_per_side=8,
            batch_size=1,
            overwrite=True,
            progress=stop_after_three,
        )
    state = run_state(dataset, "ntt")
    assert state["status"] == "interrupted" and state["processed"] == 3, state


@pytest.fixture
def video_dataset(make_dataset, tmp_path, monkeypatch):
    from ntt_video import fill_video_dataset

    monkeypatch.setenv("FIFTYONE_NTT_TEST_MODELS", "fake")
    monkeypatch.setenv("FIFTYONE_NTT_BANKS_DIR", str(tmp_path / "banks"))
    return fill_video_dataset(make_dataset("ntt-video"), tmp_path)


def test_a_run_over_video_frames_counts_frames_written(video_dataset):
    """A run into ``frames.<field>`` counts the frames holding its predictions, also after
    a resume (the second process's counter holds only its own frames)."""
    from ntt_video import FRAMES

    import fiftyone_ntt.fiftyone as nf

    dataset = video_dataset
    nf.build_bank(dataset, "frames.ground_truth", "squares")

    class Stop(Exception):
        pass

    def stop_after_ten(done, total):
        if done == 10:
            raise Stop

    with pytest.raises(Stop):
        nf.segment(dataset, "squares", "ntt", batch_size=4, progress=stop_after_ten)
    assert nf.run_state(dataset, "ntt")["processed"] == dataset.count("frames.ntt") == 10
    nf.segment(dataset, "squares", "ntt", batch_size=4, progress=False)
    state = nf.run_state(dataset, "ntt")
    assert state["status"] == "completed" and state["processed"] == FRAMES - 1, state
