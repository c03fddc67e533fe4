"""Batched prediction (issue 13 §2): B images per model call give the predictions of one
image at a time, with tiny random transformers models and images of different sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fiftyone_ntt.bank_build import build_memory_bank
from fiftyone_ntt.config import NTTConfig
from fiftyone_ntt.loader import batched, prefetched
from fiftyone_ntt.models.batch_embed import embed_images
from fiftyone_ntt.segmenter import Segmenter, StageTimer, default_batch_images
from fiftyone_ntt.testing import ColorEncoder, RegionProposer, paint
from fiftyone_ntt.types import Reference

pytestmark = pytest.mark.unit

SIZES = [(150, 210), (96, 64), (300, 120), (128, 128)]


@pytest.fixture(scope="module")
def tiny():
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
    config = NTTConfig(points_per_side=8, points_batch_size=32)
    segmenter = Segmenter(encoder, proposer, bank, config)
    images = [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for size in SIZES]
    return segmenter, images


def _assert_same(a, b, size):
    assert a.masks.shape == (len(a), *size)
    assert len(a) == len(b) > 0
    assert list(a.labels) == list(b.labels)
    np.testing.assert_array_equal(a.masks, b.masks)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_allclose(a.scores, b.scores, rtol=0, atol=1e-5)


def test_batched_equals_one_image_at_a_time_with_tiny_models(tiny):
    segmenter, images = tiny
    alone = [segmenter.predict(image) for image in images]
    together = segmenter.predict_batch(images)
    assert len(together) == len(images)
    for a, b, size in zip(together, alone, SIZES):
        _assert_same(a, b, size)
    # not a vacuous comparison: different images give different predictions
    assert not np.array_equal(alone[0].scores[:3], alone[3].scores[:3])


def test_predict_many_streams_batches_in_order(tiny):
    segmenter, images = tiny
    alone = [segmenter.predict(image) for image in images]
    timer = StageTimer()
    streamed = list(segmenter.predict_many(iter(images), batch_images=3, prefetch=2, timer=timer))
    assert len(streamed) == len(images)  # a full batch of 3, then 1
    for a, b, size in zip(streamed, alone, SIZES):
        _assert_same(a, b, size)
    assert {"dinov2", "sam2_encoder", "sam2_decoder"} <= set(timer.seconds)


def test_batched_sam2_embedding_equals_one_by_one(tiny):
    segmenter, images = tiny
    proposer = segmenter.proposer
    prepared = [segmenter.prepare(image) for image in images]
    pixels = torch.stack([p.squashed for p in prepared])
    together = embed_images(proposer, pixels)
    for p, emb in zip(prepared, together):
        alone = proposer.embed(p.squashed)
        for name in ("image", "high_res_s0", "high_res_s1", "no_memory"):
            torch.testing.assert_close(getattr(emb, name), getattr(alone, name), rtol=0, atol=1e-5)


def test_batched_with_fakes_is_exact():
    red, green = 1, 2
    image = paint((160, 200), [(red, (40, 40, 120, 110))])
    mask = np.zeros((160, 200), bool)
    mask[40:110, 40:120] = True
    bank = build_memory_bank([Reference(image, "red", "r", mask=mask)], ColorEncoder())
    segmenter = Segmenter(ColorEncoder(), RegionProposer(), bank)
    targets = [
        paint((240, 320), [(red, (30, 40, 110, 120)), (green, (180, 60, 290, 200))]),
        paint((100, 60), [(red, (5, 5, 40, 50))]),
        paint((90, 90), []),
    ]
    alone = [segmenter.predict(t) for t in targets]
    for a, b in zip(segmenter.predict_batch(targets), alone):
        assert list(a.labels) == list(b.labels)
        np.testing.assert_array_equal(a.masks, b.masks)
        np.testing.assert_array_equal(a.scores, b.scores)
    assert len(alone[2]) == 0 and len(alone[0]) > 0


def test_predict_batch_rejects_a_bad_image_before_any_model_runs():
    encoder = ColorEncoder()
    image = paint((50, 50), [(1, (5, 5, 40, 40))])
    mask = np.zeros((50, 50), bool)
    mask[5:40, 5:40] = True
    bank = build_memory_bank([Reference(image, "red", "r", mask=mask)], encoder)
    segmenter = Segmenter(encoder, RegionProposer(), bank)
    calls = encoder.calls
    with pytest.raises(ValueError, match="to_rgb_uint8"):
        segmenter.predict_batch([image, np.zeros((10, 10), np.uint8)])
    assert encoder.calls == calls
    assert segmenter.predict_batch([]) == []


def test_prefetched_keeps_order_and_reraises_at_the_failing_item():
    def work(x):
        if x == 3:
            raise OSError("unreadable 3")
        return x * 10

    out = []
    with pytest.raises(OSError, match="unreadable 3"):
        for item, value in prefetched(range(6), work, depth=2):
            out.append((item, value))
    assert out == [(0, 0), (1, 10), (2, 20)]
    assert list(prefetched(range(4), lambda x: -x, depth=0)) == [(0, 0), (1, -1), (2, -2), (3, -3)]
    assert list(batched(range(5), 2)) == [[0, 1], [2, 3], [4]]
    with pytest.raises(ValueError, match="batch size 0"):
        list(batched(range(5), 0))


def test_default_batch_images_per_device():
    assert default_batch_images("cpu") == 1
    assert default_batch_images(torch.device("cuda", 0)) == 4
