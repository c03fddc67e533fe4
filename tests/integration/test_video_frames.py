"""Video datasets frame by frame (issue 12 §3), on a real MongoDB: a generated VP9 WebM video of
moving painted squares (decoded by OpenCV's bundled FFmpeg, no system ffmpeg), a bank built
from frame references, every frame segmented with the fake models into ``frames.<field>``
through ``segment`` (the product path: run record, claim, resume per frame), an interrupted
run resumed, evaluation on frame-level ground truth."""

from __future__ import annotations

import numpy as np
import pytest
from ntt_video import FRAMES, SIZE, boxes, fill_video_dataset, iou

pytestmark = pytest.mark.integration


@pytest.fixture
def video_dataset(make_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("FIFTYONE_NTT_TEST_MODELS", "fake")
    monkeypatch.setenv("FIFTYONE_NTT_BANKS_DIR", str(tmp_path / "banks"))
    return fill_video_dataset(make_dataset("ntt-video"), tmp_path)


def _frame_gt(dataset) -> list:
    return [f.to_dict() for f in dataset.first().frames.values()]


def _found_boxes(frame, field: str) -> dict[str, tuple[float, ...]]:
    height, width = SIZE
    found = {}
    for det in frame[field].detections if frame[field] else []:
        x, y, w, h = det.bounding_box
        found.setdefault(det.label, (x * width, y * height, (x + w) * width, (y + h) * height))
    return found


def test_frames_decode_without_ffmpeg(video_dataset):
    from fiftyone_ntt.fiftyone.dataset.media import iter_frames, video_metadata

    path = video_dataset.first().filepath
    assert path.endswith(".webm")
    metadata = video_metadata(path)
    assert (metadata.frame_width, metadata.frame_height) == (128, 96)
    assert metadata.total_frame_count == FRAMES
    frames = list(iter_frames(path, [1, 24]))
    assert [n for n, _ in frames] == [1, 24]
    assert frames[0][1].shape == (96, 128, 3) and frames[0][1].dtype == np.uint8


def test_segment_video_dataset_resume_and_evaluate(video_dataset, field_hash):
    import fiftyone_ntt.fiftyone as nf

    dataset = video_dataset
    gt_before = _frame_gt(dataset)
    note_before = field_hash(dataset, "note")

    built = nf.build_bank(dataset, "frames.ground_truth", "squares")
    assert built["classes"] == ["red", "green"] and built["num_references"] == 2
    assert built["gt_field"] == "frames.ground_truth"

    calls = []
    summary = nf.segment(dataset, "squares", "ntt", progress=lambda d, t: calls.append((d, t)))
    # frame 1 holds the references: skipped, like reference images
    assert summary["status"] == "completed" and summary["out_field"] == "frames.ntt"
    assert summary["videos"] == 1 and summary["references_skipped"] == 1
    assert summary["total"] == FRAMES - 1 and summary["processed"] == FRAMES - 1
    assert summary["failed"] == 0 and summary["done_before"] == 0
    assert calls[-1] == (FRAMES - 1, FRAMES - 1) and len(calls) == FRAMES - 1
    assert dataset.has_frame_field("ntt") and not dataset.has_sample_field("ntt")

    # The moving instances are found in every (non-reference) frame, where they are.
    for number, frame in dataset.first().frames.items():
        found = _found_boxes(frame, "ntt")
        if number == 1:
            assert not found
            continue
        for name, box in boxes(number).items():
            assert name in found, (number, name)
            assert iou(found[name], box) > 0.8, (number, name, found[name], box)

    # Provenance: a run keyed by the field name, its record and state.
    assert "ntt" in nf.list_ntt_runs(dataset)
    info = dataset.get_run_info("ntt").config
    assert info.out_field == "frames.ntt" and info.gt_field == "frames.ground_truth"
    assert nf.run_state(dataset, "ntt")["status"] == "completed"

    # Resume: nothing left; after losing some frames' predictions only those are redone.
    again = nf.segment(dataset, "squares", "ntt")
    assert again["processed"] == 0 and again["done_before"] == FRAMES - 1
    sample = dataset.first()
    for number in (5, 6, 7):
        sample.frames[number]["ntt"] = None
    sample.save()
    again = nf.segment(dataset, "squares", "ntt")
    assert again["processed"] == 3 and again["done_before"] == FRAMES - 4

    results = nf.evaluate(dataset, "ntt", "ev", exclude_references=True)
    assert results["gt_field"] == "frames.ground_truth"
    assert results["pred_field"] == "frames.ntt"
    assert results["mAP"] > 0.9, results
    assert results["tp"] == 2 * (FRAMES - 1) and results["fn"] == 0 and results["fp"] == 0

    # Ground truth (labels and their reference tags) and unrelated fields are untouched,
    # except the per-label evaluation attributes FiftyOne writes.
    for before, after in zip(gt_before, _frame_gt(dataset)):
        for b, a in zip(before["ground_truth"]["detections"], after["ground_truth"]["detections"]):
            assert {k: v for k, v in a.items() if not k.startswith("ev")} == b
    assert field_hash(dataset, "note") == note_before


def test_interrupted_video_run_resumes(video_dataset):
    import fiftyone_ntt.fiftyone as nf

    dataset = video_dataset
    nf.build_bank(dataset, "frames.ground_truth", "squares")

    class Stop(Exception):
        pass

    def stop_after_ten(done, total):
        if done == 10:
            raise Stop

    with pytest.raises(Stop):
        nf.segment(dataset, "squares", "ntt", batch_size=4, progress=stop_after_ten)
    state = nf.run_state(dataset, "ntt")
    assert state["status"] == "interrupted" and state["lock"] is None
    written = dataset.count("frames.ntt")
    assert written == 10  # everything predicted before the stop was saved

    summary = nf.segment(dataset, "squares", "ntt", batch_size=4)
    assert summary["done_before"] == 10 and summary["processed"] == FRAMES - 1 - 10
    assert dataset.count("frames.ntt") == FRAMES - 1
    assert nf.run_state(dataset, "ntt")["status"] == "completed"


def test_bad_frames_are_skipped_and_reported(video_dataset, tmp_path):
    """A video whose stream ends before its metadata says, and a file that is no video: the
    run goes on, every missing frame and the bad file are reported."""
    import fiftyone as fo

    import fiftyone_ntt.fiftyone as nf

    dataset = video_dataset
    nf.build_bank(dataset, "frames.ground_truth", "squares")
    from ntt_video import write_video

    short = write_video(tmp_path / "short.webm", frames=6)
    broken = tmp_path / "broken.webm"
    broken.write_bytes(b"\x1a\x45\xdf\xa3 not a video")
    dataset.add_samples(
        [
            fo.Sample(
                filepath=str(short),
                metadata=fo.VideoMetadata(
                    frame_width=128, frame_height=96, total_frame_count=10, frame_rate=10.0
                ),
            ),
            fo.Sample(filepath=str(broken)),
        ]
    )
    summary = nf.segment(dataset, "squares", "ntt")
    assert summary["status"] == "completed"
    failures = summary["failures"]
    short_failures = [f for f in failures if f["filepath"] == str(short)]
    assert sorted(f["frame_number"] for f in short_failures) == [7, 8, 9, 10]
    assert all("could not be decoded" in f["error"] for f in short_failures)
    broken_failures = [f for f in failures if f["filepath"] == str(broken)]
    assert len(broken_failures) == 1 and "cannot decode video" in broken_failures[0]["error"]
    assert summary["processed"] == FRAMES - 1 + 6


def test_frame_field_with_foreign_labels_is_refused(video_dataset, field_hash):
    import fiftyone as fo

    import fiftyone_ntt.fiftyone as nf

    dataset = video_dataset
    nf.build_bank(dataset, "frames.ground_truth", "squares")
    sample = dataset.first()
    sample.frames[3]["other_model"] = fo.Detections(detections=[fo.Detection(label="x")])
    sample.save()
    with pytest.raises(ValueError, match=r"frames.*other_model.*did not write.*overwrite"):
        nf.segment(dataset, "squares", "other_model")
    with pytest.raises(ValueError, match="ground-truth field"):
        nf.segment(dataset, "squares", "frames.ground_truth")
    assert dataset.first().frames[3]["other_model"].detections[0].label == "x"
    assert "other_model" not in dataset.list_runs()
    summary = nf.segment(dataset, "squares", "other_model", overwrite=True)
    assert summary["processed"] == FRAMES - 1


def test_tag_frame_labels_as_references(video_dataset):
    """What *Tag references* does with labels selected in a video's modal (frame labels come
    with their field ``frames.<name>`` and frame number)."""
    import fiftyone_ntt.fiftyone as nf

    dataset = video_dataset
    nf.untag_references(dataset)
    assert dataset.count_label_tags() == {}
    sample = dataset.first()
    detection = sample.frames[10]["ground_truth"].detections[0]
    selected = [
        {
            "label_id": detection.id,
            "sample_id": sample.id,
            "field": "frames.ground_truth",
            "frame_number": 10,
        }
    ]
    assert nf.tag_references(dataset, selected) == 1
    assert dataset.count_label_tags() == {"ntt:ref": 1}
    built = nf.build_bank(dataset, "frames.ground_truth", "one")
    assert built["classes"] == [detection.label] and built["num_references"] == 1


def test_a_second_writer_of_the_frame_field_is_refused(video_dataset):
    """While a run writes ``frames.ntt`` (here: from its progress callback), another run into
    the same field is refused naming the holder; after it, the field is free again."""
    import os

    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.runs.claims import FieldLockedError

    dataset = video_dataset
    nf.build_bank(dataset, "frames.ground_truth", "squares")
    refused = []

    def second_writer(done, total):
        if done == 3:
            with pytest.raises(FieldLockedError) as error:
                nf.segment(dataset, "squares", "ntt", progress=None)
            refused.append(str(error.value))

    nf.segment(dataset, "squares", "ntt", progress=second_writer)
    assert len(refused) == 1 and str(os.getpid()) in refused[0], refused
    assert nf.run_state(dataset, "ntt")["lock"] is None
    assert dataset.count("frames.ntt") == FRAMES - 1


def test_a_view_segments_only_its_frames(video_dataset):
    from fiftyone import ViewField as F

    import fiftyone_ntt.fiftyone as nf

    dataset = video_dataset
    nf.build_bank(dataset, "frames.ground_truth", "squares")
    view = dataset.match_frames(F("frame_number") <= 6)
    summary = nf.segment(view, "squares", "ntt", progress=None)
    assert summary["total"] == 5 and summary["processed"] == 5  # frame 1: the reference
    numbers = [n for n, f in dataset.first().frames.items() if f["ntt"] is not None]
    assert numbers == [2, 3, 4, 5, 6]


def test_out_of_memory_on_a_frame_is_retried_then_reported(video_dataset, monkeypatch):
    """A frame whose prediction runs out of memory once is retried and written; one that runs
    out twice is skipped and reported with its frame number, file and the fix."""
    import fiftyone_ntt.fiftyone as nf
    import fiftyone_ntt.segmenter as seg

    dataset = video_dataset
    nf.build_bank(dataset, "frames.ground_truth", "squares")
    original = seg.Segmenter.predict
    calls = {"n": 0}

    def predict(self, image, **kwargs):
        calls["n"] += 1
        if calls["n"] in (2, 5, 6):  # frame 2: once (retried, fine); the 4th frame: twice
            raise RuntimeError("[enforce fail at alloc_cpu.cpp] out of memory")
        return original(self, image, **kwargs)

    monkeypatch.setattr(seg.Segmenter, "predict", predict)
    summary = nf.segment(dataset, "squares", "ntt")
    assert summary["status"] == "completed"
    failures = summary["failures"]
    assert len(failures) == 1, failures
    error = failures[0]["error"]
    assert "out of memory on frame" in error and "twice" in error
    assert f"of {dataset.first().filepath!r}" in error and "another device" in error
    assert summary["processed"] == FRAMES - 1 - 1
    assert dataset.count("frames.ntt") == FRAMES - 1 - 1
