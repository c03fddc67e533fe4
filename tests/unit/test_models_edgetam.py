"""EdgeTAM mask proposer on tiny random weights.

EdgeTAM's RepViT image encoder is our pure-PyTorch one (``fiftyone_ntt.models.edgetam.repvit``), so
everything here runs without timm or torchvision; its equality with timm's RepViT is tested in
``test_models_repvit.py``. Meta's original ``edgetam.pt`` is written from a tiny model by
``meta_format.edgetam_hf_to_meta`` (the inverse mapping, with video-only extras) and must load
back with identical tensors and outputs.
"""

from __future__ import annotations

import sys

import pytest
import torch

from fiftyone_ntt.models import MaskProposer
from fiftyone_ntt.models.edgetam import (
    build_edgetam_model,
    native_backbone_problem,
    proposer_family,
    require_timm,
)
from fiftyone_ntt.models.edgetam.repvit import RepVitBackbone

pytestmark = pytest.mark.unit


@pytest.fixture
def no_timm(monkeypatch):
    """As on a CPU machine without torchvision: neither imports."""
    monkeypatch.setitem(sys.modules, "timm", None)  # makes "import timm" raise ImportError
    monkeypatch.setitem(sys.modules, "torchvision", None)


def _resnet_edgetam_config():
    from transformers import EdgeTamConfig, EdgeTamVisionConfig, TimmWrapperConfig

    backbone = TimmWrapperConfig(architecture="resnet50", model_args={"features_only": True})
    return EdgeTamConfig(vision_config=EdgeTamVisionConfig(backbone_config=backbone))


def test_missing_timm_is_explained_for_a_non_repvit_backbone(no_timm):
    with pytest.raises(ImportError, match=r"needs the 'timm' package.*sam2\.1-hiera-tiny"):
        require_timm()
    with pytest.raises(ImportError, match=r"'resnet50' is not a RepViT.*EdgeTAM-hf"):
        build_edgetam_model(_resnet_edgetam_config())


def test_builds_without_timm_and_restores_transformers(no_timm):
    from transformers.models.edgetam import modeling_edgetam

    from fiftyone_ntt.models.tiny import tiny_edgetam_config

    auto_model = modeling_edgetam.AutoModel
    model = build_edgetam_model(tiny_edgetam_config())
    assert isinstance(model.vision_encoder.backbone, RepVitBackbone)
    assert model.vision_encoder.backbone.channels == (8, 16, 32, 64)
    assert modeling_edgetam.AutoModel is auto_model
    with pytest.raises(ImportError):  # restored on errors too
        build_edgetam_model(_resnet_edgetam_config())
    assert modeling_edgetam.AutoModel is auto_model


def test_backbone_problems_are_named():
    from transformers import TimmWrapperConfig

    from fiftyone_ntt.models.tiny import tiny_edgetam_config

    assert native_backbone_problem(tiny_edgetam_config().vision_config.backbone_config) is None
    hub_like = TimmWrapperConfig(
        architecture="repvit_m1.dist_in1k",
        model_args={"in_chans": 3, "features_only": True, "out_indices": [0, 1, 2, 3]},
    )
    assert native_backbone_problem(hub_like) is None
    odd = TimmWrapperConfig(architecture="repvit_m1", model_args={"features_only": True, "x": 1})
    assert "['x']" in native_backbone_problem(odd)


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


@pytest.fixture(scope="module")
def proposer():
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
    from fiftyone_ntt.models.edgetam import EdgeTamProposer
    from fiftyone_ntt.models.tiny import tiny_sam2_model

    with pytest.raises(TypeError, match="EdgeTamModel"):
        EdgeTamProposer(tiny_sam2_model(), source="x")


def test_batched_embedding_equals_one_by_one(proposer, image):
    from fiftyone_ntt.models.batch_embed import embed_images

    other = torch.rand((3, 1024, 1024), generator=torch.Generator().manual_seed(6))
    batched = embed_images(proposer, torch.stack([image, other]))
    for pixels, got in zip((image, other), batched, strict=True):
        alone = proposer.embed(pixels)
        for name in ("image", "high_res_s0", "high_res_s1"):
            expected = getattr(alone, name)
            scale = float(expected.abs().max())
            torch.testing.assert_close(
                getattr(got, name), expected, rtol=1e-5, atol=1e-5 * scale, msg=name
            )


