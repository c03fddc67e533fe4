"""Negative references (a method extension): stored like references, they drop proposals
that look at least as much like a rejected instance as like their class. Deterministic fakes
(:mod:`fiftyone_ntt.testing`) make every similarity known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fiftyone_ntt.bank_build import build_memory_bank, split_negatives
from fiftyone_ntt.config import NTTConfig
from fiftyone_ntt.matching import suppressed_by_negatives
from fiftyone_ntt.memory_bank import FORMAT_VERSION, GLOBAL_NEGATIVE, MemoryBank
from fiftyone_ntt.segmenter import Segmenter
from fiftyone_ntt.testing import ColorEncoder, RegionProposer, paint
from fiftyone_ntt.types import Reference

pytestmark = pytest.mark.unit

RED, GREEN, YELLOW = 1, 2, 4
SIZE = (256, 256)  # target pixels = the fake proposer's 256 x 256 mask cells
TRUE_RED = (20, 20, 80, 80)
GREEN_BOX = (20, 150, 80, 210)
#: The distractor: half red, half yellow; the red prototype accepts it (score ~0.7).
DISTRACTOR = (140, 20, 200, 80)
V1_BANK = Path(__file__).parent / "data" / "bank_v1.safetensors"


def _mask(box, size=SIZE):
    mask = np.zeros(size, dtype=bool)
    mask[box[1] : box[3], box[0] : box[2]] = True
    return mask


def _distractor_image():
    return paint(SIZE, [(RED, (140, 20, 170, 80)), (YELLOW, (170, 20, 200, 80))])


def _positives():
    square = (60, 60, 140, 140)
    return [
        Reference(paint(SIZE, [(RED, square)]), "red", "r1", mask=_mask(square)),
        Reference(paint(SIZE, [(GREEN, square)]), "green", "g1", mask=_mask(square)),
    ]


def _negative(name="red", ref_id="n1"):
    """The distractor, seen in another image, marked as a negative."""
    return Reference(_distractor_image(), name, ref_id, mask=_mask(DISTRACTOR))


def _predict(bank, config=None):
    target = paint(
        SIZE,
        [
            (RED, TRUE_RED),
            (RED, (140, 20, 170, 80)),
            (YELLOW, (170, 20, 200, 80)),
            (GREEN, GREEN_BOX),
        ],
    )
    regions = [(_mask(TRUE_RED), 0.9), (_mask(DISTRACTOR), 0.9), (_mask(GREEN_BOX), 0.9)]
    segmenter = Segmenter(ColorEncoder(), RegionProposer(regions=regions), bank, config)
    return segmenter.predict(target)


def _as_tuples(predictions):
    return [
        (label, tuple(box.tolist()), float(score), mask.tobytes())
        for label, box, score, mask in zip(
            predictions.labels, predictions.boxes, predictions.scores, predictions.masks
        )
    ]


def _without(predictions, box):
    keep = [tuple(b.tolist()) != tuple(float(v) for v in box) for b in predictions.boxes]
    return predictions[np.array(keep)]


@pytest.fixture(scope="module")
def baseline():
    bank = build_memory_bank(_positives(), ColorEncoder())
    return bank, _predict(bank)


def test_the_positives_accept_the_distractor(baseline):
    _, predictions = baseline
    found = {
        tuple(b.tolist()): (lab, s)
        for b, lab, s in zip(predictions.boxes, predictions.labels, predictions.scores)
    }
    label, score = found[tuple(float(v) for v in DISTRACTOR)]
    assert label == "red" and 0.5 < score < 0.9
    assert found[tuple(float(v) for v in TRUE_RED)][0] == "red"
    assert found[tuple(float(v) for v in GREEN_BOX)][0] == "green"


def test_rejected_distractor_is_removed_and_nothing_else_changes(baseline):
    _, before = baseline
    bank = build_memory_bank(_positives(), ColorEncoder(), negatives=[_negative()])
    assert bank.num_negatives == 1 and bank.negatives_per_class() == {"red": 1}
    after = _predict(bank)
    assert len(after) == len(before) - 1
    assert tuple(float(v) for v in DISTRACTOR) not in [tuple(b.tolist()) for b in after.boxes]
    # every other detection bit-identical: masks, boxes, scores, labels, order
    assert _as_tuples(after) == _as_tuples(_without(before, DISTRACTOR))


def test_negative_of_another_class_does_not_suppress(baseline):
    _, before = baseline
    bank = build_memory_bank(_positives(), ColorEncoder(), negatives=[_negative("green")])
    assert bank.negatives_per_class() == {"green": 1}
    assert _as_tuples(_predict(bank)) == _as_tuples(before)


def test_global_negative_suppresses_any_class(baseline):
    _, before = baseline
    bank = build_memory_bank(_positives(), ColorEncoder(), negatives=[_negative("background")])
    assert bank.num_global_negatives == 1 and bank.negative_class_ids.tolist() == [-1]
    assert _as_tuples(_predict(bank)) == _as_tuples(_without(before, DISTRACTOR))


def test_margin_keeps_what_is_not_clearly_closer_to_the_negative(baseline):
    _, before = baseline
    bank = build_memory_bank(_positives(), ColorEncoder(), negatives=[_negative()])
    # the distractor: n ~ 1, s ~ 0.7: dropped at margin 0, kept at margin 0.5
    assert _as_tuples(_predict(bank, NTTConfig(negative_margin=0.5))) == _as_tuples(before)
    with pytest.raises(ValueError, match="negative_margin"):
        NTTConfig(negative_margin=1.5)


def test_bank_without_negatives_gives_identical_predictions(baseline):
    bank, before = baseline
    assert bank.num_negatives == 0
    assert Segmenter(ColorEncoder(), RegionProposer(), bank).negatives is None
    # a negative that resembles nothing in the image (cosine 0) changes nothing either:
    # exercises the code path with the same result, bit for bit
    blue = Reference(
        paint(SIZE, [(3, (10, 10, 90, 90))]), "red", "n-blue", mask=_mask((10, 10, 90, 90))
    )
    with_unrelated = build_memory_bank(_positives(), ColorEncoder(), negatives=[blue])
    assert _as_tuples(_predict(with_unrelated)) == _as_tuples(before)


def test_suppression_rule_by_hand():
    pooled = torch.tensor([[1.0, 0.0], [0.6, 0.8], [float("nan"), float("nan")], [0.0, 1.0]])
    class_ids = torch.tensor([0, 0, 0, 1])
    scores = torch.tensor([0.9, 0.5, 0.0, 0.2])
    negatives = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    # negative 0 of class 0, negative 1 of class 2 (not these proposals' classes)
    drop = suppressed_by_negatives(pooled, class_ids, scores, negatives, torch.tensor([0, 2]))
    # row 0: n = 0.6 < 0.9 kept; row 1: n = 1 >= 0.5 dropped; NaN kept; row 3: other class
    assert drop.tolist() == [False, True, False, False]
    drop = suppressed_by_negatives(pooled, class_ids, scores, negatives, torch.tensor([0, -1]))
    assert drop.tolist() == [False, True, False, True]  # the global negative applies to class 1
    # n exactly equal to s drops (>=); with margin it does not
    equal = suppressed_by_negatives(
        pooled[:1], class_ids[:1], torch.tensor([0.6]), negatives[:1], torch.tensor([0])
    )
    assert equal.tolist() == [True]
    assert not suppressed_by_negatives(
        pooled[:1], class_ids[:1], torch.tensor([0.6]), negatives[:1], torch.tensor([0]), 0.01
    ).any()
    none = suppressed_by_negatives(
        pooled, class_ids, scores, negatives[:0], torch.tensor([]).long()
    )
    assert not none.any()


def test_round_trip_with_negatives(tmp_path):
    bank = build_memory_bank(
        _positives(), ColorEncoder(), negatives=[_negative(), _negative("background", "n2")]
    )
    path = bank.save(tmp_path / "bank.safetensors")
    loaded = MemoryBank.load(path)
    assert loaded.fingerprint == bank.fingerprint
    assert loaded.negative_ids == ("n1", "n2")
    assert loaded.negative_class_ids.tolist() == [0, GLOBAL_NEGATIVE]
    np.testing.assert_array_equal(loaded.negative_features, bank.negative_features)
    assert _as_tuples(_predict(loaded)) == _as_tuples(_predict(bank))
    # negatives are part of the fingerprint
    plain = build_memory_bank(_positives(), ColorEncoder())
    assert plain.fingerprint != bank.fingerprint


def test_version_1_bank_still_loads_with_its_fingerprint(baseline):
    """tests/unit/data/bank_v1.safetensors was written by the code before negatives
    (format version 1), from the same two positives."""
    assert FORMAT_VERSION == 2
    old = MemoryBank.load(V1_BANK)  # verifies the fingerprint recorded by the old code
    assert old.num_negatives == 0 and old.negative_features.shape == (0, old.feature_dim)
    bank, before = baseline
    np.testing.assert_array_equal(old.features, bank.features)
    assert _as_tuples(_predict(old)) == _as_tuples(before)


def test_edits_keep_negatives_consistent():
    bank = build_memory_bank(
        _positives(), ColorEncoder(), negatives=[_negative(), _negative("background", "n2")]
    )
    # dropping the red references drops the red class and its negatives, keeps the global one
    green_only = bank.without(["r1"])
    assert green_only.class_names == ("green",)
    assert green_only.negative_ids == ("n2",)
    assert bank.without(["n1"]).negative_ids == ("n2",)
    green = _positives()[1]
    green.ref_id = "g2"
    other = build_memory_bank([green], ColorEncoder(), negatives=[_negative("green", "n3")])
    merged = other.merged(bank)  # classes: green, red
    assert merged.class_names == ("green", "red")
    assert dict(zip(merged.negative_ids, merged.negative_class_ids.tolist())) == {
        "n3": 0,
        "n1": 1,
        "n2": GLOBAL_NEGATIVE,
    }


def test_negative_validation_messages():
    with pytest.raises(ValueError, match=r"negatives of classes \['blue'\].*add references"):
        build_memory_bank(_positives(), ColorEncoder(), negatives=[_negative("blue")])
    usable, skipped = split_negatives(
        [_negative("blue"), _negative("red", "n2"), _negative("background", "n3")],
        ["red", "green"],
    )
    assert [n.ref_id for n in usable] == ["n2", "n3"] and skipped == {"blue": 1}
    with pytest.raises(ValueError, match="both references and negatives"):
        build_memory_bank(_positives(), ColorEncoder(), negatives=[_negative(ref_id="r1")])
    bank = build_memory_bank(_positives(), ColorEncoder())
    with pytest.raises(ValueError, match=r"negative features must be \(N, 6\)"):
        MemoryBank(
            features=bank.features,
            class_ids=bank.class_ids,
            class_names=bank.class_names,
            reference_ids=bank.reference_ids,
            generated_masks=bank.generated_masks,
            encoder=bank.encoder,
            settings=bank.settings,
            negative_features=np.zeros((1, 3)),
            negative_ids=("x",),
        )
