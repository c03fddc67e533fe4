"""The plugin's operators on a video dataset (issue 12 §3), through
``fiftyone.operators.execute_operator`` on a real MongoDB with the fake models: build a bank
from frame references, segment the frames (immediate and delegated), evaluate on frame-level
ground truth; the forms say that predictions go to ``frames.<field>``."""

from __future__ import annotations

import json

import pytest
from ntt_video import FRAMES, fill_video_dataset
from test_ntt_operators import _form, _run, _run_queue

pytestmark = pytest.mark.integration


@pytest.fixture
def video_dataset(make_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("FIFTYONE_NTT_TEST_MODELS", "fake")
    monkeypatch.setenv("FIFTYONE_NTT_BANKS_DIR", str(tmp_path / "banks"))
    return fill_video_dataset(make_dataset("ntt-video-ops"), tmp_path, videos=2)


def _build(dataset):
    params = {"gt_field": "frames.ground_truth", "bank_key": "squares", "tag": "ntt:ref"}
    return _run("ntt_build_bank", dataset, params).result


def test_video_operators_immediate(video_dataset, field_hash):
    dataset = video_dataset
    note_before = field_hash(dataset, "note")
    form = json.dumps(_form("ntt_build_bank", dataset))
    assert "frames.ground_truth" in form
    built = _build(dataset)
    assert built["num_references"] == 2

    form = json.dumps(_form("ntt_segment", dataset, {"bank": "squares", "out_field": "ntt"}))
    assert "frames.ntt" in form
    assert "2 video(s), 48 frame(s) in the target" in form, form
    assert "1 hold the bank's references" in form and "47 will be segmented" in form
    assert "num_shards" in form and "whole videos" in form  # a shard = a set of videos

    result = _run("ntt_segment", dataset, {"bank": "squares", "out_field": "frames.ntt"})
    summary = result.result
    assert summary["unit"] == "frames" and summary["out_field"] == "frames.ntt"
    assert summary["videos"] == 2 and summary["processed"] == 2 * FRAMES - 1
    assert dataset.count("frames.ntt.detections") == 2 * (2 * FRAMES - 1)

    # the rerun resumes: nothing left
    again = _run("ntt_segment", dataset, {"bank": "squares", "out_field": "ntt"}).result
    assert again["processed"] == 0 and again["done_before"] == 2 * FRAMES - 1

    form = json.dumps(_form("ntt_evaluate", dataset, {}))
    assert "frames.ntt" in form and "frames.ground_truth" in form
    evaluated = _run("ntt_evaluate", dataset, {"pred_field": "frames.ntt", "eval_key": "ev"})
    evaluation = evaluated.result
    assert evaluation["gt_field"] == "frames.ground_truth"
    assert evaluation["num_frames"] == 2 * FRAMES - 1  # the reference frame left out
    assert evaluation["tp"] == 2 * (2 * FRAMES - 1) and evaluation["fp"] == 0
    assert evaluation["mAP"] > 0.9
    assert field_hash(dataset, "note") == note_before


def test_video_segment_delegated(video_dataset):
    dataset = video_dataset
    _build(dataset)
    queued = _run(
        "ntt_segment",
        dataset,
        {"bank": "squares", "out_field": "ntt", "batch_size": 5},
        request_delegation=True,
    )
    assert queued.delegated
    assert not dataset.has_frame_field("ntt")  # queued, nothing written yet
    _, results = _run_queue(dataset)
    summary = results[0].result
    assert summary["status"] == "completed" and summary["processed"] == 2 * FRAMES - 1
    dataset.reload()
    assert dataset.count("frames.ntt") == 2 * FRAMES - 1
    import fiftyone_ntt.fiftyone as nf

    assert nf.run_state(dataset, "ntt")["status"] == "completed"
