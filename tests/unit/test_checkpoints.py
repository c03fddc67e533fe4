"""Loading weights: Meta's original files (key mapping, architecture inference), local
Hugging Face folders, hub ids offline, devices — all without downloads.

Meta-format state dicts are made here by inverting the mapping by hand from ``transformers``
models (tiny random ones for round trips; ``meta``-device ones for shape-only inference).
"""

from __future__ import annotations

import logging
import re

import pytest
import torch
from meta_format import dinov2_hf_to_meta, sam2_hf_to_meta

import fiftyone_ntt.models as models
from fiftyone_ntt.config import ModelConfig
from fiftyone_ntt.models import load_encoder, load_models, load_proposer
from fiftyone_ntt.models.checkpoints import (
    CheckpointError,
    ModelNotAvailableError,
    classify_source,
)
from fiftyone_ntt.models.dinov2 import DINOV2_SPECS, infer_dinov2_architecture
from fiftyone_ntt.models.sam2 import HIERA_SPECS, infer_sam2_architecture
from fiftyone_ntt.models.sam2.loader import _sam2_config_from
from fiftyone_ntt.models.tiny import (
    TINY_DINOV2_SPEC,
    TINY_HIERA_SPEC,
    tiny_dinov2_config,
    tiny_dinov2_model,
    tiny_sam2_model,
)

pytestmark = pytest.mark.unit


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture
def tiny_specs(monkeypatch):
    """Let architecture inference recognise the tiny test models."""
    monkeypatch.setitem(HIERA_SPECS, TINY_HIERA_SPEC.key, TINY_HIERA_SPEC)
    monkeypatch.setitem(DINOV2_SPECS, TINY_DINOV2_SPEC.key, TINY_DINOV2_SPEC)


@pytest.fixture(scope="module")
def sam2_model():
    return tiny_sam2_model(seed=3)


@pytest.fixture(scope="module")
def image():
    return torch.rand((3, 1024, 1024), generator=torch.Generator().manual_seed(5))


def _assert_same_weights(loaded, original):
    expected = original.state_dict()
    got = loaded.state_dict()
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert torch.equal(got[key], value), key


# --------------------------------------------------------------------------------------------
# Meta's original files: round trips
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.0", "2.1"])
def test_meta_sam2_file_round_trip(tmp_path, tiny_specs, sam2_model, image, version, caplog):
    # The file name says 2.1 / large: the loader must ignore it and read the tensors.
    path = tmp_path / "sam2.1_hiera_large.pt"
    torch.save({"model": sam2_hf_to_meta(sam2_model.state_dict(), version)}, path)
    with caplog.at_level(logging.INFO, logger="fiftyone_ntt.models"):
        proposer = load_proposer(str(path), device="cpu")
    assert proposer.identity["version"] == version
    assert proposer.identity["arch"] == "hiera_tiny_random"
    assert proposer.identity["source"] == str(path)
    assert f"SAM {version} hiera_tiny_random" in caplog.text
    _assert_same_weights(proposer.model, sam2_model)

    from fiftyone_ntt.models.sam2 import Sam2Proposer

    reference = Sam2Proposer(sam2_model, source="x", version=version)
    emb, ref_emb = proposer.embed(image), reference.embed(image)
    assert torch.equal(emb.image, ref_emb.image)
    assert torch.equal(emb.no_memory, ref_emb.no_memory)
    points = torch.tensor([[100.5, 200.5], [700.5, 300.5], [512.0, 900.0]])
    got, want = proposer.propose(emb, points, 0.0), reference.propose(ref_emb, points, 0.0)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


@pytest.mark.parametrize(("registers", "swiglu"), [(0, False), (4, False), (0, True)])
def test_meta_dinov2_file_round_trip(tmp_path, tiny_specs, registers, swiglu, caplog):
    original = tiny_dinov2_model(
        seed=2, registers=registers, **({"use_swiglu_ffn": True} if swiglu else {})
    )
    path = tmp_path / "dinov2_vitg14_reg4_pretrain.pth"  # misleading on purpose
    torch.save(dinov2_hf_to_meta(original.state_dict()), path)
    with caplog.at_level(logging.INFO, logger="fiftyone_ntt.models"):
        encoder = load_encoder(str(path), device="cpu")
    assert encoder.registers == registers
    assert encoder.identity["arch"] == "vit_tiny_random"
    assert encoder.identity["registers"] == registers
    assert "DINOv2 vit_tiny_random" in caplog.text
    _assert_same_weights(encoder.model, original)
    pixels = torch.rand((1, 3, 518, 518), generator=torch.Generator().manual_seed(1))
    from fiftyone_ntt.models.dinov2 import Dinov2Encoder

    expected = Dinov2Encoder(original, source="x").encode(pixels)
    assert torch.equal(encoder.encode(pixels), expected)


