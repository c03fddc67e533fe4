"""EdgeTAM mask proposer on tiny random weights.

EdgeTAM's RepViT image encoder runs through ``timm``; the structural tests skip where timm is
not installed (the family detection and the missing-package message are tested everywhere).
"""

from __future__ import annotations

import sys

import pytest
import torch

from fiftyone_ntt.models import MaskProposer
from fiftyone_ntt.models.edgetam import proposer_family, require_timm

pytestmark = pytest.mark.unit


def test_missing_timm_is_explained(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # makes "import timm" raise ImportError
    with pytest.raises(ImportError, match=r"EdgeTAM needs the 'timm' package.*sam2\.1-hiera-tiny"):
        require_timm()


def test_family_from_folder_config_and_hub_name(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "edgetam"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "edgetam_video"}')
    assert proposer_family(str(folder)) == "edgetam"
    (folder / "config.json").write_text('{"model_type": "sam2"}')
    assert proposer_family(str(folder)) == "sam2"
    assert proposer_family("yonigozlan/EdgeTAM-hf") == "edgetam"
    assert proposer_family("facebook/sam2.1-hiera-tiny") == "sam2"


# ----------------------------------------------------------------------- needs timm from here


@pytest.fixture(scope="module")
def proposer():
    pytest.importorskip("timm")
    from fiftyone_ntt.models.tiny import tiny_edgetam_proposer

    return tiny_edgetam_proposer(seed=0, decode_batch_size=8)


@pytest.fixture(scope="module")
def image():
    return torch.rand((3, 1024, 1024), generator=torch.Generator().manual_seed(5))


@pytest.fixture(scope="module")
def embedding(proposer, image):
    return proposer.embed(image)


@pytest.fixture(scope="module")
def points():
    g = torch.linspace(0, 1023, 5) + 0.5
    return torch.stack(torch.meshgrid(g, g, indexing="ij"), dim=-1).reshape(-1, 2)


def _normalise(pixels: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (pixels[None] - mean) / std


def test_protocol_identity_and_shapes(proposer, embedding):
    assert isinstance(proposer, MaskProposer)
    assert proposer.input_size == 1024 and proposer.mask_size == 256
    assert proposer.identity["family"] == "edgetam"
    assert proposer.identity["arch"] == "repvit_tiny_random"
    assert embedding.image.shape == (1, 32, 64, 64)
    assert embedding.high_res_s0.shape == (1, 4, 256, 256)
    # The vision encoder run is EdgeTAM's own module, not a copy.
    assert proposer.model.vision_encoder is proposer.edgetam.vision_encoder


def test_embedding_equals_edgetam_image_features(proposer, image, embedding):
    with torch.no_grad():
        s0, s1, with_no_memory = proposer.edgetam.get_image_embeddings(_normalise(image))
    torch.testing.assert_close(embedding.high_res_s0, s0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(embedding.high_res_s1, s1, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(embedding.image_with_no_memory(), with_no_memory)
    assert (embedding.image - with_no_memory).abs().max() > 0.1  # §1.1: stored without it


def test_proposals_equal_edgetam_own_decoder(proposer, embedding, points):
    model = proposer.edgetam
    n = len(points)
    with torch.no_grad():
        sparse, dense = model.prompt_encoder(
            input_points=points[None, :, None, :],
            input_labels=torch.ones((1, n, 1), dtype=torch.long),
            input_boxes=None,
            input_masks=None,
        )
        masks, iou, _, _ = model.mask_decoder(
            image_embeddings=embedding.image,
            image_positional_embeddings=model.get_image_wide_positional_embeddings(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=True,
            high_resolution_features=[embedding.high_res_s0, embedding.high_res_s1],
        )
    masks, iou = masks[0], iou[0]
    best = iou.argmax(-1)
    score = iou.gather(1, best[:, None])[:, 0]
    threshold = float(score.median())
    keep = torch.nonzero(score > threshold).flatten()
    assert 0 < len(keep) < n
    index, logits, scores = proposer.propose(embedding, points, threshold)
    assert torch.equal(index, keep)
    torch.testing.assert_close(scores, score[keep], rtol=1e-5, atol=1e-5)
    expected = masks[keep, best[keep]]
    scale = float(expected.abs().max())
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5 * scale)


def test_boxes_equal_edgetam_forward(proposer, image, embedding):
    boxes = torch.tensor([[100.0, 150.0, 600.0, 700.0], [10.0, 900.0, 300.0, 1000.0]])
    logits, scores = proposer.segment_boxes(embedding, boxes)
    decoder = proposer.edgetam.mask_decoder
    saved = decoder.dynamic_multimask_via_stability
    decoder.dynamic_multimask_via_stability = False
    try:
        with torch.no_grad():
            out = proposer.edgetam(
                pixel_values=_normalise(image), input_boxes=boxes[None], multimask_output=False
            )
    finally:
        decoder.dynamic_multimask_via_stability = saved
    expected = out.pred_masks[0, :, 0]
    scale = float(expected.abs().max())
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5 * scale)
    torch.testing.assert_close(scores, out.iou_scores[0, :, 0], rtol=1e-5, atol=1e-5)


def test_deterministic_and_batch_size_independent(proposer, embedding, points, image):
    from fiftyone_ntt.models.tiny import tiny_edgetam_proposer

    first = proposer.propose(embedding, points, 0.0)
    wide = tiny_edgetam_proposer(seed=0, decode_batch_size=64)
    again = wide.propose(wide.embed(image), points, 0.0)
    assert torch.equal(first[0], again[0])
    torch.testing.assert_close(first[1], again[1], rtol=1e-5, atol=1e-5)
    other = tiny_edgetam_proposer(seed=1)
    assert not torch.equal(
        other.edgetam.mask_decoder.iou_token.weight, proposer.edgetam.mask_decoder.iou_token.weight
    )


def test_folder_round_trip_through_load_proposer(tmp_path, proposer, embedding, points, image):
    from fiftyone_ntt.models import load_proposer
    from fiftyone_ntt.models.edgetam import EdgeTamProposer

    proposer.edgetam.save_pretrained(tmp_path / "edgetam")
    assert proposer_family(str(tmp_path / "edgetam")) == "edgetam"
    loaded = load_proposer(str(tmp_path / "edgetam"), device="cpu")
    assert isinstance(loaded, EdgeTamProposer)
    a = proposer.propose(embedding, points, 0.0)
    b = loaded.propose(loaded.embed(image), points, 0.0)
    assert torch.equal(a[0], b[0])
    torch.testing.assert_close(a[1], b[1], rtol=1e-5, atol=1e-5)


def test_wrong_model_is_refused():
    pytest.importorskip("timm")
    from fiftyone_ntt.models.edgetam import EdgeTamProposer
    from fiftyone_ntt.models.tiny import tiny_sam2_model

    with pytest.raises(TypeError, match="EdgeTamModel"):
        EdgeTamProposer(tiny_sam2_model(), source="x")