def test_folder_missing_a_backbone_tensor_is_refused(tmp_path, proposer):
    from safetensors.torch import load_file, save_file

    from fiftyone_ntt.models.checkpoints import CheckpointError
    from fiftyone_ntt.models.edgetam import load_edgetam

    folder = tmp_path / "edgetam"
    proposer.edgetam.save_pretrained(folder)
    weights = load_file(folder / "model.safetensors")
    name = "vision_encoder.backbone.timm_model.stages_2.blocks.0.se.fc1.weight"
    del weights[name]
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"stages_2\.blocks\.0\.se\.fc1\.weight"):
        load_edgetam(str(folder))


# --------------------------------------------------------------------------------------------
# Meta's original edgetam.pt (converted at load)
# --------------------------------------------------------------------------------------------


@pytest.fixture
def tiny_edgetam_spec(monkeypatch):
    """Registers the tiny RepViT as a known EdgeTAM size (its 2-head decoder is not readable
    from the tensors), as test_checkpoints.py does for the tiny Hiera."""
    from fiftyone_ntt.models.edgetam import conversion as edgetam_conversion

    spec = edgetam_conversion.EdgeTamSpec(
        "edgetam_tiny_random", "repvit_m1", (8, 16, 32, 64), (1, 1, 1, 1), decoder_heads=2
    )
    monkeypatch.setitem(edgetam_conversion.EDGETAM_SPECS, spec.key, spec)
    return spec


def _save_original(proposer, path):
    from meta_format import edgetam_hf_to_meta

    torch.save({"model": edgetam_hf_to_meta(proposer.edgetam.state_dict())}, path)
    return path


@pytest.mark.parametrize("name", ["edgetam.pt", "renamed_weights.bin"])
def test_original_file_round_trip(
    tmp_path, tiny_edgetam_spec, proposer, embedding, points, image, name, caplog
):
    from fiftyone_ntt.models import load_proposer
    from fiftyone_ntt.models.edgetam import EdgeTamProposer, load_edgetam

    path = _save_original(proposer, tmp_path / name)
    assert proposer_family(str(path)) == "edgetam"
    with caplog.at_level("INFO"):
        model, info = load_edgetam(str(path))
    assert "11 video-only tensors ignored" in caplog.text
    assert info["kind"] == "file" and info["arch"] == "repvit_m1"
    original = proposer.edgetam.state_dict()
    converted = model.state_dict()
    assert sorted(converted) == sorted(original)
    for key, value in original.items():
        assert torch.equal(converted[key], value), key
    assert isinstance(model.vision_encoder.backbone, RepVitBackbone)

    loaded = load_proposer(str(path), device="cpu")
    assert isinstance(loaded, EdgeTamProposer)
    assert loaded.identity["family"] == "edgetam" and loaded.identity["weights"] == "file"
    # The same prompts per decoder pass as the fixture: batching may change the last bits.
    loaded.decode_batch_size = proposer.decode_batch_size
    again = loaded.embed(image)
    for field in ("image", "high_res_s0", "high_res_s1"):
        assert torch.equal(getattr(again, field), getattr(embedding, field)), field
    a = proposer.propose(embedding, points, 0.0)
    b = loaded.propose(again, points, 0.0)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    boxes = torch.tensor([[100.0, 150.0, 600.0, 700.0]])
    for x, y in zip(
        proposer.segment_boxes(embedding, boxes), loaded.segment_boxes(again, boxes), strict=True
    ):
        assert torch.equal(x, y)


def test_original_without_batch_norm_counters_loads(tmp_path, tiny_edgetam_spec, proposer):
    from meta_format import edgetam_hf_to_meta

    from fiftyone_ntt.models.edgetam import load_edgetam

    state = edgetam_hf_to_meta(proposer.edgetam.state_dict())
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "edgetam.pt"
    torch.save({"model": state}, path)
    model, _ = load_edgetam(str(path))
    original = proposer.edgetam.state_dict()
    for key, value in model.state_dict().items():
        expected = torch.zeros_like(value) if key.endswith("num_batches_tracked") else original[key]
        assert torch.equal(value, expected), key


def test_released_layout_is_recognised_from_shapes():
    """The full-size layout (built on the meta device, no weights): RepViT-M1, 256-wide
    8-head decoder, as in transformers' EdgeTAM config; stock model_args (no overrides)."""
    from meta_format import edgetam_hf_to_meta
    from transformers import EdgeTamConfig, TimmWrapperConfig

    from fiftyone_ntt.models.edgetam.conversion import infer_edgetam_architecture

    backbone = TimmWrapperConfig(
        architecture="repvit_m1",
        model_args={"in_chans": 3, "features_only": True, "out_indices": [0, 1, 2, 3]},
    )
    reference = EdgeTamConfig(vision_config={"backbone_config": backbone})
    with torch.device("meta"):
        model = build_edgetam_model(reference)
    arch = infer_edgetam_architecture(edgetam_hf_to_meta(model.state_dict()))
    assert arch.spec.name == "edgetam"
    assert arch.model_args == backbone.model_args
    config = arch.to_config()
    for sub in ("prompt_encoder_config", "mask_decoder_config"):
        assert getattr(config, sub).to_dict() == getattr(reference, sub).to_dict(), sub
    got, want = config.vision_config.to_dict(), reference.vision_config.to_dict()
    for key in ("backbone_channel_list", "fpn_hidden_size", "fpn_top_down_levels"):
        assert got[key] == want[key], key