def test_meta_dinov2_training_checkpoint_layout(tmp_path, tiny_specs):
    original = tiny_dinov2_model(seed=2)
    state = {f"backbone.{k}": v for k, v in dinov2_hf_to_meta(original.state_dict()).items()}
    state["dino_head.mlp.0.weight"] = torch.zeros(4, 4)
    # block_chunks=4 numbering: blocks.<chunk>.<global index>.
    state = {
        re.sub(r"^backbone\.blocks\.(\d+)\.", lambda m: f"backbone.blocks.{m[1]}.{m[1]}.", k): v
        for k, v in state.items()
    }
    path = tmp_path / "teacher_checkpoint.pth"
    torch.save({"teacher": state}, path)
    _assert_same_weights(load_encoder(str(path), device="cpu").model, original)


def test_load_models_from_meta_files(tmp_path, tiny_specs, sam2_model):
    sam_path, dino_path = tmp_path / "a.pt", tmp_path / "b.pth"
    torch.save({"model": sam2_hf_to_meta(sam2_model.state_dict())}, sam_path)
    torch.save(dinov2_hf_to_meta(tiny_dinov2_model(seed=0).state_dict()), dino_path)
    encoder, proposer = load_models(
        ModelConfig(sam2=str(sam_path), dinov2=str(dino_path), device="cpu")
    )
    assert encoder.identity["family"] == "dinov2" and proposer.identity["family"] == "sam2"
    assert encoder.device == torch.device("cpu") == proposer.device


# --------------------------------------------------------------------------------------------
# Architecture inference from shapes (all released sizes, meta tensors only)
# --------------------------------------------------------------------------------------------

# Independent of HIERA_SPECS: Meta's sam2{,.1}_hiera_{t,s,b+,l}.yaml.
_HIERA = {
    "hiera_tiny": dict(
        embed=96, heads=1, stages=[1, 2, 7, 2], glob=[5, 7, 9], win=[8, 4, 14, 7], bkg=[7, 7]
    ),
    "hiera_small": dict(
        embed=96, heads=1, stages=[1, 2, 11, 2], glob=[7, 10, 13], win=[8, 4, 14, 7], bkg=[7, 7]
    ),
    "hiera_base_plus": dict(
        embed=112, heads=2, stages=[2, 3, 16, 3], glob=[12, 16, 20], win=[8, 4, 14, 7], bkg=[14, 14]
    ),
    "hiera_large": dict(
        embed=144, heads=2, stages=[2, 6, 36, 4], glob=[23, 33, 43], win=[8, 4, 16, 8], bkg=[7, 7]
    ),
}


def _meta_sam2_shapes(arch: str, version: str) -> dict[str, torch.Tensor]:
    from transformers import Sam2Config, Sam2HieraDetConfig, Sam2Model, Sam2VisionConfig

    c = _HIERA[arch]
    dims = [c["embed"] * 2**i for i in range(4)]
    backbone = Sam2HieraDetConfig(
        hidden_size=c["embed"],
        embed_dim_per_stage=dims,
        num_attention_heads_per_stage=[c["heads"] * 2**i for i in range(4)],
        blocks_per_stage=c["stages"],
        global_attention_blocks=c["glob"],
        window_size_per_stage=c["win"],
        window_positional_embedding_background_size=c["bkg"],
    )
    config = Sam2Config(
        vision_config=Sam2VisionConfig(backbone_config=backbone, backbone_channel_list=dims[::-1])
    )
    with torch.device("meta"):
        return sam2_hf_to_meta(Sam2Model(config).state_dict(), version)


