"""Video datasets frame by frame (issue 12 §3), on a real MongoDB: a generated video of moving
painted shapes (lossless FFV1, decoded by OpenCV's bundled FFmpeg, no system ffmpeg), frame
references, a bank from them, every frame segmented with the fake models into
``frames.<field>``, resume per frame, evaluation on frame-level ground truth."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.integration

SIZE = (96, 128)  # (H, W)
FRAMES = 24
SIDE = 24


def _boxes(number: int) -> dict[str, tuple[int, int, int, int]]:
    """The shapes of 1-based frame ``number``: red moves right, green moves down."""
    t = number - 1
    return {
        "red": (4 + 3 * t, 10, 4 + 3 * t + SIDE, 10 + SIDE),
        "green": (90, 2 + 2 * t, 90 + SIDE, 2 + 2 * t + SIDE),
    }


COLOURS = {"red": 1, "green": 2}


def _write_video(path) -> None:
    import cv2

    from fiftyone_ntt.testing import paint

    height, width = SIZE
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 10, (width, height))
    assert writer.isOpened()
    for number in range(1, FRAMES + 1):
        shapes = [(COLOURS[name], box) for name, box in _boxes(number).items()]
        writer.write(paint(SIZE, shapes)[:, :, ::-1].copy())
    writer.release()


@pytest.fixture
def video_dataset(make_dataset, tmp_path, monkeypatch):
    import fiftyone as fo

    monkeypatch.setenv("FIFTYONE_NTT_TEST_MODELS", "fake")
    path = tmp_path / "moving_shapes.mkv"
    _write_video(path)
    dataset = make_dataset("ntt-video")
    sample = fo.Sample(filepath=str(path))
    height, width = SIZE
    for number in range(1, FRAMES + 1):
        detections = []
        for name, (x1, y1, x2, y2) in _boxes(number).items():
            detections.append(
                fo.Detection(
                    label=name,
                    bounding_box=[x1 / width, y1 / height, (x2 - x1) / width, (y2 - y1) / height],
                    mask=np.ones((y2 - y1, x2 - x1), dtype=bool),
                    tags=["ntt:ref"] if number == 1 else [],
                )
            )
        sample.frames[number] = fo.Frame(ground_truth=fo.Detections(detections=detections))
    dataset.add_sample(sample)
    dataset.add_sample_field("note", fo.StringField)
    dataset.set_values("note", ["keep"])
    return dataset


def _iou(a, b) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, x2 - x1) * max(0, y2 - y1)
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def test_frames_decode_without_ffmpeg(video_dataset):
    from fiftyone_ntt.fiftyone.video import iter_frames, video_metadata

    path = video_dataset.first().filepath
    metadata = video_metadata(path)
    assert (metadata.frame_width, metadata.frame_height) == (128, 96)
    assert metadata.total_frame_count == FRAMES
    frames = list(iter_frames(path, [1, 24]))
    assert [n for n, _ in frames] == [1, 24]
    assert frames[0][1].shape == (96, 128, 3) and frames[0][1].dtype == np.uint8


def test_segment_every_frame_resume_and_evaluate(video_dataset, field_hash):
    from fiftyone_ntt.fiftyone.video import evaluate_frames, frame_references, segment_frames
    from fiftyone_ntt.memory_bank import build_memory_bank

    dataset = video_dataset
    gt_frames_before = [f.to_dict() for f in dataset.first().frames.values()]
    note_before = field_hash(dataset, "note")

    references = frame_references(dataset, "frames.ground_truth")
    assert sorted(r.class_name for r in references) == ["green", "red"]
    from fiftyone_ntt.testing import ColorEncoder, RegionProposer

    # The same fakes that FIFTYONE_NTT_TEST_MODELS=fake makes segment_frames load.
    bank = build_memory_bank(references, ColorEncoder(), RegionProposer())

    stats = segment_frames(dataset, bank, "ntt")
    assert stats == {"videos": 1, "frames": FRAMES, "segmented": FRAMES, "skipped_done": 0}

    # The moving instances are found in every frame, where they are.
    sample = dataset.first()
    height, width = SIZE
    for number, frame in sample.frames.items():
        found = {}
        for det in frame["ntt"].detections:
            x, y, w, h = det.bounding_box
            found.setdefault(det.label, (x * width, y * height, (x + w) * width, (y + h) * height))
        for name, box in _boxes(number).items():
            assert name in found, (number, name)
            assert _iou(found[name], box) > 0.8, (number, name, found[name], box)

    # Resume: nothing left; after losing a few frames' predictions, only those are redone.
    assert segment_frames(dataset, bank, "ntt")["segmented"] == 0
    for number in (5, 6, 7):
        sample.frames[number]["ntt"] = None
    sample.save()
    again = segment_frames(dataset, bank, "ntt")
    assert again["segmented"] == 3 and again["skipped_done"] == FRAMES - 3

    # A frame field written by something else is not overwritten.
    with pytest.raises(ValueError, match="not written by this bank"):
        segment_frames(dataset, bank, "ground_truth")

    results = evaluate_frames(dataset, "ntt", "ground_truth", eval_key="ev")
    assert results.mAP() > 0.9
    tp, fn = dataset.sum("frames.ev_tp"), dataset.sum("frames.ev_fn")
    assert tp == 2 * FRAMES and fn == 0

    # Ground truth (labels and their reference tags) and unrelated fields are untouched,
    # except the per-label evaluation attributes FiftyOne writes.
    after = [f.to_dict() for f in dataset.first().frames.values()]
    for before_frame, after_frame in zip(gt_frames_before, after):
        for b, a in zip(
            before_frame["ground_truth"]["detections"], after_frame["ground_truth"]["detections"]
        ):
            assert {k: v for k, v in a.items() if not k.startswith("ev")} == b
    assert field_hash(dataset, "note") == note_before
