"""EdgeTAM's video memory as the propagator of tracked video runs (docs/method.md §17.3), on
the tiny random ``EdgeTamVideoModel``: shapes, one session per video, the image weights
shared with the EdgeTAM proposer, the object cap, the bounded state of long videos (the
pruning of :class:`~fiftyone_ntt.models.sam2.video.Sam2VideoPropagator`, one copy, holds for
EdgeTAM's perceiver memory), and the run's choice of propagator by the proposer's family.
Bad inputs are in ``test_reliability_edgetam_video.py``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_sam2_video import Squares, _video

from fiftyone_ntt.fiftyone.dataset import model_cache
from fiftyone_ntt.fiftyone.runs.settings import propagator_for
from fiftyone_ntt.models.edgetam.loader import load_edgetam_proposer
from fiftyone_ntt.models.edgetam.proposer import EdgeTamProposer
from fiftyone_ntt.models.edgetam.video import EdgeTamVideoPropagator
from fiftyone_ntt.models.sam2.video import Sam2VideoPropagator, memory_window
from fiftyone_ntt.models.tiny_video import tiny_edgetam_video_model
from fiftyone_ntt.tracking import track_video

pytestmark = pytest.mark.unit

SIZE = (48, 64)


@pytest.fixture(autouse=True)
def _one_thread():
    # the shared CPU: one thread is several times faster here than contended ones
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def models():
    return tiny_edgetam_video_model(seed=0)


def _propagator(models, **kwargs):
    video, image = models
    proposer = EdgeTamProposer(image, source="tiny-random-edgetam-video")
    return EdgeTamVideoPropagator.from_proposer(proposer, video, **kwargs)


def test_image_weights_are_shared_with_the_proposer_not_copied(models):
    video, image = models
    proposer = EdgeTamProposer(image, source="tiny-random-edgetam-video")
    own = {n: p.data_ptr() for n, p in video.named_parameters()}  # before sharing
    propagator = EdgeTamVideoPropagator.from_proposer(proposer, video)
    shared = {n: t.data_ptr() for n, t in propagator.model.state_dict().items()}
    runs = {n: t.data_ptr() for n, t in proposer.model.state_dict().items()}  # what it runs
    for name in (
        "vision_encoder.backbone.timm_model.stem.conv1.c.weight",  # RepViT
        "vision_encoder.backbone.timm_model.stem.conv1.bn.running_mean",  # its BN stats
        "vision_encoder.neck.convs.0.weight",  # the FPN neck
        "prompt_encoder.mask_embed.conv1.weight",
        "mask_decoder.iou_prediction_head.proj_out.weight",
        "shared_image_embedding.positional_embedding",
        "no_memory_embedding",
    ):
        assert shared[name] == runs[name], name
    # the memory modules are the video checkpoint's own
    for name in ("spatial_perceiver.latents_2d", "memory_attention.layer_norm.weight"):
        assert shared[name] == own[name] and name not in runs
    assert propagator.input_size == 256 and propagator.identity["family"] == "edgetam-video"
    assert isinstance(propagator, Sam2VideoPropagator)  # one copy of the session logic


def test_the_keyframe_loop_runs_one_edgetam_session_per_video(models):
    from transformers import EdgeTamVideoInferenceSession

    propagator = _propagator(models)
    sessions = []
    for _ in range(2):  # two videos
        frames = []
        for frame in track_video(_video(5), Squares(), propagator, keyframe_every=3):
            frames.append(frame)
            sessions.append(propagator.session)
        assert [f.keyframe for f in frames] == [True, False, False, True, False]
        seeded: set[int] = set()
        for frame in frames:
            assert frame.error is None
            assert frame.predictions.masks.shape[1:] == SIZE
            assert frame.predictions.masks.dtype == bool
            if frame.keyframe:
                assert len(frame.track_ids) >= 2 and set(frame.sources) == {"detected"}
                seeded = set(frame.track_ids.tolist())
            else:
                assert set(frame.track_ids.tolist()) <= seeded
                assert set(frame.sources) <= {"propagated"}
        assert frames[0].track_ids.tolist() == [1, 2]
    assert propagator.sessions_started == 2
    assert all(isinstance(s, EdgeTamVideoInferenceSession) for s in sessions)
    assert len({id(s) for s in sessions[:5]}) == 1 and sessions[0] is not sessions[5]
    assert propagator.session is None


def test_masks_come_back_at_the_frame_size_for_each_seeded_object(models):
    propagator = _propagator(models)
    propagator.start_video()
    (_, first), (_, second) = _video(2)
    masks = Squares().predict(first).masks
    propagator.seed(first, {5: masks[0], 9: masks[1]})
    out = propagator.propagate(second)
    assert sorted(out) == [5, 9]
    assert all(m.shape == SIZE and m.dtype == bool for m in out.values())


def test_the_object_cap_is_enforced(models):
    propagator = _propagator(models, max_objects=1)
    propagator.start_video()
    image = _video(1)[0][1]
    masks = Squares().predict(image).masks
    with pytest.raises(ValueError, match="2 objects to track > max_objects=1"):
        propagator.seed(image, {1: masks[0], 2: masks[1]})
    frames = list(track_video(_video(3), Squares(), propagator, keyframe_every=3))
    assert len(frames[0].track_ids) == 2
    assert all(len(f.track_ids) <= 1 for f in frames[1:])


def test_long_videos_keep_a_bounded_state_with_the_same_masks(models):
    video = models[0]
    video.config.max_object_pointers_in_encoder = 2
    video.config.num_maskmem = 3  # a window of 4 frames, for speed
    try:
        pruned, unpruned = _propagator(models), _propagator(models, prune=False)
        assert memory_window(video.config) == 4
        frames = _video(8)
        seed_masks = Squares().predict(frames[0][1]).masks
        stored = []
        for propagator in (pruned, unpruned):
            propagator.start_video()
            propagator.seed(frames[0][1], {1: seed_masks[0], 2: seed_masks[1]})
        for _, frame in frames[1:]:
            a, b = pruned.propagate(frame), unpruned.propagate(frame)
            assert all(np.array_equal(a[i], b[i]) for i in (1, 2))
            stored.append((pruned.stored_frames(), unpruned.stored_frames()))
        assert max(s for s, _ in stored) == 4 + 2  # the window, current and conditioning
        assert stored[-1][1] == 8
    finally:
        video.config.max_object_pointers_in_encoder = 16
        video.config.num_maskmem = 7


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
        proposer = EdgeTamProposer(models[1], source="tiny-random-edgetam-video")
        propagator = propagator_for(proposer, 2)
        assert type(propagator) is EdgeTamVideoPropagator
        assert propagator.identity["family"] == "edgetam-video"
        assert type(propagator_for(object(), 2)) is Sam2VideoPropagator  # as before
    finally:
        model_cache.free_models()