@pytest.mark.parametrize("version", ["2.0", "2.1"])
@pytest.mark.parametrize("arch", list(_HIERA))
def test_sam2_architecture_inferred_from_shapes(arch, version):
    state = _meta_sam2_shapes(arch, version)
    found = infer_sam2_architecture(state)
    c = _HIERA[arch]
    assert found.spec.arch == arch and found.version == version
    config = found.to_config()
    backbone = config.vision_config.backbone_config
    assert backbone.blocks_per_stage == c["stages"]
    assert backbone.global_attention_blocks == c["glob"]
    assert backbone.window_size_per_stage == c["win"]
    assert list(backbone.window_positional_embedding_background_size) == c["bkg"]
    assert backbone.num_attention_heads_per_stage == [c["heads"] * 2**i for i in range(4)]
    assert config.vision_config.backbone_channel_list == [c["embed"] * 2**i for i in range(4)][::-1]
    assert config.mask_decoder_config.num_attention_heads == 8
    assert config.mask_decoder_config.hidden_size == 256


def test_unknown_hiera_size_is_refused():
    state = _meta_sam2_shapes("hiera_tiny", "2.0")
    state = {k: v for k, v in state.items() if not k.startswith("image_encoder.trunk.blocks.11.")}
    with pytest.raises(CheckpointError, match=r"unknown SAM 2 Hiera size.*\[1, 2, 7, 1\]"):
        infer_sam2_architecture(state)


_DINO = {
    "vit_small": (384, 12, 6, False),
    "vit_base": (768, 12, 12, False),
    "vit_large": (1024, 24, 16, False),
    "vit_giant": (1536, 40, 24, True),
}


@pytest.mark.parametrize("registers", [0, 4])
@pytest.mark.parametrize("arch", list(_DINO))
def test_dinov2_architecture_inferred_from_shapes(arch, registers):
    from transformers import Dinov2Model, Dinov2WithRegistersModel

    width, depth, heads, swiglu = _DINO[arch]
    config = tiny_dinov2_config(
        registers,
        hidden_size=width,
        num_hidden_layers=depth,
        num_attention_heads=heads,
        use_swiglu_ffn=swiglu,
    )
    cls = Dinov2WithRegistersModel if registers else Dinov2Model
    with torch.device("meta"):
        state = dinov2_hf_to_meta(cls(config).state_dict())
    found = infer_dinov2_architecture(state)
    assert found.spec.arch == arch
    assert (found.registers, found.swiglu, found.patch_size, found.image_size) == (
        registers,
        swiglu,
        14,
        518,
    )
    assert found.to_config().num_attention_heads == heads


# --------------------------------------------------------------------------------------------
# Bad files
# --------------------------------------------------------------------------------------------


def test_garbage_file_is_refused(tmp_path):
    path = tmp_path / "weights.pt"
    path.write_text("definitely not a checkpoint")
    with pytest.raises(CheckpointError, match="could not be read as a PyTorch SAM 2 checkpoint"):
        load_proposer(str(path), device="cpu")


def test_wrong_family_files_are_refused(tmp_path, tiny_specs, sam2_model):
    dino_path, sam_path = tmp_path / "x.pt", tmp_path / "y.pth"
    torch.save(dinov2_hf_to_meta(tiny_dinov2_model().state_dict()), dino_path)
    torch.save({"model": sam2_hf_to_meta(sam2_model.state_dict())}, sam_path)
    with pytest.raises(CheckpointError, match="not a SAM 2 checkpoint"):
        load_proposer(str(dino_path), device="cpu")
    with pytest.raises(CheckpointError, match="not a DINOv2 checkpoint"):
        load_encoder(str(sam_path), device="cpu")


def test_missing_image_path_tensor_is_refused(tmp_path, tiny_specs, sam2_model):
    state = sam2_hf_to_meta(sam2_model.state_dict())
    del state["sam_mask_decoder.conv_s0.weight"]
    path = tmp_path / "broken.pt"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError, match=r"missing \['mask_decoder\.conv_s0\.weight'\]"):
        load_proposer(str(path), device="cpu")


def test_shape_mismatch_is_refused(tmp_path, tiny_specs, sam2_model):
    state = sam2_hf_to_meta(sam2_model.state_dict())
    key = "sam_mask_decoder.output_hypernetworks_mlps.2.layers.1.weight"
    state[key] = torch.zeros(state[key].shape[0], state[key].shape[1] + 1)
    path = tmp_path / "broken.pt"
    torch.save({"model": state}, path)
    with pytest.raises(
        CheckpointError, match=r"output_hypernetworks_mlps\.2\.layers\.0\.weight: file \(32, 33\)"
    ):
        load_proposer(str(path), device="cpu")


