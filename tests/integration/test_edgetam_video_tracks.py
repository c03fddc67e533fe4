"""A tracked video run (issue 25, docs/method.md §17.3) with an EdgeTAM bank on a real MongoDB:
the tiny random EdgeTAM, saved as a video checkpoint folder, is the bank's proposer (loaded
the real way, :func:`~fiftyone_ntt.models.edgetam.loader.load_edgetam_proposer`), and the run's
propagator is EdgeTAM's video memory over the same source and the proposer's image weights:
track ids in ``Detection.index``, ``ntt_track_source``, the propagator in the run's
summary. The semantic encoder is the fake colour one (``fiftyone_ntt.testing.ColorEncoder``:
the tiny random DINOv2 scores every proposal 0 on this video, so keyframes would find
nothing); the masks are the random EdgeTAM's, so only the path is tested, not their quality."""

from __future__ import annotations

import pytest
import torch
from ntt_video import FRAMES, fill_video_dataset

pytestmark = pytest.mark.integration


@pytest.fixture
def edgetam_video(make_dataset, tmp_path, monkeypatch):
    from fiftyone_ntt.fiftyone.dataset import model_cache
    from fiftyone_ntt.models.edgetam.loader import load_edgetam_proposer
    from fiftyone_ntt.models.tiny_video import tiny_edgetam_video_model
    from fiftyone_ntt.testing import ColorEncoder

    monkeypatch.delenv("FIFTYONE_NTT_TEST_MODELS", raising=False)  # the real loaders
    monkeypatch.setenv("FIFTYONE_NTT_BANKS_DIR", str(tmp_path / "banks"))
    folder = tmp_path / "edgetam-video"
    tiny_edgetam_video_model(seed=0)[0].save_pretrained(folder)
    proposer = load_edgetam_proposer(folder, device="cpu")
    dataset = fill_video_dataset(make_dataset("ntt-edgetam-tracks"), tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the shared CPU
    model_cache.free_models()
    yield dataset, ColorEncoder(), proposer, folder
    model_cache.free_models()
    torch.set_num_threads(threads)


def test_a_tracked_run_with_an_edgetam_bank_writes_track_ids(edgetam_video):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.config import NTTConfig

    dataset, encoder, proposer, folder = edgetam_video
    nf.build_bank(dataset, "frames.ground_truth", "squares", encoder=encoder, proposer=proposer)
    summary = nf.segment(
        dataset,
        "squares",
        "tracks",
        keyframe_every=6,
        max_objects=4,
        # random weights: keep every proposal (predicted IoUs are random)
        config=NTTConfig(points_per_side=4, pred_iou_threshold=0.0),
        encoder=encoder,
        proposer=proposer,
        progress=None,
    )
    assert summary["status"] == "completed" and summary["failed"] == 0
    assert summary["processed"] == FRAMES - 1  # frame 1 holds the references
    tracking = summary["tracking"]
    assert tracking["propagator"] == {
        "family": "edgetam-video",
        "source": str(folder),
        "max_objects": 4,
    }
    assert tracking["keyframes"] == 4  # frames 1, 7, 13, 19: NTT on 4 frames in 24

    detections = [
        (number, detection)
        for number, frame in dataset.first().frames.items()
        if frame.tracks is not None
        for detection in frame.tracks.detections
    ]
    assert detections
    for number, detection in detections:
        expected = "detected" if number % 6 == 1 else "propagated"
        assert detection.ntt_track_source == expected, (number, detection)
        assert isinstance(detection.index, int) and 1 <= detection.index
    # propagated detections carry the ids of tracks found at their keyframe (frame 1 holds
    # the references: it is a keyframe, not written), at most max_objects of them
    detected, carried = {}, {}
    for number, detection in detections:
        side = detected if detection.ntt_track_source == "detected" else carried
        side.setdefault((number - 1) // 6, set()).add(detection.index)
    assert carried, "EdgeTAM's video memory carried nothing"
    for key, ids in carried.items():
        assert len(ids) <= 4  # the object cap
        if key > 0:
            assert ids <= detected[key], key
    spans = tracking["videos"][dataset.first().id]["spans"]
    assert spans and {s["track_id"] for s in spans} >= set().union(*carried.values())
