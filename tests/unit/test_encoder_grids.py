"""Input sizes and feature grids follow the semantic encoder (patch 14 or 16), the paper's
518 px / 37×37 path unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from fiftyone_ntt.bank_build import build_memory_bank
from fiftyone_ntt.config import FEATURE_GRID, NTTConfig, encoder_input_size
from fiftyone_ntt.memory_bank import EncoderMismatchError
from fiftyone_ntt.models.tiny import tiny_dinov3_encoder
from fiftyone_ntt.segmenter import Segmenter
from fiftyone_ntt.testing import ColorEncoder, RegionProposer, paint
from fiftyone_ntt.types import Reference

pytestmark = pytest.mark.unit

RED, GREEN, BLUE = 1, 2, 3
FOLLOW = NTTConfig()  # sizes follow the encoder (the default)
PAPER_SIZES = NTTConfig(reference_size=518, semantic_size=518)


class SpyEncoder(ColorEncoder):
    """The colour-histogram fake, recording the input sides it was given."""

    def __init__(self, patch_size: int) -> None:
        super().__init__(patch_size=patch_size)
        self.sides: list[tuple[int, int]] = []

    def encode(self, pixels):
        self.sides.append(tuple(pixels.shape[-2:]))
        return super().encode(pixels)


def _reference(color, name, ref_id, box=(40, 40, 120, 110), size=(160, 200)):
    image = paint(size, [(color, box)])
    mask = np.zeros(size, dtype=bool)
    mask[box[1] : box[3], box[0] : box[2]] = True
    return Reference(image, name, ref_id, mask=mask)


def _refs():
    return [_reference(RED, "red", "r1"), _reference(GREEN, "green", "g1")]


def test_encoder_input_size():
    assert encoder_input_size(518, 14) == 518  # the paper's
    assert encoder_input_size(None, 14) == 518
    assert encoder_input_size(None, 16) == 592 == FEATURE_GRID * 16
    assert encoder_input_size(512, 16) == 512
    with pytest.raises(ValueError, match=r"semantic_size=518 .* 16-px patch; use 512 or 528"):
        encoder_input_size(518, 16)
    with pytest.raises(ValueError, match="must be a positive integer"):
        NTTConfig(semantic_size=0)


@pytest.mark.parametrize("config", [NTTConfig(), PAPER_SIZES])
def test_paper_sizes_are_unchanged_for_patch_14(config):
    encoder = SpyEncoder(14)
    bank = build_memory_bank(_refs(), encoder, config=config)
    assert bank.settings["reference_size"] == 518
    assert encoder.sides == [(518, 518)]
    target = paint((120, 160), [(RED, (10, 10, 60, 60))])
    Segmenter(encoder, RegionProposer(), bank, config=config).predict(target)
    assert encoder.sides[-1] == (518, 518)


@pytest.mark.parametrize("patch", [14, 16])
def test_any_patch_finds_the_instances(patch):
    encoder = SpyEncoder(patch)
    bank = build_memory_bank(_refs(), encoder, config=FOLLOW)
    side = FEATURE_GRID * patch
    assert bank.settings["reference_size"] == side
    target = paint((240, 320), [(RED, (30, 40, 110, 120)), (BLUE, (180, 60, 290, 200))])
    predictions = Segmenter(encoder, RegionProposer(), bank, config=FOLLOW).predict(target)
    assert encoder.sides[-1] == (side, side)
    assert predictions.labels[0] == "red" and predictions.scores[0] > 0.9
    assert "green" not in predictions.labels[:1]


def test_a_patch_16_grid_of_32_works_too():
    config = NTTConfig(reference_size=512, semantic_size=512)
    encoder = SpyEncoder(16)
    bank = build_memory_bank(_refs(), encoder, config=config)
    target = paint((240, 320), [(GREEN, (30, 40, 110, 120))])
    predictions = Segmenter(encoder, RegionProposer(), bank, config=config).predict(target)
    assert encoder.sides[-1] == (512, 512)
    assert predictions.labels[0] == "green"


def test_paper_sizes_with_a_patch_16_encoder_are_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"reference_size=518 .* None to follow the encoder"):
        build_memory_bank(_refs(), SpyEncoder(16), config=PAPER_SIZES)
    bank = build_memory_bank(_refs(), SpyEncoder(16), config=FOLLOW)
    with pytest.raises(ValueError, match="reference_size=518"):
        Segmenter(SpyEncoder(16), RegionProposer(), bank, config=PAPER_SIZES)


def test_bank_of_another_encoder_is_refused():
    dinov3 = tiny_dinov3_encoder(seed=0)
    bank = build_memory_bank(_refs()[:1], dinov3, config=FOLLOW)
    assert bank.encoder["family"] == "dinov3"
    assert bank.settings["reference_size"] == 592
    with pytest.raises(EncoderMismatchError):
        Segmenter(SpyEncoder(16), RegionProposer(), bank, config=FOLLOW)
    from fiftyone_ntt.models import tiny_encoder

    with pytest.raises(EncoderMismatchError):
        Segmenter(tiny_encoder(seed=0), RegionProposer(), bank)


def test_tiny_dinov3_runs_the_whole_pipeline():
    dinov3 = tiny_dinov3_encoder(seed=0)
    bank = build_memory_bank(_refs(), dinov3, config=FOLLOW)
    target = paint((120, 160), [(RED, (10, 10, 60, 60))])
    predictions = Segmenter(dinov3, RegionProposer(), bank, config=FOLLOW).predict(target)
    assert len(predictions) >= 1
    assert np.all(np.isfinite(predictions.scores))
