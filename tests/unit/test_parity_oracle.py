"""Segmenter == a literal transcription of docs/method.md §5 (tests/reference_oracle.py)."""

from __future__ import annotations

import numpy as np
import pytest
from reference_oracle import hf_stock_decode, oracle_predict

from fiftyone_ntt.memory_bank import build_memory_bank
from fiftyone_ntt.segmenter import Segmenter
from fiftyone_ntt.testing import ColorEncoder, RegionProposer, paint
from fiftyone_ntt.types import Reference

pytestmark = pytest.mark.unit


def _assert_same(ours, oracle, atol=1e-5):
    assert len(ours) == len(oracle["scores"])
    assert ours.labels == oracle["labels"]
    np.testing.assert_allclose(ours.scores, oracle["scores"], atol=atol)
    np.testing.assert_array_equal(ours.masks, oracle["masks"])


@pytest.mark.parametrize(
    "size", [(240, 320), (120, 90), (1100, 700)], ids=["small", "below-256", "large"]
)
def test_segmenter_equals_oracle_with_fakes(size):
    height, width = size
    ref_img = paint((200, 200), [(1, (30, 30, 120, 150)), (2, (130, 40, 190, 100))])
    m1 = np.zeros((200, 200), bool)
    m1[30:150, 30:120] = True
    m2 = np.zeros((200, 200), bool)
    m2[40:100, 130:190] = True
    bank = build_memory_bank(
        [Reference(ref_img, "red", "1", mask=m1), Reference(ref_img, "green", "2", mask=m2)],
        ColorEncoder(bias=0.01),
    )
    rng = np.random.default_rng(sum(size))
    shapes = []
    for _ in range(8):
        x1, y1 = int(rng.integers(0, width - 20)), int(rng.integers(0, height - 20))
        w, h = int(rng.integers(8, width // 3)), int(rng.integers(8, height // 3))
        shapes.append((int(rng.integers(1, 4)), (x1, y1, x1 + w, y1 + h)))
    target = paint(size, shapes)
    encoder, proposer = ColorEncoder(bias=0.01), RegionProposer()
    ours = Segmenter(encoder, proposer, bank).predict(target)
    oracle = oracle_predict(target, encoder, proposer, bank)
    assert len(ours) > 0
    _assert_same(ours, oracle)


def test_segmenter_equals_oracle_with_tiny_transformers_models():
    """Real transformers modules (tiny, random weights) end to end: our fast decoder, pooling,
    NMS and merging against the stock HF decoder and the literal §5 pipeline."""
    from fiftyone_ntt.config import NTTConfig
    from fiftyone_ntt.models import tiny_encoder, tiny_proposer

    encoder, proposer = tiny_encoder(seed=1), tiny_proposer(seed=2)
    rng = np.random.default_rng(0)
    refs = []
    for i in range(3):
        img = rng.integers(0, 256, (90 + 10 * i, 120, 3), dtype=np.uint8)
        mask = np.zeros(img.shape[:2], bool)
        mask[10 + i : 60, 20 : 80 + i] = True
        refs.append(Reference(img, f"class{i % 2}", str(i), mask=mask))
    bank = build_memory_bank(refs, encoder, config=NTTConfig())
    target = rng.integers(0, 256, (150, 210, 3), dtype=np.uint8)
    config = NTTConfig(points_per_side=8, points_batch_size=32)
    ours = Segmenter(encoder, proposer, bank, config).predict(target)
    oracle = oracle_predict(
        target, encoder, proposer, bank, decode=hf_stock_decode(proposer), points_per_side=8
    )
    assert len(ours) > 0
    _assert_same(ours, oracle, atol=1e-4)
