"""Issue 22 §1: the semantic feature each prediction was matched with is kept on request
(``NTTConfig.keep_features``, docs/method.md §15), and nothing else changes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fiftyone_ntt.segmenter as segmenter_module
from fiftyone_ntt.bank_build import build_memory_bank
from fiftyone_ntt.config import PRESETS, NTTConfig
from fiftyone_ntt.matching import assign_classes
from fiftyone_ntt.segmenter import Segmenter
from fiftyone_ntt.testing import ColorEncoder, RegionProposer, paint
from fiftyone_ntt.types import Predictions, Reference

pytestmark = pytest.mark.unit

RED, GREEN, BLUE, YELLOW = 1, 2, 3, 4


def _reference(color, name, ref_id, box=(40, 40, 120, 110), size=(160, 200)):
    image = paint(size, [(color, box)])
    mask = np.zeros(size, dtype=bool)
    mask[box[1] : box[3], box[0] : box[2]] = True
    return Reference(image, name, ref_id, mask=mask)


@pytest.fixture
def bank():
    refs = [_reference(RED, "red", "r1"), _reference(GREEN, "green", "g1")]
    return build_memory_bank(refs, ColorEncoder(bias=0.05))


@pytest.fixture
def target():
    return paint(
        (240, 320),
        [(RED, (30, 40, 110, 120)), (GREEN, (180, 60, 290, 200)), (YELLOW, (130, 10, 170, 50))],
    )


def test_kept_features_are_the_vectors_matched(bank, target, monkeypatch):
    pooled_rows = []
    real_pool = segmenter_module.pool_mask_features

    def recording_pool(features, masks):
        pooled = real_pool(features, masks)
        pooled_rows.append(pooled.clone())
        return pooled

    monkeypatch.setattr(segmenter_module, "pool_mask_features", recording_pool)
    config = NTTConfig(keep_features=True)
    predictions = Segmenter(ColorEncoder(bias=0.05), RegionProposer(), bank, config).predict(target)
    assert len(predictions) >= 2
    assert predictions.features.shape == (len(predictions), bank.prototypes().shape[1])
    assert predictions.features.dtype == np.float32
    matched = torch.cat(pooled_rows).numpy()
    for i, vector in enumerate(predictions.features):
        # bit-identical to one of the rows pooled for matching ...
        assert (matched == vector).all(axis=1).any(), f"detection {i}: not a matched vector"
    # ... and the class each was given is the one these vectors give
    class_ids, scores = assign_classes(torch.from_numpy(predictions.features), bank.prototypes())
    assert class_ids.tolist() == predictions.class_ids.tolist()
    # the final score is the class cosine times a merge decay <= 1
    assert (predictions.scores <= scores.numpy() + 1e-6).all()
    np.testing.assert_allclose(np.linalg.norm(predictions.features, axis=1), 1.0, atol=1e-5)


def test_keeping_features_changes_no_prediction(bank, target):
    plain = Segmenter(ColorEncoder(bias=0.05), RegionProposer(), bank).predict(target)
    kept = Segmenter(
        ColorEncoder(bias=0.05), RegionProposer(), bank, NTTConfig(keep_features=True)
    ).predict(target)
    assert plain.features is None
    assert kept.labels == plain.labels
    np.testing.assert_array_equal(kept.scores, plain.scores)
    np.testing.assert_array_equal(kept.masks, plain.masks)


def test_empty_predictions_keep_an_empty_feature_array(bank):
    background = paint((64, 64), [])
    config = NTTConfig(keep_features=True)
    predictions = Segmenter(ColorEncoder(bias=0.05), RegionProposer(), bank, config).predict(
        background
    )
    assert len(predictions) == 0
    assert predictions.features.shape == (0, bank.prototypes().shape[1])


def test_paper_preset_and_defaults_keep_no_features():
    assert PRESETS["paper"].keep_features is False
    assert all(not preset.keep_features for preset in PRESETS.values())
    # fingerprints of runs and banks recorded before the option existed stay equal
    assert "keep_features" not in NTTConfig().to_dict()
    assert NTTConfig(keep_features=True).to_dict()["keep_features"] is True
    assert NTTConfig.from_dict(NTTConfig(keep_features=True).to_dict()).keep_features


def test_subsets_carry_their_features():
    features = np.eye(3, dtype=np.float32)
    predictions = Predictions(
        masks=np.ones((3, 4, 4), bool),
        boxes=np.zeros((3, 4)),
        scores=[0.9, 0.5, 0.1],
        class_ids=[0, 1, 0],
        class_names=("a", "b"),
        features=features,
    )
    np.testing.assert_array_equal(predictions[[2, 0]].features, features[[2, 0]])
    np.testing.assert_array_equal(predictions[predictions.scores > 0.3].features, features[:2])
    np.testing.assert_array_equal(predictions[1:].features, features[1:])


@pytest.mark.parametrize("value", ["yes", 1, None], ids=["string", "int", "none"])
def test_keep_features_must_be_a_bool(value):
    with pytest.raises(ValueError, match=r"keep_features=.* must be True or False"):
        NTTConfig(keep_features=value)


@pytest.mark.parametrize(
    "features",
    [np.zeros((2, 4)), np.zeros((3,)), np.zeros((3, 4, 1))],
    ids=["too-few-rows", "one-dimensional", "three-dimensional"],
)
def test_features_of_the_wrong_shape_are_refused(features):
    with pytest.raises(ValueError, match=r"features must be \(N, D\) with N=3"):
        Predictions(
            masks=np.ones((3, 4, 4), bool),
            boxes=np.zeros((3, 4)),
            scores=[0.9, 0.5, 0.1],
            class_ids=[0, 0, 0],
            class_names=("a",),
            features=features,
        )
