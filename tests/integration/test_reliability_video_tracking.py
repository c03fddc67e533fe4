"""Bad input on tracked video runs (issue 25, docs/method.md §17): refused with a message
naming the value and the fix, nothing written; or, for bad videos, skipped and reported as
the per-frame run does, the good video still tracked."""

from __future__ import annotations

import json

import pytest
from ntt_video import FRAMES
from test_reliability_video import REPORTED, _protected, _segment, video_dataset  # noqa: F401

pytestmark = pytest.mark.integration


def _switches(pred_field, gt_field="frames.ground_truth"):
    def call(dataset):
        from fiftyone_ntt.fiftyone.evaluation.tracking import count_track_switches

        return count_track_switches(dataset, pred_field, gt_field)

    return call


def _tracks_but_no_gt_ids(dataset):
    import fiftyone as fo

    sample = dataset.first()
    sample.frames[2]["tracks"] = fo.Detections(detections=[fo.Detection(label="red", index=1)])
    sample.save()
    return _switches("frames.tracks")(dataset)


#: (case, call, words the error must contain)
REFUSED = [
    *[
        (f"keyframe_every={v!r}", _segment(keyframe_every=v), [f"keyframe_every={v!r}", "1"])
        for v in (0, -2, "5", 2.5, True)
    ],
    *[
        (f"max_objects={v!r}", _segment(keyframe_every=3, max_objects=v), [f"max_objects={v!r}"])
        for v in (0, -1, 1.5)
    ],
    ("ID switches of a missing field", _switches("frames.nothing"), ["frames.nothing"]),
    (
        "ID switches without track ids",
        _switches("frames.other_model"),
        ["track ids", "keyframe_every"],
    ),
    (
        "ID switches without instance ids",
        _tracks_but_no_gt_ids,
        ["instance ids", "Detection.index"],
    ),
]


@pytest.mark.parametrize("case,call,words", REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_with_the_fix(video_dataset, case, call, words):  # noqa: F811
    before = _protected(video_dataset)
    fields = set(video_dataset.get_frame_field_schema())
    with pytest.raises(ValueError) as error:
        call(video_dataset)
    for word in words:
        assert word in str(error.value), (case, word, str(error.value))
    assert _protected(video_dataset) == before
    if "max_objects" in case or "keyframe_every" in case:
        assert set(video_dataset.get_frame_field_schema()) == fields  # nothing declared


def test_keyframes_on_images_are_refused(make_dataset, tmp_path):
    import fiftyone as fo
    from PIL import Image

    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.testing import paint

    path = tmp_path / "one.png"
    Image.fromarray(paint((32, 32), [(1, (4, 4, 20, 20))])).save(path)
    dataset = make_dataset("ntt-images-k")
    dataset.add_sample(fo.Sample(filepath=str(path)))
    with pytest.raises(ValueError, match="keyframe_every=5: keyframes are for video"):
        nf.segment(dataset, "any", "ntt", keyframe_every=5)


#: the per-frame run's bad videos that end a stream early (the tracks' case), tracked
TRACKED_REPORTED = [c for c in REPORTED if c[0] in ("truncated stream", "file that is no video")]


@pytest.mark.parametrize("case,setup", TRACKED_REPORTED, ids=[c[0] for c in TRACKED_REPORTED])
def test_bad_videos_skipped_and_reported_when_tracking(video_dataset, tmp_path, case, setup):  # noqa: F811
    import fiftyone_ntt.fiftyone as nf

    path, frames, words = setup(video_dataset, tmp_path)
    before = _protected(video_dataset)
    summary = nf.segment(video_dataset, "squares", "ntt", keyframe_every=3, progress=None)
    assert summary["status"] == "completed", case
    reported = [f for f in summary["failures"] if f["filepath"] == path]
    assert [f.get("frame_number") for f in reported] == frames, (case, reported)
    assert all(words in f["error"] and path in f["error"] for f in reported), reported
    good = video_dataset.first()
    assert summary["tracking"]["videos"][good.id]["tracks"] == 2  # still tracked
    assert _protected(video_dataset) == before


@pytest.mark.parametrize("k", [FRAMES, 1000])
def test_keyframe_interval_as_long_as_the_video_or_longer(video_dataset, k):  # noqa: F811
    import fiftyone_ntt.fiftyone as nf

    summary = nf.segment(video_dataset, "squares", "ntt", keyframe_every=k, progress=None)
    assert summary["processed"] == FRAMES - 1 and summary["failed"] == 0
    assert summary["tracking"]["keyframes"] == 1  # only the first frame
    assert video_dataset.count("frames.ntt.detections") == 2 * (FRAMES - 1)


def _count_cases() -> dict[str, int]:
    """How many bad-input cases this file covers."""
    return {
        "refused on tracked video runs": len(REFUSED) + 1,
        "skipped and reported when tracking": len(TRACKED_REPORTED),
        "keyframe interval >= the video": 2,
    }


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(_count_cases()))
