"""Matching math against direct, hand-checkable computations (docs/method.md §4, §5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fiftyone_ntt.masks import (
    batched_nms,
    masks_to_boxes_inclusive,
    pairwise_intersections,
    upsample_masks,
)
from fiftyone_ntt.matching import assign_classes, pool_mask_features, soft_merge_decay

pytestmark = pytest.mark.unit


def _direct_pool(features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The reference's way: upsample the grid to the mask size, mean under each mask."""
    grid = features.permute(2, 0, 1)[None]
    up = F.interpolate(
        grid, size=masks.shape[-2:], mode="bilinear", align_corners=False, antialias=True
    )
    flat = up[0].reshape(features.shape[-1], -1).T  # (m*m, D)
    m = masks.reshape(len(masks), -1).float()
    return F.normalize((m @ flat) / m.sum(1, keepdim=True), dim=1)


def test_pooling_equals_upsample_then_mean():
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(37, 37, 16, generator=gen)
    masks = torch.rand(5, 256, 256, generator=gen) > 0.7
    masks[0] = False
    masks[0, 10:20, 200:256] = True  # touches the border
    ours = pool_mask_features(features, masks)
    direct = _direct_pool(features, masks)
    assert ours.shape == (5, 16)
    torch.testing.assert_close(ours, direct, atol=2e-6, rtol=1e-5)


def test_pooling_is_not_pooling_at_patch_resolution():
    # A mask covering one 256-px cell must see the interpolated feature, not the raw patch.
    features = torch.zeros(37, 37, 2)
    features[0, 0, 0] = 1.0
    features[0, 1, 1] = 1.0
    masks = torch.zeros(1, 256, 256, dtype=torch.bool)
    masks[0, 0, 5] = True  # between patch columns 0 and 1 after upsampling
    pooled = pool_mask_features(features, masks)[0]
    assert pooled[0] > 0 and pooled[1] > 0


def test_assign_classes_clamps_at_zero_and_takes_argmax():
    pooled = F.normalize(torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.6, 0.8]]), dim=1)
    prototypes = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=1)
    class_ids, scores = assign_classes(pooled, prototypes)
    assert class_ids.tolist() == [0, 0, 1]
    torch.testing.assert_close(scores, torch.tensor([1.0, 0.0, 0.8]))


def test_boxes_use_inclusive_max_index():
    masks = torch.zeros(2, 10, 12, dtype=torch.bool)
    masks[0, 2:5, 3:8] = True  # rows 2..4, cols 3..7
    boxes = masks_to_boxes_inclusive(masks)
    assert boxes[0].tolist() == [3.0, 2.0, 7.0, 4.0]
    assert boxes[1].tolist() == [0.0, 0.0, 0.0, 0.0]  # empty


def _naive_nms(boxes, scores, classes, thr):
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))  # stable
    keep, removed = [], set()
    for i in order:
        if i in removed:
            continue
        keep.append(i)
        for j in order:
            if j in removed or j == i or classes[j] != classes[i]:
                continue
            xa = max(boxes[i][0], boxes[j][0])
            ya = max(boxes[i][1], boxes[j][1])
            xb = min(boxes[i][2], boxes[j][2])
            yb = min(boxes[i][3], boxes[j][3])
            inter = max(0.0, xb - xa) * max(0.0, yb - ya)
            area_i = (boxes[i][2] - boxes[i][0]) * (boxes[i][3] - boxes[i][1])
            area_j = (boxes[j][2] - boxes[j][0]) * (boxes[j][3] - boxes[j][1])
            union = area_i + area_j - inter
            if union > 0 and inter / union > thr:
                removed.add(j)
    return keep


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batched_nms_matches_naive_greedy(seed):
    gen = torch.Generator().manual_seed(seed)
    xy = torch.randint(0, 200, (60, 2), generator=gen).float()
    wh = torch.randint(0, 60, (60, 2), generator=gen).float()
    boxes = torch.cat([xy, xy + wh], dim=1)
    scores = torch.rand(60, generator=gen)
    classes = torch.randint(0, 3, (60,), generator=gen)
    keep = batched_nms(boxes, scores, classes, 0.5).tolist()
    assert keep == _naive_nms(boxes.tolist(), scores.tolist(), classes.tolist(), 0.5)


