"""Reliability of SAM 2's video memory as a propagator: a proposer whose weights hold no video
memory is refused before a run starts, naming the value and the fix, by the same rule as
EdgeTAM's (``models.sam2.video.load_video_checkpoint``). transformers fills the tensors a
checkpoint lacks with random values and only warns: such a checkpoint would track with noise."""

from __future__ import annotations

import pytest
from video_propagators import (
    SAM2,
    empty_folder,
    fixed_source,
    image_only_folder,
    lacking_tensors,
    meta_file,
    refusal_message,
)

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def models():
    return SAM2.tiny_models(seed=0)


#: (id, source maker, words the message must contain besides the source and the fix)
NO_MEMORY = [
    ("no source", fixed_source(""), ["image-only file"]),
    (
        "Meta's checkpoint file",
        meta_file("sam2.1_hiera_tiny.pt", "image_encoder.trunk.patch_embed.proj.weight"),
        ["image-only file"],
    ),
    ("an image-only SAM 2 folder", image_only_folder, ["not a SAM 2 video checkpoint"]),
    (
        "a checkpoint lacking memory tensors",
        lacking_tensors("memory_attention."),
        ["memory_attention."],
    ),
    ("a folder without a checkpoint", empty_folder, ["no SAM 2 video model at"]),
]


@pytest.mark.parametrize(("case", "make", "words"), NO_MEMORY, ids=[c[0] for c in NO_MEMORY])
def test_a_sam2_proposer_without_video_memory_is_refused_with_the_fix(
    models, tmp_path, case, make, words
):
    source = make(models, tmp_path)
    message = refusal_message(SAM2, models, source)
    for word in [repr(source), "propagator=", "keyframe_every=1", *words]:
        assert word in message, (case, message)


def _count_cases() -> dict[str, int]:
    """How many bad-input cases this file covers."""
    return {"SAM 2 video: no video memory in the source": len(NO_MEMORY)}
