"""Tracked video runs (issue 25, docs/method.md §17) on a real MongoDB: the moving-squares
video segmented with ``keyframe_every`` K through ``segment`` (fake models, the fake colour
propagator): track ids in ``Detection.index``, ``ntt_track_source``, the per-video summary,
resume per video, ID switches against ground truth with instance ids."""

from __future__ import annotations

import pytest
from ntt_video import FRAMES, boxes, fill_video_dataset, iou
from test_video_frames import _found_boxes

pytestmark = pytest.mark.integration

IDS = {"red": 1, "green": 2}  # ground-truth instance ids


@pytest.fixture
def video_dataset(make_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("FIFTYONE_NTT_TEST_MODELS", "fake")
    monkeypatch.setenv("FIFTYONE_NTT_BANKS_DIR", str(tmp_path / "banks"))
    dataset = fill_video_dataset(make_dataset("ntt-video-tracks"), tmp_path, videos=2)
    for sample in dataset:
        for frame in sample.frames.values():
            for detection in frame.ground_truth.detections:
                detection.index = IDS[detection.label]
        sample.save()
    import fiftyone_ntt.fiftyone as nf

    nf.build_bank(dataset, "frames.ground_truth", "squares")
    return dataset


def test_tracked_run_writes_stable_track_ids_and_a_summary(video_dataset):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.evaluation.tracking import count_track_switches

    dataset = video_dataset
    summary = nf.segment(dataset, "squares", "tracks", keyframe_every=5, progress=None)
    written = 2 * FRAMES - 1  # frame 1 of the first video holds the references
    assert summary["status"] == "completed" and summary["failed"] == 0
    assert summary["processed"] == written and summary["total"] == written
    tracking = summary["tracking"]
    assert tracking["keyframe_every"] == 5 and tracking["max_objects"] == 16
    assert tracking["propagator"]["family"] == "fake-color-propagator"
    # keyframes 1, 6, 11, 16, 21 of each video: NTT runs on 5 frames in 24
    assert tracking["keyframes"] == 10
    for sample in dataset:
        video = tracking["videos"][sample.id]
        assert video["tracks"] == 2
        spans = {s["label"]: (s["first_frame"], s["last_frame"]) for s in video["spans"]}
        assert spans == {"red": (1, FRAMES), "green": (1, FRAMES)}

    for sample in dataset:
        ids = {}
        for number, frame in sample.frames.items():
            if frame.tracks is None:
                assert number == 1 and sample.id == dataset.first().id  # the reference frame
                continue
            sources = {d.ntt_track_source for d in frame.tracks.detections}
            assert sources == {"detected" if number % 5 == 1 else "propagated"}, number
            for detection in frame.tracks.detections:
                ids.setdefault(detection.label, set()).add(detection.index)
            found = _found_boxes(frame, "tracks")
            for name, box in boxes(number).items():
                assert iou(found[name], box) > 0.8, (number, name)
        # one id per square over all frames of the video (ids count from 1 per video)
        assert len(ids["red"]) == len(ids["green"]) == 1
        assert ids["red"] | ids["green"] == {1, 2}

    switches = count_track_switches(dataset, "frames.tracks", "frames.ground_truth")
    assert switches["id_switches"] == 0 and switches["matches"] == 2 * written

    # per-frame evaluation as today
    results = nf.evaluate(dataset, "tracks", "ev", exclude_references=True)
    assert results["mAP"] > 0.9 and results["fn"] == 0


def test_tracked_run_resumes_per_video_and_k_is_part_of_the_run(video_dataset):
    import fiftyone_ntt.fiftyone as nf

    dataset = video_dataset
    nf.segment(dataset, "squares", "tracks", keyframe_every=4, progress=None)
    again = nf.segment(dataset, "squares", "tracks", keyframe_every=4, progress=None)
    assert again["processed"] == 0 and again["done_before"] == 2 * FRAMES - 1

    second = dataset.skip(1).first()
    second.frames[7]["tracks"] = None
    second.save()
    again = nf.segment(dataset, "squares", "tracks", keyframe_every=4, progress=None)
    # the second video is redone whole, the first one is left as it was
    assert again["processed"] == FRAMES and again["done_before"] == FRAMES - 1
    assert list(again["tracking"]["videos"]) == [second.id]
    assert dataset.skip(1).first().frames[7].tracks.detections[0].index in (1, 2)

    with pytest.raises(ValueError, match="holds predictions of another run"):
        nf.segment(dataset, "squares", "tracks", keyframe_every=8, progress=None)
    with pytest.raises(ValueError, match="holds predictions of another run"):
        nf.segment(dataset, "squares", "tracks", progress=None)  # K=1: another run too


def test_segment_operator_video_form_tracks_with_keyframes(video_dataset):
    import json

    from test_ntt_operators import _form, _run

    dataset = video_dataset
    params = {"bank": "squares", "out_field": "tracks", "keyframe_every": 6}
    form = json.dumps(_form("ntt_segment", dataset, params))
    assert "Keyframe every K frames" in form and "Detection.index" in form
    assert '"invalid": true' not in form
    bad = json.dumps(_form("ntt_segment", dataset, {**params, "keyframe_every": 0}))
    assert '"invalid": true' in bad

    summary = _run("ntt_segment", dataset, params).result
    assert summary["status"] == "completed" and summary["tracking"]["keyframe_every"] == 6
    assert summary["tracking"]["keyframes"] == 8  # frames 1, 7, 13, 19 of each video
    indexes = dataset.distinct("frames.tracks.detections.index")
    sources = dataset.distinct("frames.tracks.detections.ntt_track_source")
    assert indexes == [1, 2] and sources == ["detected", "propagated"]