def test_unknown_image_path_tensor_is_refused(tmp_path, tiny_specs, sam2_model):
    state = sam2_hf_to_meta(sam2_model.state_dict())
    state["sam_mask_decoder.some_new_head.weight"] = torch.zeros(3)
    path = tmp_path / "odd.pt"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError, match="some_new_head"):
        load_proposer(str(path), device="cpu")


def test_missing_path_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_proposer(str(tmp_path / "nope" / "sam2_hiera_large.pt"), device="cpu")
    with pytest.raises(FileNotFoundError):
        classify_source("./checkpoints/dinov2_vitl14_pretrain.pth", "DINOv2")
    assert classify_source("facebook/dinov2-large", "DINOv2") == "hub"
    with pytest.raises(ValueError, match="empty"):
        classify_source("  ", "DINOv2")


# --------------------------------------------------------------------------------------------
# Hugging Face hub ids and folders
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("loader", [load_proposer, load_encoder])
def test_offline_hub_id_without_cache_explains(monkeypatch, tmp_path, loader):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelNotAvailableError) as info:
        loader("made-up-org/no-such-model-xyz", device="cpu")
    message = str(info.value)
    assert "made-up-org/no-such-model-xyz" in message
    assert "not in the local Hugging Face cache" in message
    assert "downloaded from the Hugging Face hub on first use" in message
    assert "local folder" in message and "original checkpoint file" in message


def test_hf_folders_round_trip(tmp_path, sam2_model, image):
    sam_dir, dino_dir = tmp_path / "sam", tmp_path / "dino"
    sam2_model.save_pretrained(sam_dir)
    dino = tiny_dinov2_model(seed=4, registers=4)
    dino.save_pretrained(dino_dir)
    proposer = load_proposer(str(sam_dir), device="cpu")
    encoder = load_encoder(str(dino_dir), device="cpu")
    _assert_same_weights(proposer.model, sam2_model)
    _assert_same_weights(encoder.model, dino)
    assert encoder.registers == 4
    assert proposer.identity["source"] == str(sam_dir)
    assert proposer.identity["version"] == "unknown"  # an image-only export has no marker
    # A folder of the other family is refused clearly.
    with pytest.raises(CheckpointError, match="not SAM 2"):
        load_proposer(str(dino_dir), device="cpu")
    with pytest.raises(CheckpointError, match="not DINOv2"):
        load_encoder(str(sam_dir), device="cpu")


@pytest.mark.parametrize(("occlusion", "version"), [(False, "2.0"), (True, "2.1")])
def test_hf_video_checkpoint_folder(tmp_path, occlusion, version):
    """Hub SAM 2 repos may hold the video model (model_type 'sam2_video'): its image part
    loads into Sam2Model, the memory modules are ignored, 2.0/2.1 comes from the config."""
    from transformers import Sam2VideoConfig, Sam2VideoModel

    from fiftyone_ntt.models.tiny import tiny_sam2_config

    tiny = tiny_sam2_config()
    config = Sam2VideoConfig(
        vision_config=tiny.vision_config.to_dict(),
        prompt_encoder_config=tiny.prompt_encoder_config.to_dict(),
        mask_decoder_config=tiny.mask_decoder_config.to_dict(),
        enable_occlusion_spatial_embedding=occlusion,
        enable_temporal_pos_encoding_for_object_pointers=occlusion,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        video = Sam2VideoModel(config)
    video.save_pretrained(tmp_path)
    converted = _sam2_config_from(config, "x")
    assert converted.model_type == "sam2"
    assert converted.mask_decoder_config.hidden_size == 32
    proposer = load_proposer(str(tmp_path), device="cpu")
    assert proposer.identity["version"] == version
    video_state = video.state_dict()
    for key, value in proposer.model.state_dict().items():
        assert torch.equal(value, video_state[key]), key


# --------------------------------------------------------------------------------------------
# Devices
# --------------------------------------------------------------------------------------------


def test_cuda_requested_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"device='cuda'.*CUDA is not available.*device='cpu'"):
        models.resolve_device("cuda")
    with pytest.raises(ValueError, match="cuda:1"):
        models.resolve_device("cuda:1")
    with pytest.raises(ValueError, match="cuda"):
        load_proposer("facebook/sam2-hiera-large", device="cuda")  # fails before any load
    assert models.resolve_device("auto") == torch.device("cpu")


def test_device_names():
    assert models.resolve_device("cpu") == torch.device("cpu")
    assert models.resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match="'gpu0'"):
        models.resolve_device("gpu0")
