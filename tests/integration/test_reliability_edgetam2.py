"""Reliability (issue 9 §3) of loading Meta's original EdgeTAM checkpoint (issue 12 §1): a
bad ``edgetam.pt`` named as the proposer of a real (not test-model) bank build is refused
with a message naming the file and the fix; the ground truth (with its label tags), the
sample tags and an unrelated field stay byte-identical and no bank is written.

The good path (identical tensors, masks and IoU after conversion) is in
``tests/unit/test_models_edgetam.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.integration

GT = "ground_truth"


def _original_state():
    from meta_format import edgetam_hf_to_meta

    from fiftyone_ntt.models.tiny import tiny_edgetam_model

    return edgetam_hf_to_meta(tiny_edgetam_model(seed=0).state_dict())


def _truncated(folder: Path) -> Path:
    whole = folder / "whole.pt"
    torch.save({"model": _original_state()}, whole)
    path = folder / "edgetam.pt"
    path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    return path


def _foreign(folder: Path) -> Path:
    path = folder / "edgetam.pt"
    torch.save({"model": {"backbone.fc.weight": torch.zeros(4, 4)}}, path)
    return path


def _unknown_size(folder: Path) -> Path:
    # The tiny RepViT (widths 8..64) is no released EdgeTAM size (the other cases register
    # it, as the unit tests do, so that their own fault is the one reported).
    path = folder / "edgetam_custom.pt"
    torch.save({"model": _original_state()}, path)
    return path


def _missing_tensor(folder: Path) -> Path:
    state = _original_state()
    del state["sam_mask_decoder.iou_token.weight"]
    path = folder / "edgetam.pt"
    torch.save({"model": state}, path)
    return path


#: (id, file maker, words the message must contain)
CASES = [
    ("truncated edgetam.pt", _truncated, ["edgetam.pt", "could not be read", "hub id"]),
    ("foreign file named edgetam.pt", _foreign, ["edgetam.pt", "not a SAM 2", "hub id"]),
    (
        "EdgeTAM of an unknown size",
        _unknown_size,
        ["edgetam_custom.pt", "unknown EdgeTAM RepViT size", "known sizes", "hub id"],
    ),
    (
        "EdgeTAM lacking a decoder tensor",
        _missing_tensor,
        ["edgetam.pt", "EdgeTAM checkpoint lacks", "sam_mask_decoder.iou_token.weight", "hub id"],
    ),
]


def _count_cases() -> dict[str, int]:
    """How many bad-input cases this file covers (reported in the issue)."""
    return {"EdgeTAM original checkpoint (library)": len(CASES)}


@pytest.fixture
def prepared(painted_dataset, tmp_path, monkeypatch):
    import fiftyone as fo

    from fiftyone_ntt.models.tiny import tiny_dinov2_model

    dataset = painted_dataset
    dataset.add_sample_field("note", fo.StringField)
    dataset.set_values("note", [f"n{i}" for i in range(len(dataset))])
    # Real model loading (the painted fixture selects the fakes), with a local tiny encoder
    # so that only the proposer can fail.
    monkeypatch.delenv("FIFTYONE_NTT_TEST_MODELS")
    encoder = tmp_path / "dinov2"
    tiny_dinov2_model(seed=0).save_pretrained(encoder)
    return dataset, str(encoder)


@pytest.mark.parametrize("make, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_edgetam_original_is_refused_and_changes_nothing(
    prepared, field_hash, tmp_path, monkeypatch, make, words
):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.models.checkpoints import CheckpointError
    from fiftyone_ntt.models.edgetam import conversion as edgetam_conversion
    from fiftyone_ntt.presets import resolve_config

    dataset, encoder = prepared
    if make is not _unknown_size:
        spec = edgetam_conversion.EdgeTamSpec(
            "edgetam_tiny_random", "repvit_m1", (8, 16, 32, 64), (1, 1, 1, 1), decoder_heads=2
        )
        monkeypatch.setitem(edgetam_conversion.EDGETAM_SPECS, spec.key, spec)
    folder = tmp_path / "weights"
    folder.mkdir()
    path = make(folder)
    fields = (GT, "tags", "note")
    before = {f: field_hash(dataset, f) for f in fields}
    config = resolve_config("fast", proposer=str(path), encoder=encoder, device="cpu")
    with pytest.raises(CheckpointError) as info:
        nf.build_bank(dataset, GT, "b", config=config)
    message = str(info.value)
    assert str(path) in message, message
    for word in words:
        assert word in message, (word, message)
    assert {f: field_hash(dataset, f) for f in fields} == before
    assert nf.list_banks(dataset) == []


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(_count_cases()))
