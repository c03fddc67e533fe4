"""The real propagator (SAM 2's video memory, docs/method.md §17.3) on the tiny random video
models. Its session logic is one copy (:class:`Sam2VideoPropagator`, which EdgeTAM's
propagator subclasses), so the checks of that logic run on both families (ids ``sam2`` and
``edgetam``, the descriptions of ``video_propagators.py``): weights shared with the proposer,
one session per video, masks at the frame size, the object cap, and the bounded state of long
videos. SAM 2's own refusals follow; EdgeTAM's own checks are in ``test_edgetam_video.py``."""

from __future__ import annotations

import numpy as np
import pytest
import transformers
from video_propagators import (
    FAMILIES,
    FRAME_SIZE,
    SAM2,
    Squares,
    moving_squares,
    one_torch_thread,  # noqa: F401  (autouse fixture)
)

from fiftyone_ntt.models.sam2.proposer import Sam2Proposer
from fiftyone_ntt.models.sam2.video import Sam2VideoPropagator, memory_window
from fiftyone_ntt.testing import RegionProposer
from fiftyone_ntt.tracking import track_video

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module", params=FAMILIES, ids=[f.id for f in FAMILIES])
def family(request):
    return request.param


@pytest.fixture(scope="module")
def family_models(family):
    return family.tiny_models(seed=0)


@pytest.fixture(scope="module")
def sam2_models():
    return SAM2.tiny_models(seed=0)


# ------------------------------------------------------------- both families: one copy of the logic


def test_image_weights_are_shared_with_the_proposer_not_copied(family, family_models):
    video = family_models[0]
    proposer = family.proposer(family_models)
    own = {n: p.data_ptr() for n, p in video.named_parameters()}  # before sharing
    propagator = family.propagator_class.from_proposer(proposer, video)
    shared = {n: t.data_ptr() for n, t in propagator.model.state_dict().items()}
    runs = {n: t.data_ptr() for n, t in proposer.model.state_dict().items()}  # what it runs
    for name in family.shared_weights:
        assert shared[name] == runs[name], name
    # the memory modules are the video checkpoint's own
    for name in family.memory_weights:
        assert shared[name] == own[name] and name not in runs, name
    assert propagator.input_size == 256
    assert propagator.identity["family"] == family.identity_family
    assert isinstance(propagator, Sam2VideoPropagator)  # one copy of the session logic


def test_the_keyframe_loop_runs_one_session_per_video(family, family_models):
    propagator = family.propagator(family_models)
    sessions = []
    for _ in range(2):  # two videos
        frames = []
        for frame in track_video(moving_squares(7), Squares(), propagator, keyframe_every=3):
            frames.append(frame)
            sessions.append(propagator.session)
        assert [f.keyframe for f in frames] == [True, False, False, True, False, False, True]
        seeded: set[int] = set()
        for frame in frames:
            assert frame.error is None
            assert frame.predictions.masks.shape[1:] == FRAME_SIZE
            assert frame.predictions.masks.dtype == bool
            if frame.keyframe:  # random weights: whether ids carry on is not tested here
                assert len(frame.track_ids) >= 2 and set(frame.sources) == {"detected"}
                seeded = set(frame.track_ids.tolist())
            else:  # only the objects of the last keyframe are carried
                assert set(frame.track_ids.tolist()) <= seeded
                assert set(frame.sources) <= {"propagated"}
        assert frames[0].track_ids.tolist() == [1, 2]
    assert propagator.sessions_started == 2
    session_class = getattr(transformers, family.session_class)
    assert all(isinstance(s, session_class) for s in sessions)
    assert len({id(s) for s in sessions[:7]}) == 1 and sessions[0] is not sessions[7]
    assert propagator.session is None  # freed at the end of each video


def test_masks_come_back_at_the_frame_size_for_each_seeded_object(family, family_models):
    propagator = family.propagator(family_models)
    propagator.start_video()
    (_, first), (_, second) = moving_squares(2)
    masks = Squares().predict(first).masks
    propagator.seed(first, {5: masks[0], 9: masks[1]})
    out = propagator.propagate(second)
    assert sorted(out) == [5, 9]
    assert all(m.shape == FRAME_SIZE and m.dtype == bool for m in out.values())


def test_the_object_cap_is_enforced(family, family_models):
    propagator = family.propagator(family_models, max_objects=1)
    propagator.start_video()
    image = moving_squares(1)[0][1]
    masks = Squares().predict(image).masks
    with pytest.raises(ValueError, match="2 objects to track > max_objects=1"):
        propagator.seed(image, {1: masks[0], 2: masks[1]})
    frames = list(track_video(moving_squares(4), Squares(), propagator, keyframe_every=4))
    assert len(frames[0].track_ids) == 2
    assert all(len(f.track_ids) <= 1 for f in frames[1:])  # one carried between keyframes


def test_long_videos_keep_a_bounded_state_with_the_same_masks(family, family_models):
    video = family_models[0]
    before = {key: getattr(video.config, key) for key in family.small_window}
    for key, value in family.small_window.items():  # a small window, for speed
        setattr(video.config, key, value)
    try:
        pruned = family.propagator(family_models)
        unpruned = family.propagator(family_models, prune=False)
        assert memory_window(video.config) == family.window
        frames = moving_squares(family.long_video)
        seed_masks = Squares().predict(frames[0][1]).masks
        stored = []
        for propagator in (pruned, unpruned):
            propagator.start_video()
            propagator.seed(frames[0][1], {1: seed_masks[0], 2: seed_masks[1]})
        for _, frame in frames[1:]:
            a, b = pruned.propagate(frame), unpruned.propagate(frame)
            assert all(np.array_equal(a[i], b[i]) for i in (1, 2))
            stored.append((pruned.stored_frames(), unpruned.stored_frames()))
            assert len(pruned.session.processed_frames) == 1
        # the window, the current frame and the conditioning frame
        assert max(s for s, _ in stored) == family.window + 2
        assert stored[-1][1] == family.long_video  # without pruning, every frame stays
        kept = [
            o
            for outputs in pruned.session.output_dict_per_obj.values()
            for kind in outputs.values()
            for o in kind.values()
        ]
        assert kept and not any("high_res_masks" in o for o in kept)  # full-size logits go
    finally:
        for key, value in before.items():
            setattr(video.config, key, value)


# ----------------------------------------------------------------------------- SAM 2's own refusals


def test_a_proposer_that_is_not_sam2_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="keyframe_every=1"):
        Sam2VideoPropagator.from_proposer(RegionProposer())


@pytest.mark.parametrize("source", ["", "/weights/sam2.1_hiera_tiny.pt"])
def test_an_image_only_checkpoint_is_refused_with_the_fix(sam2_models, source):
    proposer = Sam2Proposer(sam2_models[1], source=source)
    with pytest.raises(ValueError, match="memory weights") as caught:
        Sam2VideoPropagator.from_proposer(proposer)
    assert repr(source) in str(caught.value)
