"""Issue 22 §1: the bank's reference and negative vectors per label id, and the float16
storage of vectors (docs/method.md §15)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fiftyone_ntt.bank_build import build_memory_bank
from fiftyone_ntt.embeddings import (
    NEGATIVE,
    REFERENCE,
    STORED_DTYPE,
    bank_vectors,
    compact,
    expand,
)
from fiftyone_ntt.testing import ColorEncoder, paint
from fiftyone_ntt.types import Reference

pytestmark = pytest.mark.unit

RED, GREEN, YELLOW = 1, 2, 4


def _reference(color, name, ref_id, box=(40, 40, 120, 110), size=(160, 200)):
    image = paint(size, [(color, box)])
    mask = np.zeros(size, dtype=bool)
    mask[box[1] : box[3], box[0] : box[2]] = True
    return Reference(image, name, ref_id, mask=mask)


@pytest.fixture
def bank():
    references = [
        _reference(RED, "red", "r1"),
        _reference(RED, "red", "r2", box=(10, 20, 60, 60)),
        _reference(GREEN, "green", "g1"),
    ]
    negatives = [_reference(YELLOW, "red", "n1"), _reference(YELLOW, "background", "n2")]
    return build_memory_bank(references, ColorEncoder(bias=0.05), negatives=negatives)


def test_every_reference_and_negative_has_its_vector_by_label_id(bank):
    vectors = bank_vectors(bank)
    assert vectors.ids == ("r1", "r2", "g1", "n1", "n2")
    assert vectors.roles == (REFERENCE,) * 3 + (NEGATIVE,) * 2
    assert vectors.labels == ("red", "red", "green", "red", "background")
    by_id = vectors.by_id()
    # the vectors matching compares: the negatives as the segmenter gets them ...
    negatives, _ = bank.negative_vectors()
    np.testing.assert_allclose(by_id["n1"], negatives[0].numpy(), atol=1e-6)
    np.testing.assert_allclose(by_id["n2"], negatives[1].numpy(), atol=1e-6)
    # ... and each reference's own feature, normalised (a one-shot class: its prototype)
    for i, ref_id in enumerate(("r1", "r2", "g1")):
        own = torch.nn.functional.normalize(torch.from_numpy(bank.features[i]), dim=0)
        np.testing.assert_allclose(by_id[ref_id], own.numpy(), atol=1e-6)
    np.testing.assert_allclose(by_id["g1"], bank.prototypes()[1].numpy(), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors.vectors, axis=1), 1.0, atol=1e-6)


def test_a_bank_without_negatives_gives_only_references():
    bank = build_memory_bank([_reference(RED, "red", "r1")], ColorEncoder(bias=0.05))
    vectors = bank_vectors(bank)
    assert vectors.ids == ("r1",) and vectors.roles == (REFERENCE,)
    assert vectors.vectors.shape == (1, bank.feature_dim)


def test_float16_round_trip_keeps_vectors_and_nearest_neighbours():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(2000, 768)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    stored = compact(vectors)
    assert stored.dtype == STORED_DTYPE and stored.nbytes == vectors.nbytes // 2
    back = expand(stored)
    assert back.dtype == np.float32
    assert np.abs(back - vectors).max() < 1e-3
    queries = vectors[:50]
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, 1:11]
    rounded = np.argsort(-(expand(compact(queries)) @ back.T), axis=1)[:, 1:11]
    same = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, rounded)])
    assert same >= 0.99
