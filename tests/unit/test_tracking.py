"""Tracks on keyframes (docs/method.md §17) with the fake models and the fake propagator:
synthetic moving squares, whose true identity is known on every frame."""

from __future__ import annotations

import numpy as np
import pytest

from fiftyone_ntt.bank_build import build_memory_bank
from fiftyone_ntt.config import NTTConfig
from fiftyone_ntt.segmenter import Segmenter
from fiftyone_ntt.testing import ColorEncoder, ColorPropagator, RegionProposer, paint
from fiftyone_ntt.tracking import (
    FrameFailure,
    TrackBook,
    count_id_switches,
    track_video,
)
from fiftyone_ntt.types import Reference

pytestmark = pytest.mark.unit

RED, GREEN = 1, 2
SIZE = (96, 128)
SIDE = 20


def _reference(color, name):
    box = (40, 30, 40 + SIDE, 30 + SIDE)
    image = paint(SIZE, [(color, box)])
    mask = np.zeros(SIZE, dtype=bool)
    mask[box[1] : box[3], box[0] : box[2]] = True
    return Reference(image, name, f"{name}-ref", mask=mask)


class CountingSegmenter:
    """The real Segmenter on the fake models, counting its calls (NTT calls per frame)."""

    def __init__(self, segmenter):
        self.segmenter = segmenter
        self.class_names = segmenter.class_names
        self.calls = []

    def predict(self, image):
        self.calls.append(image)
        return self.segmenter.predict(image)


@pytest.fixture(scope="module")
def segmenter():
    bank = build_memory_bank([_reference(RED, "red"), _reference(GREEN, "green")], ColorEncoder())
    config = NTTConfig(points_per_side=16, score_threshold=0.5)
    return Segmenter(ColorEncoder(), RegionProposer(), bank, config)


def _squares(number):
    """Truth of 1-based frame ``number``: ``{instance_id: (color, box)}``; red moves right,
    green moves down."""
    t = number - 1
    return {
        "a": (RED, (4 + 3 * t, 10, 4 + 3 * t + SIDE, 10 + SIDE)),
        "b": (GREEN, (100, 2 + 2 * t, 100 + SIDE, 2 + 2 * t + SIDE)),
    }


def _video(frames, scene=_squares):
    return [(n, paint(SIZE, list(scene(n).values()))) for n in range(1, frames + 1)]


def _truth(scene, number):
    out = []
    for instance, (color, (x1, y1, x2, y2)) in scene(number).items():
        mask = np.zeros(SIZE, dtype=bool)
        mask[max(0, y1) : y2, max(0, x1) : x2] = True
        if mask.any():
            out.append((instance, "red" if color == RED else "green", mask))
    return out


def _predicted(frame):
    p = frame.predictions
    return [(int(i), p.labels[k], p.masks[k]) for k, i in enumerate(frame.track_ids)]


def _switches(frames, scene=_squares):
    return count_id_switches((_truth(scene, f.frame_number), _predicted(f)) for f in frames)


def _run(segmenter, video, k, propagator=None, **kwargs):
    counting = CountingSegmenter(segmenter)
    propagator = propagator if propagator is not None else ColorPropagator()
    frames = list(track_video(video, counting, propagator, keyframe_every=k, **kwargs))
    return frames, counting, propagator


def test_every_frame_a_keyframe_gives_the_per_frame_predictions_exactly(segmenter):
    video = _video(4)
    frames, counting, propagator = _run(segmenter, video, 1)
    assert len(counting.calls) == 4 and propagator.steps == 0
    for frame, (number, image) in zip(frames, video):
        alone = segmenter.predict(image)
        assert frame.frame_number == number and frame.keyframe and frame.error is None
        assert np.array_equal(frame.predictions.masks, alone.masks)
        assert np.array_equal(frame.predictions.scores, alone.scores)
        assert frame.predictions.labels == alone.labels
        assert np.array_equal(frame.predictions.boxes, alone.boxes)
        assert set(frame.sources) == {"detected"}
    assert _switches(frames) == {"id_switches": 0, "matches": 8, "truth_instances": 8}
    assert [sorted(f.track_ids.tolist()) for f in frames] == [[1, 2]] * 4


@pytest.mark.parametrize("k", [3, 5])
def test_keyframes_and_propagation_keep_ids_with_zero_switches(segmenter, k):
    frames, counting, propagator = _run(segmenter, _video(12), k)
    keyframes = [f.frame_number for f in frames if f.keyframe]
    assert keyframes == list(range(1, 13, k))
    assert len(counting.calls) == len(keyframes)
    assert propagator.sessions == 1 and propagator.steps == 11
    assert _switches(frames) == {"id_switches": 0, "matches": 24, "truth_instances": 24}
    for frame in frames:
        assert sorted(frame.track_ids.tolist()) == [1, 2]
        expected = "detected" if frame.keyframe else "propagated"
        assert set(frame.sources) == {expected}


def test_propagated_scores_decay_from_the_keyframe_score(segmenter):
    frames, _, _ = _run(segmenter, _video(4), 4, score_decay=0.5)
    key = dict(zip(frames[0].track_ids.tolist(), frames[0].predictions.scores.tolist()))
    for n, frame in enumerate(frames[1:], start=1):
        got = dict(zip(frame.track_ids.tolist(), frame.predictions.scores.tolist()))
        assert got == pytest.approx({i: s * 0.5**n for i, s in key.items()})


