"""Bad input on video datasets (issue 12 §3, reliability matrix of issue 9 §3): each case is
refused with a message naming the value and the fix, or skipped and reported, and the frame
ground truth, the sample tags and the unrelated fields are byte-identical afterwards."""

from __future__ import annotations

import hashlib
import json

import bson
import pytest
from ntt_video import fill_video_dataset, write_video

pytestmark = pytest.mark.integration


@pytest.fixture
def video_dataset(make_dataset, tmp_path, monkeypatch):
    import fiftyone as fo

    import fiftyone_ntt.fiftyone as nf

    monkeypatch.setenv("FIFTYONE_NTT_TEST_MODELS", "fake")
    monkeypatch.setenv("FIFTYONE_NTT_BANKS_DIR", str(tmp_path / "banks"))
    dataset = fill_video_dataset(make_dataset("ntt-video-rel"), tmp_path)
    sample = dataset.first()
    sample.tags = ["keep"]
    sample.frames[2]["caption"] = "a frame"  # a frame field of another type
    sample.frames[3]["other_model"] = fo.Detections(detections=[fo.Detection(label="x")])
    sample.save()
    nf.build_bank(dataset, "frames.ground_truth", "squares")
    return dataset


def _protected(dataset) -> str:
    """Hash of the frame ground truth, the other frame fields, sample tags and fields.

    Frames without any of those fields are left out: a run adds empty frame documents
    for frames that had none (as FiftyOne's ``ensure_frames``)."""
    digest = hashlib.sha256()
    frame_fields = {"ground_truth": 1, "caption": 1, "other_model": 1, "frame_number": 1}
    for doc in dataset._frame_collection.find({}, frame_fields).sort("_id", 1):
        values = {k: doc.get(k) for k in frame_fields}
        if any(values[k] is not None for k in ("ground_truth", "caption", "other_model")):
            digest.update(bson.encode(values))
    for doc in dataset._sample_collection.find({}, {"tags": 1, "note": 1}).sort("_id", 1):
        digest.update(bson.encode({"tags": doc.get("tags"), "note": doc.get("note")}))
    return digest.hexdigest()


def _segment(**kwargs):
    def call(dataset):
        import fiftyone_ntt.fiftyone as nf

        args = {"bank": "squares", "out_field": "ntt", **kwargs}
        return nf.segment(dataset, args.pop("bank"), args.pop("out_field"), **args)

    return call


def _clips(dataset):
    import fiftyone_ntt.fiftyone as nf

    clips = dataset.to_clips([[(1, 5)]])
    return nf.segment(clips, "squares", "ntt")


def _evaluate_exact(dataset):
    import fiftyone_ntt.fiftyone as nf

    nf.segment(dataset, "squares", "ntt")
    return nf.evaluate(dataset, "ntt", "ev", gt_field="ground_truth", exact_coco=True)


def _build(gt_field, **kwargs):
    def call(dataset):
        import fiftyone_ntt.fiftyone as nf

        return nf.build_bank(dataset, gt_field, "other", **kwargs)

    return call


#: (case, call, words the error must contain)
REFUSED = [
    ("output field with a space", _segment(out_field="frames.bad name"), ["bad name", "valid"]),
    ("output field starting with _", _segment(out_field="_ntt"), ["_ntt", "reserves"]),
    ("output = frame ground truth", _segment(out_field="frames.ground_truth"), ["ground-truth"]),
    (
        "frame field with foreign labels",
        _segment(out_field="other_model"),
        ["other_model", "did not write", "overwrite"],
    ),
    ("frame field of another type", _segment(out_field="caption"), ["caption", "Detections"]),
    ("curation field", _segment(out_field="ntt_curated"), ["ntt_curated", "erase"]),
    ("shard out of range on videos", _segment(shard=(2, 2)), ["shard=(2, 2)", "0..1"]),
    ("clips view", _clips, ["clips", "whole videos"]),
    ("exact COCO on frames", _evaluate_exact, ["exact_coco", "to_frames"]),
    ("bank from a missing frame field", _build("frames.nothing"), ["frames.nothing", "frame"]),
    ("bank from a frame field of another type", _build("caption"), ["caption", "Detections"]),
    ("bank without tagged frame labels", _build("frames.other_model"), ["other_model", "tag"]),
    (
        "bank with classes lacking references",
        _build("frames.ground_truth", classes=["red", "blue"]),
        ["blue", "tag"],
    ),
]


@pytest.mark.parametrize("case,call,words", REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_with_the_fix(video_dataset, case, call, words):
    before = _protected(video_dataset)
    with pytest.raises(ValueError) as error:
        call(video_dataset)
    for word in words:
        assert word in str(error.value), (case, word, str(error.value))
    assert _protected(video_dataset) == before


def _truncated(dataset, tmp_path):
    """A stream that ends before the frame count its metadata states."""
    import fiftyone as fo

    path = write_video(tmp_path / "short.webm", frames=4)
    metadata = fo.VideoMetadata(
        frame_width=128, frame_height=96, total_frame_count=7, frame_rate=10.0
    )
    dataset.add_sample(fo.Sample(filepath=str(path), metadata=metadata))
    return str(path), [5, 6, 7], "could not be decoded"


def _not_a_video(dataset, tmp_path):
    import fiftyone as fo

    path = tmp_path / "notes.webm"
    path.write_text("not a video")
    dataset.add_sample(fo.Sample(filepath=str(path)))
    return str(path), [None], "cannot decode video"


def _missing_file(dataset, tmp_path):
    import fiftyone as fo

    path = tmp_path / "gone.webm"
    dataset.add_sample(fo.Sample(filepath=str(path)))
    return str(path), [None], "missing file"


def _missing_after_metadata(dataset, tmp_path):
    """The file went away after its metadata was read: every frame is reported."""
    import fiftyone as fo

    path = write_video(tmp_path / "moved.webm", frames=3)
    metadata = fo.VideoMetadata(
        frame_width=128, frame_height=96, total_frame_count=3, frame_rate=10.0
    )
    dataset.add_sample(fo.Sample(filepath=str(path), metadata=metadata))
    path.unlink()
    return str(path), [1, 2, 3], "cannot decode video"


#: (case, setup returning (file, frame numbers reported, words)): skipped and reported.
REPORTED = [
    ("truncated stream", _truncated),
    ("file that is no video", _not_a_video),
    ("missing file", _missing_file),
    ("file gone after its metadata", _missing_after_metadata),
]


@pytest.mark.parametrize("case,setup", REPORTED, ids=[c[0] for c in REPORTED])
def test_skipped_and_reported(video_dataset, tmp_path, case, setup):
    import fiftyone_ntt.fiftyone as nf

    path, frames, words = setup(video_dataset, tmp_path)
    before = _protected(video_dataset)
    summary = nf.segment(video_dataset, "squares", "ntt")
    assert summary["status"] == "completed", case
    reported = [f for f in summary["failures"] if f["filepath"] == path]
    assert [f.get("frame_number") for f in reported] == frames, (case, reported)
    assert all(words in f["error"] and path in f["error"] for f in reported), reported
    assert summary["processed"] > 0  # the good video is still segmented
    assert _protected(video_dataset) == before
    assert nf.run_state(video_dataset, "ntt")["status"] == "completed"


def _count_cases() -> dict[str, int]:
    """How many bad-input cases this file covers."""
    return {"refused on videos": len(REFUSED), "skipped and reported on videos": len(REPORTED)}


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(_count_cases()))
