"""NTTConfig.class_score_thresholds (issue 23 §1, docs/method.md §16.1): per-class score
cuts applied where score_threshold is, off by default and in every preset."""

from __future__ import annotations

import numpy as np
import pytest

from fiftyone_ntt.bank_build import build_memory_bank
from fiftyone_ntt.config import PRESETS, NTTConfig
from fiftyone_ntt.segmenter import Segmenter
from fiftyone_ntt.testing import ColorEncoder, RegionProposer, paint
from fiftyone_ntt.types import Reference

pytestmark = pytest.mark.unit

RED, GREEN, BLUE = 1, 2, 3


def _reference(color, name, ref_id, box=(40, 40, 120, 110), size=(160, 200)):
    image = paint(size, [(color, box)])
    mask = np.zeros(size, dtype=bool)
    mask[box[1] : box[3], box[0] : box[2]] = True
    return Reference(image, name, ref_id, mask=mask)


@pytest.fixture(scope="module")
def bank():
    refs = [_reference(RED, "red", "r1"), _reference(GREEN, "green", "g1")]
    return build_memory_bank(refs, ColorEncoder(bias=0.05))


def test_off_by_default_in_every_preset_and_left_out_of_the_recorded_settings():
    assert all(p.class_score_thresholds is None for p in PRESETS.values())
    assert "class_score_thresholds" not in NTTConfig().to_dict()
    config = NTTConfig(class_score_thresholds={"red": 0.5})
    assert config.to_dict()["class_score_thresholds"] == {"red": 0.5}
    assert NTTConfig.from_dict(config.to_dict()) == config
    hash(config)  # usable as a key, like every other config


def test_each_class_is_cut_at_its_own_threshold(bank):
    target = paint(
        (160, 320),
        [(RED, (10, 20, 80, 90)), (GREEN, (120, 20, 190, 90)), (BLUE, (220, 20, 300, 90))],
    )
    # small model inputs: the fake models need no more
    grid = NTTConfig(points_per_side=8, target_size=256, semantic_size=252)
    plain = Segmenter(ColorEncoder(bias=0.05), RegionProposer(), bank, grid).predict(target)
    strong = {lab: s for lab, s in zip(plain.labels, plain.scores) if s > 0.9}
    assert set(strong) == {"red", "green"}  # the blue box scores lower, as some class
    weak = [(lab, s) for lab, s in zip(plain.labels, plain.scores) if s <= 0.9]
    assert weak, "the test needs a low-scoring detection"
    cut = {"red": 0.9, "green": 0.9}
    config = grid.replace(class_score_thresholds=cut)
    kept = Segmenter(ColorEncoder(bias=0.05), RegionProposer(), bank, config).predict(target)
    assert sorted(kept.labels) == sorted(strong)
    # a class without a threshold keeps everything
    only_red = grid.replace(class_score_thresholds={"red": 0.9})
    out = Segmenter(ColorEncoder(bias=0.05), RegionProposer(), bank, only_red).predict(target)
    expected = [(lab, s) for lab, s in zip(plain.labels, plain.scores) if lab != "red" or s >= 0.9]
    assert list(zip(out.labels, out.scores)) == expected


def test_a_threshold_of_a_class_the_bank_lacks_is_refused(bank):
    config = NTTConfig(class_score_thresholds={"cat": 0.5})
    with pytest.raises(ValueError, match=r"'cat'.*not classes of the bank.*\['red', 'green'\]"):
        Segmenter(ColorEncoder(bias=0.05), RegionProposer(), bank, config)