def test_nms_keeps_other_classes_and_ranks_by_given_score():
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 9], [0, 0, 10, 10.0]])
    scores = torch.tensor([0.5, 0.9, 0.7])
    classes = torch.tensor([0, 0, 1])
    assert batched_nms(boxes, scores, classes, 0.5).tolist() == [1, 2]


def test_upsample_masks_is_bilinear_then_positive():
    logits = torch.tensor([[[-1.0, 1.0], [-1.0, 1.0]]])
    masks = upsample_masks(logits, (2, 4))
    assert masks.tolist() == [[[False, False, True, True]] * 2]
    logits = torch.randn(7, 16, 16, generator=torch.Generator().manual_seed(0))
    chunked = upsample_masks(logits, (33, 21), chunk_pixels=700)
    whole = upsample_masks(logits, (33, 21))
    assert chunked.shape == (7, 33, 21)
    assert torch.equal(chunked, whole)


def test_pairwise_intersections_are_exact_counts():
    gen = np.random.default_rng(0)
    masks = gen.random((6, 40, 50)) > 0.5
    masks[5] = False
    expected = np.einsum("ihw,jhw->ij", masks.astype(np.int64), masks.astype(np.int64))
    got = pairwise_intersections(torch.from_numpy(masks))
    assert got.dtype == torch.float64
    np.testing.assert_array_equal(got.numpy(), expected)


def _box_mask(size, box):
    m = torch.zeros(size, dtype=torch.bool)
    x1, y1, x2, y2 = box
    m[y1:y2, x1:x2] = True
    return m


def test_soft_merge_lowers_contained_duplicate_and_leaves_disjoint():
    big = _box_mask((50, 50), (0, 0, 30, 30))
    inside = _box_mask((50, 50), (5, 5, 15, 15))
    disjoint = _box_mask((50, 50), (35, 35, 45, 45))
    masks = torch.stack([big, inside, disjoint])
    q = F.normalize(torch.tensor([[1.0, 0.0], [0.8, 0.6], [1.0, 0.0]]), dim=1)
    decay = soft_merge_decay(masks, q, torch.tensor([0, 0, 0]))
    # inside: IoS = 1, cos = 0.8 -> sqrt(0.2); big is ranked first -> 1; disjoint -> 1.
    torch.testing.assert_close(decay, torch.tensor([1.0, 0.2**0.5, 1.0]))


def test_soft_merge_only_looks_at_higher_ranked_masks_of_the_same_class():
    inside = _box_mask((50, 50), (5, 5, 15, 15))
    big = _box_mask((50, 50), (0, 0, 30, 30))
    q = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), dim=1)
    # The small mask ranked first: the big one covers it, but the big one's own IoS with
    # the small one is 100/900, so only the big one decays, by sqrt(1 - 1/9).
    decay = soft_merge_decay(torch.stack([inside, big]), q, torch.tensor([0, 0]))
    torch.testing.assert_close(decay, torch.tensor([1.0, (1 - 100 / 900) ** 0.5]))
    other_class = soft_merge_decay(torch.stack([inside, big]), q, torch.tensor([0, 1]))
    torch.testing.assert_close(other_class, torch.tensor([1.0, 1.0]))


def test_soft_merge_exponent_is_configurable():
    big = _box_mask((20, 20), (0, 0, 10, 10))
    inside = _box_mask((20, 20), (0, 0, 5, 5))
    q = F.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8]]), dim=1)
    decay = soft_merge_decay(torch.stack([big, inside]), q, torch.tensor([1, 1]), exponent=1.0)
    torch.testing.assert_close(decay, torch.tensor([1.0, 0.4]))
