"""The inference pipeline with deterministic fake models (docs/method.md §5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fiftyone_ntt.bank_build import build_memory_bank
from fiftyone_ntt.config import NTTConfig
from fiftyone_ntt.memory_bank import EncoderMismatchError
from fiftyone_ntt.segmenter import Segmenter, StageTimer, point_grid
from fiftyone_ntt.testing import ColorEncoder, RegionProposer, paint
from fiftyone_ntt.types import Reference

pytestmark = pytest.mark.unit

RED, GREEN, BLUE = 1, 2, 3


def _reference(color, name, ref_id, box=(40, 40, 120, 110), size=(160, 200)):
    image = paint(size, [(color, box)])
    mask = np.zeros(size, dtype=bool)
    mask[box[1] : box[3], box[0] : box[2]] = True
    return Reference(image, name, ref_id, mask=mask)


@pytest.fixture
def bank():
    refs = [
        _reference(RED, "red", "r1"),
        _reference(RED, "red", "r2", box=(10, 20, 60, 60)),
        _reference(GREEN, "green", "g1"),
    ]
    return build_memory_bank(refs, ColorEncoder())


def _box_iou(a, b):
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, x2 - x1) * max(0, y2 - y1)
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def test_point_grid_is_edge_to_edge_and_x_major():
    grid = point_grid(32, 1024)
    assert grid.shape == (1024, 2)
    g = torch.linspace(0, 1023, 32) + 0.5
    assert grid[0].tolist() == [0.5, 0.5]
    assert grid[1].tolist() == [0.5, float(g[1])]  # y varies fastest
    assert grid[32].tolist() == [float(g[1]), 0.5]
    assert grid[-1].tolist() == [1023.5, 1023.5]


def test_finds_reference_class_and_not_the_other(bank):
    target = paint((240, 320), [(RED, (30, 40, 110, 120)), (BLUE, (180, 60, 290, 200))])
    predictions = Segmenter(ColorEncoder(), RegionProposer(), bank).predict(target)
    assert predictions.labels[0] == "red"
    assert predictions.scores[0] > 0.9
    assert _box_iou(predictions.boxes[0], (30, 40, 110, 120)) > 0.9
    # The blue square is proposed but resembles neither class: score 0, dropped.
    assert not any(
        _box_iou(box, (180, 60, 290, 200)) > 0.5 and score > 0.5
        for box, score in zip(predictions.boxes, predictions.scores)
    )
    assert "green" not in predictions.labels


def test_crowded_scene_keeps_separate_instances(bank):
    boxes = [(10 + 45 * i, 20, 45 + 45 * i, 70) for i in range(6)]
    target = paint((120, 300), [(RED, b) for b in boxes])
    predictions = Segmenter(ColorEncoder(), RegionProposer(), bank).predict(target)
    strong = [b for b, s in zip(predictions.boxes, predictions.scores) if s > 0.9]
    assert len(strong) == 6
    for truth in boxes:
        assert max(_box_iou(b, truth) for b in strong) > 0.85
    # Full-resolution masks, descending scores
    assert predictions.masks.shape == (len(predictions), 120, 300)
    assert np.all(np.diff(predictions.scores) <= 0)


def _square(size, box):
    m = np.zeros(size, dtype=bool)
    x1, y1, x2, y2 = box
    m[y1:y2, x1:x2] = True
    return m


def test_soft_merging_lowers_contained_duplicate(bank):
    # Explicit proposals at mask resolution: a big red square (ranked first by SAM IoU),
    # a part of it (a contained duplicate), and a disjoint red square.
    target = paint((256, 256), [(RED, (20, 20, 120, 120)), (RED, (160, 160, 220, 220))])
    big = _square((256, 256), (20, 20, 120, 120))
    part = _square((256, 256), (30, 30, 80, 80))
    far = _square((256, 256), (160, 160, 220, 220))
    proposer = RegionProposer(regions=[(part, 0.8), (big, 0.95), (far, 0.9)])
    predictions = Segmenter(ColorEncoder(), proposer, bank).predict(target)
    by_area = {int(m.sum()): s for m, s in zip(predictions.masks, predictions.scores)}
    assert by_area[100 * 100] > 0.9
    assert by_area[60 * 60] > 0.9  # disjoint: untouched
    assert by_area[50 * 50] < 0.05  # contained duplicate of the same class: decayed


def test_nms_ranks_by_sam_iou_not_by_score(bank):
    # Two nearly identical boxes: the one with the higher SAM IoU wins NMS even though its
    # semantic score is lower (it covers some background).
    target = paint((256, 256), [(RED, (40, 40, 140, 140))])
    exact = _square((256, 256), (40, 40, 140, 140))
    loose = _square((256, 256), (34, 34, 146, 146))
    proposer = RegionProposer(regions=[(exact, 0.7), (loose, 0.9)])
    proposer_swapped = RegionProposer(regions=[(exact, 0.9), (loose, 0.7)])
    segmenter = Segmenter(ColorEncoder(), proposer, bank)
    (winner,) = segmenter.predict(target).masks
    assert winner.sum() == 112 * 112
    (winner,) = Segmenter(ColorEncoder(), proposer_swapped, bank).predict(target).masks
    assert winner.sum() == 100 * 100


def test_empty_target_gives_empty_result(bank):
    target = paint((90, 70), [])
    predictions = Segmenter(ColorEncoder(), RegionProposer(), bank).predict(target)
    assert len(predictions) == 0
    assert predictions.masks.shape == (0, 90, 70)
    assert predictions.class_names == ("red", "green")


def test_unequal_shots_and_class_order(bank):
    target = paint((200, 200), [(GREEN, (20, 20, 90, 90)), (RED, (110, 110, 180, 180))])
    predictions = Segmenter(ColorEncoder(), RegionProposer(), bank).predict(target)
    strong = {lab for lab, s in zip(predictions.labels, predictions.scores) if s > 0.9}
    assert strong == {"red", "green"}


def test_max_detections_and_score_threshold(bank):
    boxes = [(10 + 45 * i, 20, 45 + 45 * i, 70) for i in range(6)]
    target = paint((120, 300), [(RED, b) for b in boxes])
    capped = Segmenter(ColorEncoder(), RegionProposer(), bank, NTTConfig(max_detections=3)).predict(
        target
    )
    assert len(capped) == 3
    thresholded = Segmenter(
        ColorEncoder(), RegionProposer(), bank, NTTConfig(score_threshold=0.5)
    ).predict(target)
    assert len(thresholded) == 6 and thresholded.scores.min() >= 0.5


def test_batch_size_changes_nothing(bank):
    target = paint((150, 150), [(RED, (10, 10, 70, 70)), (GREEN, (80, 80, 140, 140))])
    a = Segmenter(ColorEncoder(), RegionProposer(), bank, NTTConfig(points_batch_size=256))
    b = Segmenter(ColorEncoder(), RegionProposer(), bank, NTTConfig(points_batch_size=100))
    pa, pb = a.predict(target), b.predict(target)
    np.testing.assert_array_equal(pa.masks, pb.masks)
    np.testing.assert_array_equal(pa.scores, pb.scores)


def test_boxes_are_tight_and_exclusive(bank):
    target = paint((1024, 1024), [(RED, (100, 200, 300, 260))])
    predictions = Segmenter(ColorEncoder(), RegionProposer(), bank).predict(target)
    mask = predictions.masks[0]
    ys, xs = np.nonzero(mask)
    assert predictions.boxes[0].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_bank_from_another_encoder_is_refused(bank):
    class OtherEncoder(ColorEncoder):
        def __init__(self):
            super().__init__()
            self.identity = dict(self.identity, arch="other")

    with pytest.raises(EncoderMismatchError):
        Segmenter(OtherEncoder(), RegionProposer(), bank)


def test_stage_timer_records_every_stage(bank):
    timer = StageTimer()
    target = paint((100, 100), [(RED, (10, 10, 60, 60))])
    Segmenter(ColorEncoder(), RegionProposer(), bank).predict(target, timer=timer)
    assert set(timer.seconds) == {
        "preprocess",
        "dinov2",
        "sam2_encoder",
        "sam2_decoder",
        "matching",
        "nms",
        "upsample",
        "merging",
    }


def test_rejects_non_rgb_input(bank):
    with pytest.raises(ValueError, match="to_rgb_uint8"):
        Segmenter(ColorEncoder(), RegionProposer(), bank).predict(np.zeros((10, 10)))
