"""Reliability of the keyframe tracker (issue 25, docs/method.md §17): bad settings are
refused with a message naming the value and the fix; bad videos (no frames, frames that do not
decode, a keyframe interval longer than the video) give per-frame reports, never a crash."""

from __future__ import annotations

import numpy as np
import pytest

from fiftyone_ntt.testing import ColorPropagator, paint
from fiftyone_ntt.tracking import FrameFailure, TrackBook, track_video
from fiftyone_ntt.types import Predictions

pytestmark = pytest.mark.unit

SIZE = (32, 40)


class OneSquare:
    """A stand-in segmenter: the red square of the picture, always score 0.9."""

    class_names = ("red",)

    def predict(self, image):
        mask = (image == (220, 30, 30)).all(-1)
        if not mask.any():
            return Predictions.empty(*SIZE, self.class_names)
        rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
        box = [[cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]]
        return Predictions(mask[None], box, [0.9], [0], self.class_names)


def _frames(n, bad=()):
    out = []
    for number in range(1, n + 1):
        if number in bad:
            out.append((number, bad[number]))
        else:
            out.append((number, paint(SIZE, [(1, (2 + number, 4, 12 + number, 14))])))
    return out


BAD_KEYFRAME_EVERY = [0, -3, 1.5, True, "5", None]


@pytest.mark.parametrize("value", BAD_KEYFRAME_EVERY, ids=repr)
def test_bad_keyframe_interval_is_refused_naming_it(value):
    with pytest.raises(ValueError) as caught:
        list(track_video(_frames(2), OneSquare(), ColorPropagator(), keyframe_every=value))
    message = str(caught.value)
    assert f"keyframe_every={value!r}" in message and "positive integer" in message


BAD_SETTINGS = [
    ({"keyframe_every": 5, "propagator": None}, "needs a propagator"),
    ({"max_objects": 0}, "max_objects=0"),
    ({"max_objects": 2.5}, "max_objects=2.5"),
    ({"score_decay": 0.0}, "score_decay=0.0"),
    ({"score_decay": 1.5}, "score_decay=1.5"),
    ({"iou_threshold": 0.0}, "iou_threshold=0.0"),
    ({"iou_threshold": 2}, "iou_threshold=2"),
    ({"max_missed": 0}, "max_missed=0"),
]


@pytest.mark.parametrize("settings, expected", BAD_SETTINGS, ids=lambda v: str(v)[:30])
def test_bad_tracker_settings_are_refused_naming_them(settings, expected):
    kwargs = {"keyframe_every": 3, "propagator": ColorPropagator(), **settings}
    propagator = kwargs.pop("propagator")
    with pytest.raises(ValueError) as caught:
        list(track_video(_frames(2), OneSquare(), propagator, **kwargs))
    assert expected in str(caught.value)


BAD_VIDEOS = {
    "no frames": (0, {}, 4, {}),
    "only frame fails": (1, {1: OSError("cannot decode frame 1")}, 4, {1: "cannot decode"}),
    "first frame fails": (3, {1: OSError("bad frame 1")}, 2, {1: "bad frame 1"}),
    "frame between keyframes fails": (5, {3: OSError("bad 3")}, 4, {3: "bad 3"}),
    "keyframe fails": (6, {4: OSError("bad 4")}, 3, {4: "bad 4"}),
    "decoder gives None": (3, {2: None}, 2, {2: "frame 2 could not be decoded"}),
    "K longer than the video": (4, {}, 50, {}),
    "last frame fails": (4, {4: OSError("bad 4")}, 2, {4: "bad 4"}),
}


@pytest.mark.parametrize("name", sorted(BAD_VIDEOS))
def test_bad_videos_report_frames_and_keep_one_track(name):
    count, bad, k, errors = BAD_VIDEOS[name]
    frames = list(
        track_video(_frames(count, bad), OneSquare(), ColorPropagator(), keyframe_every=k)
    )
    assert [f.frame_number for f in frames] == list(range(1, count + 1))
    got = {f.frame_number: f.error for f in frames if f.error}
    assert set(got) == set(errors)
    for number, text in errors.items():
        assert text in got[number]
    good = [f for f in frames if f.error is None]
    assert all(f.track_ids.tolist() == [1] for f in good)  # one square, one id throughout
    assert good == [] or good[0].keyframe


def test_a_propagator_failure_is_a_frame_report():
    class Failing(ColorPropagator):
        def propagate(self, image):
            raise FrameFailure("propagation ran out of memory; lower max_objects")

    frames = list(track_video(_frames(3), OneSquare(), Failing(), keyframe_every=3))
    assert [f.error for f in frames] == [
        None,
        *["propagation ran out of memory; lower max_objects"] * 2,
    ]


def test_propagator_refuses_more_objects_than_its_cap():
    with pytest.raises(ValueError, match="max_objects=1"):
        ColorPropagator(max_objects=1).seed(
            np.zeros((*SIZE, 3), np.uint8), {1: np.ones(SIZE, bool), 2: np.ones(SIZE, bool)}
        )


def test_track_book_ends_a_track_only_after_max_missed_keyframes():
    book = TrackBook(max_missed=2)
    square = OneSquare().predict(_frames(1)[0][1])
    empty = Predictions.empty(*SIZE, ("red",))
    assert book.match(square, 1).tolist() == [1]
    book.match(empty, 2)
    assert not book.by_id(1).ended
    book.match(empty, 3)
    assert book.by_id(1).ended


def _count_cases() -> dict[str, int]:
    """How many bad-input cases this file covers."""
    return {
        "tracking: bad keyframe interval": len(BAD_KEYFRAME_EVERY),
        "tracking: bad tracker settings": len(BAD_SETTINGS),
        "tracking: bad videos (frames, K)": len(BAD_VIDEOS),
        "tracking: propagator failure and cap": 2,
    }
