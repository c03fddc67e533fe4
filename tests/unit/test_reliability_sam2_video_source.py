"""Reliability of SAM 2's video memory as a propagator: a proposer whose weights hold no video
memory is refused before a run starts, naming the value and the fix, by the same rule as
EdgeTAM's (``models.sam2.video.load_video_checkpoint``). transformers fills the tensors a
checkpoint lacks with random values and only warns: such a checkpoint would track with noise."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from fiftyone_ntt.models.sam2.proposer import Sam2Proposer
from fiftyone_ntt.models.sam2.video import Sam2VideoPropagator
from fiftyone_ntt.models.tiny_video import tiny_sam2_video_model

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def models():
    return tiny_sam2_video_model(seed=0)


def _meta_file(_models, folder: Path) -> str:
    path = folder / "sam2.1_hiera_tiny.pt"
    torch.save({"model": {"image_encoder.trunk.patch_embed.proj.weight": torch.zeros(1)}}, path)
    return str(path)


def _image_only_folder(models, folder: Path) -> str:
    models[1].save_pretrained(folder)  # a Sam2Model: no memory modules
    return str(folder)


def _lacking_memory_tensors(models, folder: Path) -> str:
    models[0].save_pretrained(folder)
    weights = folder / "model.safetensors"
    state = load_file(weights)
    kept = {k: v for k, v in state.items() if not k.startswith("memory_attention.")}
    assert len(kept) < len(state)
    save_file(kept, weights, metadata={"format": "pt"})
    return str(folder)


def _empty_folder(_models, folder: Path) -> str:
    return str(folder)


#: (id, source maker, words the message must contain besides the source and the fix)
NO_MEMORY = [
    ("no source", lambda m, f: "", ["image-only file"]),
    ("Meta's checkpoint file", _meta_file, ["image-only file"]),
    ("an image-only SAM 2 folder", _image_only_folder, ["not a SAM 2 video checkpoint"]),
    ("a checkpoint lacking memory tensors", _lacking_memory_tensors, ["memory_attention."]),
    ("a folder without a checkpoint", _empty_folder, ["no SAM 2 video model at"]),
]


@pytest.mark.parametrize(("case", "make", "words"), NO_MEMORY, ids=[c[0] for c in NO_MEMORY])
def test_a_sam2_proposer_without_video_memory_is_refused_with_the_fix(
    models, tmp_path, case, make, words
):
    source = make(models, tmp_path)
    with pytest.raises(ValueError) as caught:
        Sam2VideoPropagator.from_proposer(Sam2Proposer(models[1], source=source))
    message = str(caught.value)
    for word in [repr(source), "propagator=", "keyframe_every=1", *words]:
        assert word in message, (case, message)


def _count_cases() -> dict[str, int]:
    """How many bad-input cases this file covers."""
    return {"SAM 2 video: no video memory in the source": len(NO_MEMORY)}
