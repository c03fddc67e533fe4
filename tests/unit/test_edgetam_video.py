"""EdgeTAM's video memory as the propagator of tracked video runs (docs/method.md §17.3), on
the tiny random ``EdgeTamVideoModel``: the run's choice of propagator by the proposer's family,
through the real loading path and in the tiny test mode. What EdgeTAM's propagator shares with
SAM 2's (its image weights shared with the EdgeTAM proposer and its perceiver memory the video
checkpoint's own, one session per video, the object cap, the bounded state of long videos: the
pruning of :class:`~fiftyone_ntt.models.sam2.video.Sam2VideoPropagator`, one copy, holds for
EdgeTAM's perceiver memory) is checked on both families in ``test_sam2_video.py``. Bad inputs
are in ``test_reliability_edgetam_video.py``."""

from __future__ import annotations

import pytest
from video_propagators import EDGETAM, one_torch_thread  # noqa: F401  (autouse fixture)

from fiftyone_ntt.fiftyone.dataset import model_cache
from fiftyone_ntt.fiftyone.runs.settings import propagator_for
from fiftyone_ntt.models.edgetam.loader import load_edgetam_proposer
from fiftyone_ntt.models.edgetam.video import EdgeTamVideoPropagator
from fiftyone_ntt.models.sam2.video import Sam2VideoPropagator

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def models():
    return EDGETAM.tiny_models(seed=0)


@pytest.fixture(scope="module")
def video_folder(tmp_path_factory, models):
    folder = tmp_path_factory.mktemp("edgetam-video")
    models[0].save_pretrained(folder)
    return folder


def test_a_run_with_an_edgetam_proposer_gets_edgetam_video_memory(video_folder, monkeypatch):
    """The real path: the proposer loaded from an EdgeTAM video checkpoint (a
    save_pretrained folder), its video model loaded from the same source and cached."""
    monkeypatch.delenv(model_cache.TEST_MODELS_ENV, raising=False)
    model_cache.free_models()
    try:
        proposer = load_edgetam_proposer(video_folder, device="cpu")
        first, second = propagator_for(proposer, 4), propagator_for(proposer, 2)
        assert type(first) is EdgeTamVideoPropagator and second.model is first.model
        assert first.identity == {
            "family": "edgetam-video",
            "source": str(video_folder),
            "max_objects": 4,
        }
        runs = proposer.model.vision_encoder.neck.convs[0].weight
        assert first.model.vision_encoder.neck.convs[0].weight.data_ptr() == runs.data_ptr()
    finally:
        model_cache.free_models()


def test_the_tiny_test_mode_picks_the_video_model_of_the_proposer_family(monkeypatch, models):
    monkeypatch.setenv(model_cache.TEST_MODELS_ENV, "tiny")
    model_cache.free_models()
    try:
        proposer = EDGETAM.proposer(models)
        propagator = propagator_for(proposer, 2)
        assert type(propagator) is EdgeTamVideoPropagator
        assert propagator.identity["family"] == "edgetam-video"
        assert type(propagator_for(object(), 2)) is Sam2VideoPropagator  # as before
    finally:
        model_cache.free_models()