def _entering(number):
    scene = _squares(number)
    if number >= 6:  # a second red square appears between keyframes 5 and 9
        scene["c"] = (RED, (40, 60, 40 + SIDE, 60 + SIDE))
    return scene


def test_a_square_entering_between_keyframes_is_picked_up_at_the_next_one(segmenter):
    frames, _, _ = _run(segmenter, _video(12, _entering), 4)
    by_number = {f.frame_number: f for f in frames}
    for n in (6, 7, 8):  # not yet detected: only the two tracked squares
        assert sorted(by_number[n].track_ids.tolist()) == [1, 2]
    for n in range(9, 13):
        assert sorted(by_number[n].track_ids.tolist()) == [1, 2, 3]
    assert by_number[9].sources == ("detected",) * 3
    assert _switches(frames, _entering)["id_switches"] == 0


def _leaving(number):
    scene = _squares(number)
    if number >= 6:  # the green square leaves the picture
        del scene["b"]
    return scene


def test_a_square_leaving_ends_its_track(segmenter):
    book = TrackBook()
    frames, _, _ = _run(segmenter, _video(12, _leaving), 4, book=book)
    green = book.by_id(2)
    assert green.ended and green.first_frame == 1 and green.last_frame == 5
    assert all(2 not in f.track_ids.tolist() for f in frames if f.frame_number >= 6)
    assert not book.by_id(1).ended and book.by_id(1).last_frame == 12
    assert _switches(frames, _leaving)["id_switches"] == 0


def test_a_frame_failing_to_decode_mid_track_is_reported_and_the_track_goes_on(segmenter):
    video = _video(10)
    video[2] = (3, OSError("frame 3 of 'v.mp4' could not be decoded"))  # between keyframes
    video[4] = (5, OSError("frame 5 could not be decoded"))  # a keyframe
    frames, counting, _ = _run(segmenter, video, 4)
    failed = {f.frame_number: f.error for f in frames if f.error}
    assert failed == {
        3: "frame 3 of 'v.mp4' could not be decoded",
        5: "frame 5 could not be decoded",
    }
    good = [f for f in frames if f.error is None]
    assert [f.frame_number for f in good if f.keyframe] == [1, 6, 10]
    assert len(counting.calls) == 3
    assert all(sorted(f.track_ids.tolist()) == [1, 2] for f in good)
    assert _switches(good)["id_switches"] == 0


def test_a_segmenter_failure_on_a_keyframe_moves_the_detection_to_the_next_frame(segmenter):
    class FailingOnce(CountingSegmenter):
        def predict(self, image):
            self.calls.append(image)
            if len(self.calls) == 2:
                raise FrameFailure("out of memory on frame 4; free memory")
            return self.segmenter.predict(image)

    failing = FailingOnce(segmenter)
    frames = list(track_video(_video(6), failing, ColorPropagator(), keyframe_every=3))
    assert [(f.frame_number, f.keyframe, f.error) for f in frames if f.error or f.keyframe] == [
        (1, True, None),
        (4, False, "out of memory on frame 4; free memory"),
        (5, True, None),
    ]
    assert _switches([f for f in frames if f.error is None])["id_switches"] == 0


def test_keyframe_interval_longer_than_the_video(segmenter):
    frames, counting, propagator = _run(segmenter, _video(6), 100)
    assert len(counting.calls) == 1 and propagator.steps == 5
    assert [f.keyframe for f in frames] == [True] + [False] * 5
    assert _switches(frames) == {"id_switches": 0, "matches": 12, "truth_instances": 12}


def test_no_frames_yields_nothing_and_closes_the_session(segmenter):
    frames, counting, propagator = _run(segmenter, [], 5)
    assert frames == [] and counting.calls == [] and propagator.sessions == 1


def test_object_cap_propagates_the_best_scored_tracks_only(segmenter):
    frames, _, propagator = _run(segmenter, _video(6), 3, max_objects=1)
    for frame in frames:
        assert len(frame.track_ids) == (2 if frame.keyframe else 1)
    best = None
    for frame in frames:  # between keyframes: the best-scored track of the last keyframe
        if frame.keyframe:
            best = int(frame.track_ids[np.argmax(frame.predictions.scores)])
        else:
            assert frame.track_ids.tolist() == [best]
    assert {int(f.track_ids[0]) for f in frames if not f.keyframe} == {1, 2}  # scores differ
    assert propagator.max_objects == 16  # the run's cap is the smaller one


def test_id_switch_count_sees_a_swap():
    a = np.zeros((4, 4), bool)
    a[:2] = True
    b = ~a
    frames = [
        ([("x", "red", a), ("y", "red", b)], [(1, "red", a), (2, "red", b)]),
        ([("x", "red", a), ("y", "red", b)], [(2, "red", a), (1, "red", b)]),  # swapped
        ([("x", "red", a), ("y", "red", b)], [(2, "red", a), (1, "red", b)]),
        ([("x", "red", a), ("y", "red", b)], [(2, "green", a), (1, "red", b)]),  # label
    ]
    assert count_id_switches(frames) == {"id_switches": 2, "matches": 7, "truth_instances": 8}
