"""Sharded video runs (issue 25): a shard is a set of whole videos. The segment operator's
form splits a video target into N delegated operations (``num_shards``), each a tracked
run (``keyframe_every``) over its own videos; run here one after the other by FiftyOne's
own queue executor (what a ``fiftyone delegated launch`` worker does), on a real MongoDB,
with the fake models and the fake colour propagator."""

from __future__ import annotations

import pytest
from ntt_video import FRAMES, fill_video_dataset
from test_ntt_operators import _run, _run_queue

pytestmark = pytest.mark.integration


@pytest.fixture
def two_videos(make_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("FIFTYONE_NTT_TEST_MODELS", "fake")
    monkeypatch.setenv("FIFTYONE_NTT_BANKS_DIR", str(tmp_path / "banks"))
    dataset = fill_video_dataset(make_dataset("ntt-video-shards"), tmp_path, videos=2)
    import fiftyone_ntt.fiftyone as nf

    nf.build_bank(dataset, "frames.ground_truth", "squares")
    return dataset


def _tracks(dataset, field):
    """{video id: {frame number: [(label, index, source, box)]}} of ``frames.<field>``."""
    found = {}
    for sample in dataset.select_fields(f"frames.{field}"):
        found[sample.id] = {
            number: sorted(
                (d.label, d.index, d.ntt_track_source, tuple(round(v, 6) for v in d.bounding_box))
                for d in (frame[field].detections if frame[field] else [])
            )
            for number, frame in sample.frames.items()
        }
    return found


def test_two_shards_of_videos_queued_by_the_form_then_run_one_after_the_other(two_videos):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.runs.record import run_state

    dataset = two_videos
    whole = nf.segment(dataset, "squares", "whole", keyframe_every=5, progress=None)
    assert whole["status"] == "completed"

    params = {"bank": "squares", "out_field": "split", "keyframe_every": 5, "num_shards": 2}
    queued = _run("ntt_segment", dataset, params).result
    assert queued["queued"] == 2 and len(queued["operation_ids"]) == 2
    assert run_state(dataset, "split")["status"] == "none"  # queued only

    _, results = _run_queue(dataset)  # shard 1/2, then shard 2/2
    summaries = [r.result for r in results]
    assert sorted(s["shard"] for s in summaries) == [[0, 2], [1, 2]]
    # a shard is a set of whole videos: every video in one shard
    videos = [set(s["tracking"]["videos"]) for s in summaries]
    assert [len(v) for v in videos] == [1, 1]
    assert videos[0] | videos[1] == set(dataset.values("id")) and not videos[0] & videos[1]
    assert all(s["tracking"]["keyframe_every"] == 5 for s in summaries)

    # the run's record: complete, per shard and as a whole, tracks of every video included
    state = run_state(dataset, "split")
    assert state["status"] == "completed" and state["num_shards"] == 2
    assert [s["status"] for s in state["shards"]] == ["completed", "completed"]
    written = 2 * FRAMES - 1  # frame 1 of the first video holds the references
    assert state["total"] == written and state["processed"] == written
    assert sum(s["processed"] for s in state["shards"]) == written
    assert state["tracking"]["videos"] == whole["tracking"]["videos"]
    assert state["tracking"]["keyframes"] == whole["tracking"]["keyframes"]

    # the same tracks as the unsplit run: ids stable in every video, the same sources
    dataset.reload()
    split, reference = _tracks(dataset, "split"), _tracks(dataset, "whole")
    assert split == reference
    for frames in split.values():
        ids = {(label, index) for found in frames.values() for label, index, _, _ in found}
        assert ids == {("red", 1), ("green", 2)} or ids == {("red", 2), ("green", 1)}

    # a rerun of one shard resumes (nothing to do), K is still part of the run
    again = nf.segment(dataset, "squares", "split", keyframe_every=5, shard=(1, 2), progress=None)
    assert again["processed"] == 0 and again["done_before"] == again["total"] > 0
    with pytest.raises(ValueError, match="holds predictions of another run"):
        nf.segment(dataset, "squares", "split", keyframe_every=4, shard=(0, 2), progress=None)
