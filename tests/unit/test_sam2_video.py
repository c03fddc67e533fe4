"""The real propagator (SAM 2's video memory, docs/method.md §17.3) on the tiny random
``Sam2VideoModel``: shapes, one session per video, weights shared with the proposer, the
object cap, and the bounded state of long videos."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fiftyone_ntt.models.sam2.proposer import Sam2Proposer
from fiftyone_ntt.models.sam2.video import Sam2VideoPropagator, memory_window
from fiftyone_ntt.models.tiny_video import tiny_sam2_video_model
from fiftyone_ntt.testing import RegionProposer, paint
from fiftyone_ntt.tracking import track_video
from fiftyone_ntt.types import Predictions

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
    return tiny_sam2_video_model(seed=0)


def _propagator(models, **kwargs):
    video, image = models
    proposer = Sam2Proposer(image, source="tiny-random-sam2-video")
    return Sam2VideoPropagator.from_proposer(proposer, video, **kwargs)


class Squares:
    """A stand-in segmenter: one detection per coloured square (exact masks, score 0.9)."""

    class_names = ("red", "green")

    def predict(self, image):
        masks, classes = [], []
        for class_id, colour in enumerate(((220, 30, 30), (30, 180, 30))):
            mask = (image == colour).all(-1)
            if mask.any():
                masks.append(mask)
                classes.append(class_id)
        if not masks:
            return Predictions.empty(*SIZE, self.class_names)
        boxes = []
        for mask in masks:
            rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
            boxes.append([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1])
        return Predictions(np.stack(masks), boxes, [0.9] * len(masks), classes, self.class_names)


def _video(frames):
    return [
        (n, paint(SIZE, [(1, (2 + n, 4, 14 + n, 16)), (2, (40, 2 + n, 52, 14 + n))]))
        for n in range(1, frames + 1)
    ]


def test_image_weights_are_shared_with_the_proposer_not_copied(models):
    image = models[1]
    propagator = _propagator(models)
    shared = image.vision_encoder.backbone.patch_embed.projection.weight
    assert propagator.model.vision_encoder.backbone.patch_embed.projection.weight.data_ptr() == (
        shared.data_ptr()
    )
    assert propagator.model.mask_decoder.iou_prediction_head.proj_out.weight.data_ptr() == (
        image.mask_decoder.iou_prediction_head.proj_out.weight.data_ptr()
    )
    assert propagator.input_size == 256 and propagator.identity["family"] == "sam2-video"


def test_the_real_propagator_runs_the_keyframe_loop_one_session_per_video(models):
    propagator = _propagator(models)
    sessions = []
    for _ in range(2):  # two videos
        frames = []
        for frame in track_video(_video(7), Squares(), propagator, keyframe_every=3):
            frames.append(frame)
            sessions.append(propagator.session)
        assert [f.keyframe for f in frames] == [True, False, False, True, False, False, True]
        seeded: set[int] = set()
        for frame in frames:
            assert frame.error is None
            assert frame.predictions.masks.shape[1:] == SIZE
            assert frame.predictions.masks.dtype == bool
            if frame.keyframe:  # random weights: whether ids carry on is not tested here
                assert len(frame.track_ids) >= 2 and set(frame.sources) == {"detected"}
                seeded = set(frame.track_ids.tolist())
            else:  # only the objects of the last keyframe are carried
                assert set(frame.track_ids.tolist()) <= seeded
                assert set(frame.sources) <= {"propagated"}
        assert frames[0].track_ids.tolist() == [1, 2]
    assert propagator.sessions_started == 2
    assert len({id(s) for s in sessions[:7]}) == 1 and sessions[0] is not sessions[7]
    assert propagator.session is None  # freed at the end of each video


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
    frames = list(track_video(_video(4), Squares(), propagator, keyframe_every=4))
    assert len(frames[0].track_ids) == 2
    assert all(len(f.track_ids) <= 1 for f in frames[1:])  # one carried between keyframes
    assert len(propagator.session.obj_ids if propagator.session else [1]) == 1


def test_long_videos_keep_a_bounded_state_with_the_same_masks(models):
    video = models[0]
    video.config.max_object_pointers_in_encoder = 4  # a window of 8 frames, for speed
    try:
        pruned, unpruned = _propagator(models), _propagator(models, prune=False)
        assert memory_window(video.config) == 8
        frames = _video(14)
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
        assert max(s for s, _ in stored) == 8 + 2
        assert stored[-1][1] == 14  # without pruning, every frame stays
        kept = [
            o
            for outputs in pruned.session.output_dict_per_obj.values()
            for kind in outputs.values()
            for o in kind.values()
        ]
        assert kept and not any("high_res_masks" in o for o in kept)  # full-size logits go
    finally:
        video.config.max_object_pointers_in_encoder = 16


def test_a_proposer_that_is_not_sam2_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="keyframe_every=1"):
        Sam2VideoPropagator.from_proposer(RegionProposer())


@pytest.mark.parametrize("source", ["", "/weights/sam2.1_hiera_tiny.pt"])
def test_an_image_only_checkpoint_is_refused_with_the_fix(models, source):
    proposer = Sam2Proposer(models[1], source=source)
    with pytest.raises(ValueError, match="memory weights") as caught:
        Sam2VideoPropagator.from_proposer(proposer)
    assert repr(source) in str(caught.value)
