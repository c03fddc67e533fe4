"""SAM 2's video model (the memory modules of a tracked video run, docs/method.md §17.3) is
cached with the proposer it shares weights with, like the image models
(:mod:`fiftyone_ntt.fiftyone.dataset.model_cache`): the second tracked run in a process (the
App, a worker) loads nothing; another proposer, or ``free_models``, lets it go."""

from __future__ import annotations

import pytest

from fiftyone_ntt.fiftyone.dataset import model_cache
from fiftyone_ntt.fiftyone.runs.settings import propagator_for
from fiftyone_ntt.models.sam2 import video as sam2_video
from fiftyone_ntt.models.sam2.proposer import Sam2Proposer
from fiftyone_ntt.models.tiny_video import tiny_sam2_video_model

pytestmark = pytest.mark.unit


@pytest.fixture
def loads(monkeypatch):
    """The real path (``from_proposer``): the video model of the proposer's checkpoint,
    here the tiny random one, each load counted."""
    monkeypatch.delenv(model_cache.TEST_MODELS_ENV, raising=False)
    video, image = tiny_sam2_video_model(seed=0)
    calls = []

    def load(source):
        calls.append(source)
        return tiny_sam2_video_model(seed=0)[0] if len(calls) > 1 else video

    monkeypatch.setattr(sam2_video, "load_sam2_video_model", load)
    model_cache.free_models()
    yield calls, image
    model_cache.free_models()


def test_the_video_model_is_loaded_once_for_a_proposer_and_shares_its_weights(loads):
    calls, image = loads
    proposer = Sam2Proposer(image, source="tiny-random-sam2-video")
    first = propagator_for(proposer, 4)
    second = propagator_for(proposer, 8)
    assert calls == ["tiny-random-sam2-video"]  # one load for two tracked runs
    assert second.model is first.model
    assert (first.max_objects, second.max_objects) == (4, 8)  # each run its own settings
    assert first is not second and second.session is None  # and its own session
    # the image weights are the proposer's tensors, not a copy
    shared = dict(second.model.named_parameters())
    assert any(p.data_ptr() == shared[name].data_ptr() for name, p in image.named_parameters())

    # another proposer: another video model; free_models releases it with the image models
    other = Sam2Proposer(tiny_sam2_video_model(seed=1)[1], source="tiny-random-sam2-video")
    assert propagator_for(other, 4).model is not first.model and len(calls) == 2
    model_cache.free_models()
    propagator_for(other, 4)
    assert len(calls) == 3


def test_the_tiny_test_video_model_is_cached_too(monkeypatch):
    monkeypatch.setenv(model_cache.TEST_MODELS_ENV, "tiny")
    model_cache.free_models()
    try:
        proposer = object()
        first, second = propagator_for(proposer, 2), propagator_for(proposer, 2)
        assert first.model is second.model
    finally:
        model_cache.free_models()
