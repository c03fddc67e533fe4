"""DINOv3 ViT patch encoder on tiny random weights: protocol, features, Meta-checkpoint loading.

The conversion test does not trust our own key mapping: it runs the original checkpoint
through an independent implementation of Meta's DINOv3 ViT forward pass (fused qkv with a
masked key bias, RoPE from the stored ``periods``, LayerScale ``gamma``) and requires the
converted ``transformers`` model to give the same patch tokens.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fiftyone_ntt.models import PatchEncoder, load_encoder
from fiftyone_ntt.models.checkpoints import CheckpointError
from fiftyone_ntt.models.dinov2 import IMAGENET_MEAN, IMAGENET_STD
from fiftyone_ntt.models.dinov3 import Dinov3Encoder, encoder_family, load_dinov3
from fiftyone_ntt.models.dinov3.conversion import (
    convert_dinov3_state_dict,
    infer_dinov3_architecture,
)
from fiftyone_ntt.models.tiny import tiny_dinov3_encoder, tiny_dinov3_model

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def encoder():
    return tiny_dinov3_encoder(seed=0)


@pytest.fixture(scope="module")
def pixels():
    generator = torch.Generator().manual_seed(7)
    return torch.rand((2, 3, 592, 592), generator=generator) * 1.1 - 0.05


def _normalise(pixels: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (pixels - mean) / std


# ----------------------------------------------------------------------------- the encoder


def test_shapes_identity_and_protocol(encoder, pixels):
    out = encoder.encode(pixels)
    assert isinstance(encoder, PatchEncoder)
    assert out.shape == (2, 37, 37, 32) and out.dtype == torch.float32
    assert encoder.patch_size == 16 and encoder.registers == 4
    assert encoder.identity == {
        "family": "dinov3",
        "arch": "vit_tiny_random",
        "feature_dim": 32,
        "patch_size": 16,
        "registers": 4,
        "source": "tiny-random-dinov3(seed=0)",
        "precision": "float32",
        "identity_version": 1,
    }


def test_equals_manual_forward_minus_cls_and_registers(encoder, pixels):
    with torch.no_grad():
        hidden = encoder.model(pixel_values=_normalise(pixels)).last_hidden_state
    assert hidden.shape[1] == 1 + 4 + 37 * 37
    out = encoder.encode(pixels)
    torch.testing.assert_close(out, hidden[:, 5:].reshape(2, 37, 37, 32), rtol=1e-5, atol=1e-5)
    # Dropping only CLS (as for plain DINOv2) would shift every patch by 4 tokens.
    assert (out - hidden[:, 1 : 1 + 37 * 37].reshape(2, 37, 37, 32)).abs().max() > 1e-2
    with torch.no_grad():
        raw = encoder.model(pixel_values=pixels).last_hidden_state
    assert (out - raw[:, 5:].reshape(2, 37, 37, 32)).abs().max() > 1e-2


def test_deterministic_seeded_and_batch_independent(encoder, pixels):
    first = encoder.encode(pixels)
    assert torch.equal(first, encoder.encode(pixels))
    assert torch.equal(first, tiny_dinov3_encoder(seed=0).encode(pixels))
    assert not torch.allclose(first, tiny_dinov3_encoder(seed=1).encode(pixels))
    torch.testing.assert_close(first[1:], encoder.encode(pixels[1:]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("height", "width", "grid"), [(512, 512, (32, 32)), (224, 592, (14, 37))])
def test_any_multiple_of_16_gives_its_grid(encoder, height, width, grid):
    out = encoder.encode(torch.rand(1, 3, height, width))
    assert out.shape == (1, *grid, 32)


def test_bad_input_and_wrong_model_raise(encoder):
    with pytest.raises(ValueError, match="pixels"):
        encoder.encode(torch.rand(1, 3, 8, 8))
    from fiftyone_ntt.models.tiny import tiny_dinov2_model

    with pytest.raises(TypeError, match="DINOv3ViTModel"):
        Dinov3Encoder(tiny_dinov2_model(), source="x")


# ------------------------------------------------------------------- Meta's original layout


def hf_to_meta(model, *, extra_cls_norm: bool = False) -> dict[str, torch.Tensor]:
    """The tiny HF model's weights in the layout of Meta's ``dinov3_vit*16*_pretrain.pth``."""
    config = model.config
    hidden, head_dim = config.hidden_size, config.hidden_size // config.num_attention_heads
    sd = model.state_dict()
    out = {
        "cls_token": sd["embeddings.cls_token"],
        "storage_tokens": sd["embeddings.register_tokens"],
        "mask_token": sd["embeddings.mask_token"].reshape(1, hidden),
        "patch_embed.proj.weight": sd["embeddings.patch_embeddings.weight"],
        "patch_embed.proj.bias": sd["embeddings.patch_embeddings.bias"],
        "norm.weight": sd["norm.weight"],
        "norm.bias": sd["norm.bias"],
        # Meta's buffer: periods[k] = base ** (2k / (head_dim / 2)).
        "rope_embed.periods": config.rope_theta
        ** (2 * torch.arange(head_dim // 4, dtype=torch.float32) / (head_dim // 2)),
    }
    generator = torch.Generator().manual_seed(99)
    for i in range(config.num_hidden_layers):
        hf, meta = f"model.layer.{i}.", f"blocks.{i}."
        att = hf + "attention."
        out[meta + "attn.qkv.weight"] = torch.cat(
            [sd[att + f"{n}_proj.weight"] for n in ("q", "k", "v")]
        )
        # A key bias that the mask must remove: a conversion that kept it would change outputs.
        k_bias = torch.randn(hidden, generator=generator)
        out[meta + "attn.qkv.bias"] = torch.cat(
            [sd[att + "q_proj.bias"], k_bias, sd[att + "v_proj.bias"]]
        )
        out[meta + "attn.qkv.bias_mask"] = torch.cat(
            [torch.ones(hidden), torch.zeros(hidden), torch.ones(hidden)]
        )
        out[meta + "attn.proj.weight"] = sd[att + "o_proj.weight"]
        out[meta + "attn.proj.bias"] = sd[att + "o_proj.bias"]
        for n in (1, 2):
            out[meta + f"norm{n}.weight"] = sd[hf + f"norm{n}.weight"]
            out[meta + f"norm{n}.bias"] = sd[hf + f"norm{n}.bias"]
            out[meta + f"ls{n}.gamma"] = sd[hf + f"layer_scale{n}.lambda1"]
        names = (
            {"gate": "w1", "up": "w2", "down": "w3"}
            if config.use_gated_mlp
            else {"up": "fc1", "down": "fc2"}
        )
        for hf_name, meta_name in names.items():
            for kind in ("weight", "bias"):
                out[meta + f"mlp.{meta_name}.{kind}"] = sd[hf + f"mlp.{hf_name}_proj.{kind}"]
    if extra_cls_norm:  # ViT-7B / satellite ViT-L files carry this training-only norm
        out["local_cls_norm.weight"] = torch.ones(hidden)
        out["local_cls_norm.bias"] = torch.zeros(hidden)
    return {k: v.clone() for k, v in out.items()}


def meta_forward(sd: dict[str, torch.Tensor], x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Patch tokens of Meta's DINOv3 ViT (eval), computed directly from its state dict."""
    hidden = sd["cls_token"].shape[-1]
    periods = sd["rope_embed.periods"]
    head_dim = 4 * len(periods)
    heads = hidden // head_dim
    prefix = 1 + sd["storage_tokens"].shape[1]
    patch = sd["patch_embed.proj.weight"].shape[-1]
    t = F.conv2d(x, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=patch)
    batch, _, rows, cols = t.shape
    t = t.flatten(2).transpose(1, 2)
    tokens = torch.cat(
        [sd["cls_token"].expand(batch, -1, -1), sd["storage_tokens"].expand(batch, -1, -1), t], 1
    )
    n = tokens.shape[1]
    # RoPE: patch centres in [-1, 1] per axis ("separate" normalisation), y then x.
    ys = (torch.arange(rows) + 0.5) / rows * 2 - 1
    xs = (torch.arange(cols) + 0.5) / cols * 2 - 1
    coords = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)
    angles = (2 * math.pi * coords[:, :, None] / periods[None, None, :]).reshape(len(coords), -1)
    angles = angles.repeat(1, 2)  # (rows*cols, head_dim)
    sin, cos = angles.sin(), angles.cos()

    def rope(u: torch.Tensor) -> torch.Tensor:
        head, body = u[..., :prefix, :], u[..., prefix:, :]
        half = head_dim // 2
        rotated = torch.cat([-body[..., half:], body[..., :half]], -1)
        return torch.cat([head, body * cos + rotated * sin], -2)

    layers = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    for i in range(layers):
        b = f"blocks.{i}."
        y = F.layer_norm(tokens, (hidden,), sd[b + "norm1.weight"], sd[b + "norm1.bias"], eps)
        bias = sd[b + "attn.qkv.bias"] * sd[b + "attn.qkv.bias_mask"]
        qkv = F.linear(y, sd[b + "attn.qkv.weight"], bias)
        q, k, v = qkv.reshape(batch, n, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(rope(q), rope(k), v)
        att = F.linear(
            att.transpose(1, 2).reshape(batch, n, hidden),
            sd[b + "attn.proj.weight"],
            sd[b + "attn.proj.bias"],
        )
        tokens = tokens + sd[b + "ls1.gamma"] * att
        y = F.layer_norm(tokens, (hidden,), sd[b + "norm2.weight"], sd[b + "norm2.bias"], eps)
        if b + "mlp.w1.weight" in sd:
            gate = F.linear(y, sd[b + "mlp.w1.weight"], sd[b + "mlp.w1.bias"])
            up = F.linear(y, sd[b + "mlp.w2.weight"], sd[b + "mlp.w2.bias"])
            y = F.linear(F.silu(gate) * up, sd[b + "mlp.w3.weight"], sd[b + "mlp.w3.bias"])
        else:
            y = F.gelu(F.linear(y, sd[b + "mlp.fc1.weight"], sd[b + "mlp.fc1.bias"]))
            y = F.linear(y, sd[b + "mlp.fc2.weight"], sd[b + "mlp.fc2.bias"])
        tokens = tokens + sd[b + "ls2.gamma"] * y
    tokens = F.layer_norm(tokens, (hidden,), sd["norm.weight"], sd["norm.bias"], eps)
    return tokens[:, prefix:].reshape(batch, rows, cols, hidden)


@pytest.mark.parametrize("gated", [False, True])
def test_meta_file_round_trip_matches_the_original_forward(tmp_path, gated, pixels):
    original = tiny_dinov3_model(seed=3, gated=gated)
    state = hf_to_meta(original, extra_cls_norm=gated)
    path = tmp_path / "dinov2_vitl14_pretrain.pth"  # misleading name on purpose
    torch.save(state, path)
    assert encoder_family(str(path)) == "dinov3"

    encoder = load_encoder(str(path), device="cpu")
    assert isinstance(encoder, Dinov3Encoder)
    assert encoder.identity["family"] == "dinov3" and encoder.registers == 4
    assert encoder.model.config.use_gated_mlp is gated
    assert encoder.model.config.key_bias is False
    expected = meta_forward(state, _normalise(pixels[:1]))
    out = encoder.encode(pixels[:1])
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    # ... and the converted weights are the tiny model's own.
    twin = Dinov3Encoder(original, source="tiny")
    torch.testing.assert_close(out, twin.encode(pixels[:1]), rtol=1e-5, atol=1e-5)


def test_meta_forward_detects_a_wrong_mapping(pixels):
    """The reference forward is sensitive to the mix-ups a conversion could make."""
    state = hf_to_meta(tiny_dinov3_model(seed=3))
    good = meta_forward(state, _normalise(pixels[:1]))
    for broken in (
        {**state, "blocks.0.ls1.gamma": state["blocks.0.ls2.gamma"]},
        {**state, "blocks.0.attn.qkv.bias_mask": torch.ones_like(state["blocks.0.attn.qkv.bias"])},
        {**state, "rope_embed.periods": state["rope_embed.periods"].flip(0)},
    ):
        assert (meta_forward(broken, _normalise(pixels[:1])) - good).abs().max() > 1e-3


def test_architecture_inferred_from_tensors():
    arch = infer_dinov3_architecture(hf_to_meta(tiny_dinov3_model(num_attention_heads=4)))
    assert (arch.hidden_size, arch.num_layers, arch.num_heads) == (32, 2, 4)
    assert (arch.patch_size, arch.registers, arch.intermediate_size) == (16, 4, 64)
    assert arch.rope_theta == pytest.approx(100.0)
    assert not arch.key_bias and arch.query_bias and arch.value_bias


def test_teacher_wrapper_and_prefixes_accepted():
    state = hf_to_meta(tiny_dinov3_model(seed=5))
    wrapped = {"teacher": {f"backbone.{k}": v for k, v in state.items()}}
    converted, arch, skipped = convert_dinov3_state_dict(wrapped)
    assert arch.num_layers == 2 and "rope_embed.periods" in skipped
    assert "model.layer.1.attention.k_proj.bias" not in converted


def test_dinov2_file_is_not_dinov3(tmp_path):
    # DINOv2's layout: a learned positional table, no RoPE, no storage tokens.
    state = {
        "cls_token": torch.zeros(1, 1, 32),
        "pos_embed": torch.zeros(1, 1 + 37 * 37, 32),
        "patch_embed.proj.weight": torch.zeros(32, 3, 14, 14),
        "blocks.0.attn.qkv.weight": torch.zeros(96, 32),
    }
    path = tmp_path / "dinov3_vitl16_pretrain_lvd1689m.pth"  # misleading name on purpose
    torch.save(state, path)
    assert encoder_family(str(path)) == "dinov2"
    with pytest.raises(CheckpointError, match="looks like DINOv2"):
        load_dinov3(str(path))


def test_unplaceable_tensor_is_refused():
    state = hf_to_meta(tiny_dinov3_model())
    state["blocks.0.attn.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"blocks\.0\.attn\.extra\.weight"):
        convert_dinov3_state_dict(state)


def test_hf_folder_round_trip_and_family(tmp_path, pixels):
    model = tiny_dinov3_model(seed=6)
    model.save_pretrained(tmp_path / "dinov3")
    assert encoder_family(str(tmp_path / "dinov3")) == "dinov3"
    encoder = load_encoder(str(tmp_path / "dinov3"), device="cpu")
    assert isinstance(encoder, Dinov3Encoder)
    twin = Dinov3Encoder(model, source="tiny")
    torch.testing.assert_close(encoder.encode(pixels[:1]), twin.encode(pixels[:1]))


def test_hub_ids_are_told_apart_by_name_when_not_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert encoder_family("facebook/dinov3-vitl16-pretrain-lvd1689m") == "dinov3"
    assert encoder_family("facebook/dinov2-large") == "dinov2"


def test_identity_is_read_without_loading(tmp_path):
    from fiftyone_ntt.models.identity import peek_encoder_identity

    model = tiny_dinov3_model(seed=2)
    loaded = Dinov3Encoder(model, source="x").identity
    expected = {k: loaded[k] for k in ("feature_dim", "patch_size", "registers")}
    path = tmp_path / "original.pth"
    torch.save(hf_to_meta(model), path)
    model.save_pretrained(tmp_path / "folder")
    for source in (path, tmp_path / "folder"):
        peeked = peek_encoder_identity(str(source))
        assert peeked["family"] == "dinov3"
        assert {k: peeked[k] for k in expected} == expected