def test_unknown_size_names_the_known_ones(tmp_path, proposer):
    from fiftyone_ntt.models.checkpoints import CheckpointError
    from fiftyone_ntt.models.edgetam import load_edgetam

    path = _save_original(proposer, tmp_path / "edgetam.pt")
    with pytest.raises(CheckpointError, match=r"unknown EdgeTAM RepViT size.*\[48, 96, 192, 384\]"):
        load_edgetam(str(path))


def test_original_missing_a_trunk_tensor_is_named(tmp_path, tiny_edgetam_spec, proposer):
    from meta_format import edgetam_hf_to_meta

    from fiftyone_ntt.models.checkpoints import CheckpointError
    from fiftyone_ntt.models.edgetam import load_edgetam

    state = edgetam_hf_to_meta(proposer.edgetam.state_dict())
    del state["image_encoder.trunk.body.stages_2.blocks.0.se.fc1.weight"]
    path = tmp_path / "edgetam.pt"
    torch.save({"model": state}, path)
    with pytest.raises(
        CheckpointError, match=r"edgetam\.pt.*missing.*stages_2\.blocks\.0\.se\.fc1"
    ):
        load_edgetam(str(path))


def test_truncated_and_foreign_files_are_refused(tmp_path, tiny_edgetam_spec, proposer):
    from fiftyone_ntt.models import load_proposer
    from fiftyone_ntt.models.checkpoints import CheckpointError
    from fiftyone_ntt.models.edgetam import load_edgetam

    good = _save_original(proposer, tmp_path / "edgetam.pt")
    truncated = tmp_path / "truncated_edgetam.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, foreign)
    for path in (truncated, foreign):
        for load in (load_edgetam, load_proposer):
            with pytest.raises(CheckpointError) as caught:
                load(str(path))
            message = str(caught.value)
            assert str(path) in message, message
            assert "edgetam.pt" in message or "could not be read" in message, message
            assert "hub id" in message, message


def test_sam2_and_edgetam_files_point_to_each_other(tmp_path, tiny_edgetam_spec, proposer):
    from meta_format import sam2_hf_to_meta

    from fiftyone_ntt.models.checkpoints import CheckpointError
    from fiftyone_ntt.models.edgetam import load_edgetam
    from fiftyone_ntt.models.sam2.loader import load_sam2
    from fiftyone_ntt.models.tiny import tiny_sam2_model

    edgetam_file = _save_original(proposer, tmp_path / "edgetam.pt")
    with pytest.raises(CheckpointError, match=r"edgetam\.pt.*EdgeTAM checkpoint.*load_proposer"):
        load_sam2(str(edgetam_file))
    sam2_file = tmp_path / "sam2_hiera_tiny.pt"
    torch.save({"model": sam2_hf_to_meta(tiny_sam2_model().state_dict())}, sam2_file)
    assert proposer_family(str(sam2_file)) == "sam2"
    with pytest.raises(
        CheckpointError, match=r"sam2_hiera_tiny\.pt.*SAM 2 checkpoint.*load_proposer"
    ):
        load_edgetam(str(sam2_file))


def test_hub_repo_holding_only_the_original_file(
    tmp_path, monkeypatch, tiny_edgetam_spec, proposer, embedding, points, image
):
    """``facebook/EdgeTAM`` holds Meta's ``edgetam.pt`` only (what transformers' conversion
    script downloads): from the cache, offline, it is converted like a local file."""
    from fake_hub import snapshot

    from fiftyone_ntt.models import load_proposer

    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _save_original(proposer, snapshot(cache, "facebook/EdgeTAM") / "edgetam.pt")
    assert proposer_family("facebook/EdgeTAM") == "edgetam"
    loaded = load_proposer("facebook/EdgeTAM", device="cpu")
    assert loaded.identity["family"] == "edgetam"
    assert loaded.identity["weights"].startswith("hub:original:edgetam.pt@")
    loaded.decode_batch_size = proposer.decode_batch_size
    expected = proposer.propose(embedding, points, 0.0)
    got = loaded.propose(loaded.embed(image), points, 0.0)
    for x, y in zip(expected, got, strict=True):
        assert torch.equal(x, y)
