"""Reliability of EdgeTAM's video memory as a propagator (issue 25, docs/method.md §17.3):
what cannot work is refused before a run starts, with a message naming the value and the
fix (an EdgeTAM hub id or folder, ``propagator=``, or ``keyframe_every=1``): a proposer that
is not EdgeTAM, a proposer whose weights hold no video memory (Meta's ``edgetam.pt`` under
any name, an image-only folder, a checkpoint lacking memory tensors, no checkpoint at all),
and a video model of other sizes than the proposer's."""

from __future__ import annotations

import pytest
import torch
from video_propagators import (
    EDGETAM,
    SAM2,
    empty_folder,
    fixed_source,
    image_only_folder,
    lacking_tensors,
    meta_file,
    refusal_message,
)

from fiftyone_ntt.models.edgetam.proposer import EDGETAM_HUB_ID
from fiftyone_ntt.models.edgetam.video import EdgeTamVideoPropagator
from fiftyone_ntt.models.tiny import tiny_edgetam_proposer
from fiftyone_ntt.testing import RegionProposer

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def models():
    return EDGETAM.tiny_models(seed=0)


# ------------------------------------------------------------------ proposers that are not EdgeTAM


def _sam2(_models, _folder):
    return SAM2.proposer(SAM2.tiny_models(seed=0), "facebook/sam2.1-hiera-tiny")


#: (id, proposer maker, words the message must contain)
NOT_EDGETAM = [
    ("a SAM 2 proposer", _sam2, ["an EdgeTAM proposer", "'sam2'", "keyframe_every=1"]),
    ("the fake proposer", lambda m, f: RegionProposer(), ["an EdgeTAM proposer", "propagator"]),
    ("not a proposer", lambda m, f: object(), ["'object'", "keyframe_every=1"]),
]


@pytest.mark.parametrize(("case", "make", "words"), NOT_EDGETAM, ids=[c[0] for c in NOT_EDGETAM])
def test_a_proposer_that_is_not_edgetam_is_refused(models, tmp_path, case, make, words):
    with pytest.raises(ValueError) as caught:
        EdgeTamVideoPropagator.from_proposer(make(models, tmp_path))
    for word in words:
        assert word in str(caught.value), (case, str(caught.value))


# ------------------------------------------------------------------ sources without video memory


#: (id, source maker, words the message must contain besides the source and the fix)
NO_MEMORY = [
    ("no source", fixed_source(""), ["Meta's original EdgeTAM file"]),
    ("Meta's edgetam.pt", fixed_source("/weights/edgetam.pt"), ["converted for images only"]),
    (
        "Meta's file under another name",
        meta_file("my_edgetam_weights.bin", "image_encoder.trunk.body.0.weight"),
        ["converted for images only"],
    ),
    ("an image-only EdgeTAM folder", image_only_folder, ["not an EdgeTAM video checkpoint"]),
    (
        "a checkpoint lacking memory tensors",
        lacking_tensors("spatial_perceiver."),
        ["spatial_perceiver."],
    ),
    ("a folder without a checkpoint", empty_folder, ["no EdgeTAM video model at"]),
]


@pytest.mark.parametrize(("case", "make", "words"), NO_MEMORY, ids=[c[0] for c in NO_MEMORY])
def test_a_proposer_without_video_memory_is_refused_with_the_fix(
    models, tmp_path, case, make, words
):
    source = make(models, tmp_path)
    message = refusal_message(EDGETAM, models, source)
    for word in [repr(source), EDGETAM_HUB_ID, "propagator=", "keyframe_every=1", *words]:
        assert word in message, (case, message)


# ------------------------------------------------------------------ video model of other sizes


def _other_sizes(models):
    # the 32-wide tiny proposer against the 128-wide tiny video model
    return tiny_edgetam_proposer(seed=0), models[0]


def _other_decoder(models):
    video, _ = EDGETAM.tiny_models(seed=1)
    proposer = EDGETAM.proposer(models, "x")
    video.mask_decoder.iou_prediction_head.proj_out = torch.nn.Linear(128, 5)
    return proposer, video


MISMATCHED = [
    ("a video model of other widths", _other_sizes),
    ("a video model with another decoder head", _other_decoder),
]


@pytest.mark.parametrize(("case", "make"), MISMATCHED, ids=[c[0] for c in MISMATCHED])
def test_a_video_model_of_other_sizes_is_refused(models, case, make):
    proposer, video = make(models)
    with pytest.raises(ValueError, match="EdgeTAM video model and the proposer's image model"):
        EdgeTamVideoPropagator.from_proposer(proposer, video)


def _count_cases() -> dict[str, int]:
    """How many bad-input cases this file covers."""
    return {
        "EdgeTAM video: proposer not EdgeTAM": len(NOT_EDGETAM),
        "EdgeTAM video: no video memory in the source": len(NO_MEMORY),
        "EdgeTAM video: video model of other sizes": len(MISMATCHED),
    }
