"""Meta's original DINOv3 ViT checkpoints (``dinov3_vit*16*_pretrain_*.pth``) → ``transformers``
``DINOv3ViTModel``.

Everything the model needs is read from the tensors, never from the file name:

* width from ``cls_token``, depth from the ``blocks.<i>`` numbering, patch from
  ``patch_embed.proj.weight``, registers ("storage tokens") from ``storage_tokens``;
* heads from the RoPE table ``rope_embed.periods`` (``head_dim / 4`` entries), and the RoPE base
  from its values (``periods[k] = base ** (4k / head_dim)``); files without the table fall back to
  the released sizes in :data:`DINOV3_SPECS`;
* plain GELU MLP (``mlp.fc1``) vs SwiGLU (``mlp.w1/w2/w3``), and the hidden width;
* query/value biases from ``attn.qkv.bias``; the key bias is kept only when ``qkv.bias_mask``
  does not zero it (every released model masks it, so ``transformers`` has no key bias).

Meta's layout → ``transformers``: ``attn.qkv`` is split into ``q_proj/k_proj/v_proj``,
``attn.proj`` → ``o_proj``, ``ls{1,2}.gamma`` → ``layer_scale{1,2}.lambda1``, ``mlp.fc1/fc2`` →
``up_proj/down_proj`` (GELU), ``mlp.w1/w2/w3`` → ``gate_proj/up_proj/down_proj`` (SwiGLU:
``w3(silu(w1 x) * w2 x)``). ``cls_norm``/``local_cls_norm`` only touch the CLS and register
tokens (never the patch tokens we use), so they are skipped, like training heads.

Nothing here touches the disk or the network.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from fiftyone_ntt.models.state_dict import (
    VIT_BLOCK_RENAMES,
    CheckpointError,
    StateDict,
    rename_vit_state_dict,
    split_qkv,
    tensor_shape,
    unwrap_state_dict,
)

__all__ = [
    "DINOV3_SPECS",
    "Dinov3Architecture",
    "Dinov3Spec",
    "convert_dinov3_state_dict",
    "dinov3_arch_name",
    "dinov3_identity_from_checkpoint",
    "dinov3_identity_from_config",
    "infer_dinov3_architecture",
    "looks_like_dinov3",
    "normalise_dinov3_keys",
]


#: Keys that may hold the state dict in Meta's files (the training checkpoints' teacher).
WRAPPERS = ("teacher", "model", "state_dict")


def _shape(sd: StateDict, key: str) -> tuple[int, ...]:
    return tensor_shape(sd, key, "DINOv3", "the model")


@dataclass(frozen=True)
class Dinov3Spec:
    """One released DINOv3 ViT size (``dinov3/hub/backbones.py``)."""

    arch: str
    hidden_size: int
    num_layers: int
    num_heads: int
    gated: bool

    @property
    def key(self) -> tuple[int, int, bool]:
        return (self.hidden_size, self.num_layers, self.gated)


#: Released DINOv3 ViT sizes keyed by ``(hidden_size, num_layers, swiglu)``. All use patch 16,
#: 4 registers and a masked key bias.
DINOV3_SPECS: dict[tuple[int, int, bool], Dinov3Spec] = {
    spec.key: spec
    for spec in (
        Dinov3Spec("vit_small", 384, 12, 6, False),
        Dinov3Spec("vit_small_plus", 384, 12, 6, True),
        Dinov3Spec("vit_base", 768, 12, 12, False),
        Dinov3Spec("vit_large", 1024, 24, 16, False),
        Dinov3Spec("vit_large_plus", 1024, 24, 16, True),
        Dinov3Spec("vit_huge_plus", 1280, 32, 20, True),
        Dinov3Spec("vit_7b", 4096, 40, 32, True),
    )
}

#: Tensors that never reach the patch tokens (CLS/register norms, training heads, buffers that
#: ``transformers`` recomputes).
_SKIPPED = re.compile(
    r"^(cls_norm\.|local_cls_norm\.|dino_head\.|ibot_head\.|head\.|rope_embed\.periods$"
    r"|blocks\.\d+\.attn\.qkv\.bias_mask$)"
)


def dinov3_arch_name(hidden_size: int, num_layers: int, gated: bool) -> str:
    """Our name for a DINOv3 size (``"vit_large"``), or ``"vit_custom"``."""
    spec = DINOV3_SPECS.get((int(hidden_size), int(num_layers), bool(gated)))
    return spec.arch if spec else "vit_custom"


def looks_like_dinov3(state_dict: StateDict) -> bool:
    """Whether a Meta-layout ViT state dict is DINOv3 (RoPE, no learned ``pos_embed``)."""
    keys = set(state_dict)
    if "pos_embed" in keys:
        return False
    return "cls_token" in keys and (
        "rope_embed.periods" in keys
        or "storage_tokens" in keys
        or "blocks.0.attn.qkv.weight" in keys
    )


@dataclass(frozen=True)
class Dinov3Architecture:
    """What a DINOv3 state dict was recognised as."""

    arch: str
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    patch_size: int
    registers: int
    gated: bool
    query_bias: bool
    key_bias: bool
    value_bias: bool
    proj_bias: bool
    mlp_bias: bool
    rope_theta: float
    layer_norm_eps: float = 1e-5

    def describe(self) -> str:
        return (
            f"DINOv3 {self.arch} (width {self.hidden_size}, depth {self.num_layers}, "
            f"{self.num_heads} heads, patch {self.patch_size}, {self.registers} registers"
            f"{', SwiGLU' if self.gated else ''})"
        )

    def to_config(self) -> Any:
        """The ``DINOv3ViTConfig`` of this architecture."""
        from transformers import DINOv3ViTConfig

        return DINOv3ViTConfig(
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            intermediate_size=self.intermediate_size,
            patch_size=self.patch_size,
            num_register_tokens=self.registers,
            use_gated_mlp=self.gated,
            hidden_act="silu" if self.gated else "gelu",
            query_bias=self.query_bias,
            key_bias=self.key_bias,
            value_bias=self.value_bias,
            proj_bias=self.proj_bias,
            mlp_bias=self.mlp_bias,
            rope_theta=self.rope_theta,
            # Meta's released models use "layernormbf16" = LayerNorm(eps=1e-5).
            layer_norm_eps=self.layer_norm_eps,
            layerscale_value=1.0,
        )


def normalise_dinov3_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip DDP/teacher prefixes (``module.``, ``backbone.``)."""
    for prefix in ("module.", "backbone."):
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix) :]: v for k, v in sd.items()}
    return sd


def _rope(sd: StateDict, hidden: int, spec: Dinov3Spec | None) -> tuple[int, float]:
    """``(num_heads, rope_theta)`` from ``rope_embed.periods`` (or the size table)."""
    periods = sd.get("rope_embed.periods")
    if periods is None:
        if spec is None:
            raise CheckpointError(
                f"DINOv3 of width {hidden} is not a released size and the file has no "
                "'rope_embed.periods' to read its head count from"
            )
        return spec.num_heads, 100.0
    periods = periods.detach().to(torch.float64).reshape(-1)
    head_dim = 4 * len(periods)
    if head_dim == 0 or hidden % head_dim:
        raise CheckpointError(
            f"DINOv3 rope_embed.periods has {len(periods)} entries: head size {head_dim} does "
            f"not divide the width {hidden}"
        )
    base = 100.0
    if len(periods) > 1:
        # periods[k] = base ** (4k / head_dim): read base from the last entry.
        base = float(periods[-1]) ** (head_dim / (4 * (len(periods) - 1)))
    expected = base ** (4 * torch.arange(len(periods), dtype=torch.float64) / head_dim)
    if not torch.allclose(periods, expected, rtol=1e-4, atol=0):
        raise CheckpointError(
            "DINOv3 rope_embed.periods do not follow base ** (4k / head_dim) (a min/max-period "
            "RoPE?); transformers' DINOv3ViTModel supports only the base parametrisation"
        )
    return hidden // head_dim, round(base, 4)


def infer_dinov3_architecture(state_dict: StateDict) -> Dinov3Architecture:
    """Recognise a DINOv3 ViT checkpoint (Meta's layout) from its tensor names and shapes.

    Raises:
        CheckpointError: not DINOv3 (e.g. a DINOv2 file with ``pos_embed``), or a layout we
            cannot place.
    """
    sd = state_dict
    if not looks_like_dinov3(sd) or "patch_embed.proj.weight" not in sd:
        sample = ", ".join(sorted(sd)[:5])
        hint = " (this looks like DINOv2: it has 'pos_embed')" if "pos_embed" in sd else ""
        raise CheckpointError(
            "this is not a DINOv3 ViT checkpoint: expected 'cls_token', "
            f"'patch_embed.proj.weight', 'blocks.*' and no 'pos_embed'{hint}; found e.g. {sample}"
        )
    hidden = _shape(sd, "cls_token")[-1]
    regex = re.compile(r"^blocks\.(\d+)\.")
    blocks = sorted({int(m.group(1)) for k in sd if (m := regex.match(k))})
    if not blocks or blocks != list(range(len(blocks))):
        raise CheckpointError(f"DINOv3 blocks are not numbered 0..N-1: {blocks[:10]}")
    patch_w = _shape(sd, "patch_embed.proj.weight")
    if patch_w[-1] != patch_w[-2]:
        raise CheckpointError(f"non-square DINOv3 patches {patch_w[-2:]} are not supported")
    gated = "blocks.0.mlp.w1.weight" in sd
    if gated:
        intermediate = _shape(sd, "blocks.0.mlp.w1.weight")[0]
        mlp_bias = "blocks.0.mlp.w1.bias" in sd
    else:
        intermediate = _shape(sd, "blocks.0.mlp.fc1.weight")[0]
        mlp_bias = "blocks.0.mlp.fc1.bias" in sd
    spec = DINOV3_SPECS.get((hidden, len(blocks), gated))
    heads, theta = _rope(sd, hidden, spec)
    qkv_bias = "blocks.0.attn.qkv.bias" in sd
    mask = sd.get("blocks.0.attn.qkv.bias_mask")
    key_bias = qkv_bias
    if qkv_bias and mask is not None:
        k_mask = mask.reshape(3, hidden)[1]
        key_bias = bool(k_mask.abs().sum() > 0)
    registers = _shape(sd, "storage_tokens")[1] if "storage_tokens" in sd else 0
    for key in ("blocks.0.ls1.gamma", "blocks.0.ls2.gamma", "norm.weight", "mask_token"):
        _shape(sd, key)
    return Dinov3Architecture(
        arch=spec.arch if spec and spec.num_heads == heads else "vit_custom",
        hidden_size=hidden,
        num_layers=len(blocks),
        num_heads=heads,
        intermediate_size=intermediate,
        patch_size=patch_w[-1],
        registers=registers,
        gated=gated,
        query_bias=qkv_bias,
        key_bias=key_bias,
        value_bias=qkv_bias,
        proj_bias="blocks.0.attn.proj.bias" in sd,
        mlp_bias=mlp_bias,
        rope_theta=theta,
    )


_BLOCK_RENAMES = {
    **VIT_BLOCK_RENAMES,
    "mlp.fc1.weight": "mlp.up_proj.weight",
    "mlp.fc1.bias": "mlp.up_proj.bias",
    "mlp.fc2.weight": "mlp.down_proj.weight",
    "mlp.fc2.bias": "mlp.down_proj.bias",
    "mlp.w1.weight": "mlp.gate_proj.weight",
    "mlp.w1.bias": "mlp.gate_proj.bias",
    "mlp.w2.weight": "mlp.up_proj.weight",
    "mlp.w2.bias": "mlp.up_proj.bias",
    "mlp.w3.weight": "mlp.down_proj.weight",
    "mlp.w3.bias": "mlp.down_proj.bias",
}

_TOP_RENAMES = {
    "cls_token": "embeddings.cls_token",
    "storage_tokens": "embeddings.register_tokens",
    "patch_embed.proj.weight": "embeddings.patch_embeddings.weight",
    "patch_embed.proj.bias": "embeddings.patch_embeddings.bias",
    "norm.weight": "norm.weight",
    "norm.bias": "norm.bias",
}


def convert_dinov3_state_dict(
    checkpoint: Any,
) -> tuple[dict[str, torch.Tensor], Dinov3Architecture, list[str]]:
    """Rename a Meta DINOv3 ViT checkpoint for ``transformers.DINOv3ViTModel``.

    Args:
        checkpoint: what ``torch.load`` returned for ``dinov3_vit*16*_pretrain_*.pth`` (a
            plain state dict; ``{"teacher": ...}``/``{"model": ...}`` wrappers are accepted).

    Returns:
        ``(state_dict, architecture, skipped)``; ``skipped`` lists tensors that do not affect
        patch tokens (CLS norms, heads, the RoPE table and key-bias mask, both recomputed).

    Raises:
        CheckpointError: not DINOv3, or a tensor we cannot place.
    """
    sd = normalise_dinov3_keys(unwrap_state_dict(checkpoint, WRAPPERS, "DINOv3"))
    arch = infer_dinov3_architecture(sd)

    def block(rest: str, value: torch.Tensor) -> dict[str, torch.Tensor] | None:
        # Meta masks the key bias to zero: transformers has none
        parts = split_qkv(rest, value, key_bias=arch.key_bias)
        if parts is not None:
            return parts
        name = _BLOCK_RENAMES.get(rest)
        return None if name is None else {name: value}

    out, skipped = rename_vit_state_dict(
        sd,
        # Meta stores mask_token as (1, C); transformers (1, 1, C).
        top={**_TOP_RENAMES, "mask_token": ("embeddings.mask_token", (1, 1, arch.hidden_size))},
        skip=lambda key: bool(_SKIPPED.match(key)),
        layer="model.layer",
        block=block,
        what="DINOv3",
        model=arch.describe(),
    )
    return out, arch, skipped


def dinov3_identity_from_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The bank-checked identity keys of a ``DINOv3ViTConfig`` dict (``config.json``)."""
    patch = config.get("patch_size", 16)
    if isinstance(patch, (list, tuple)):
        patch = patch[0]
    hidden, layers = int(config["hidden_size"]), int(config["num_hidden_layers"])
    return {
        "family": "dinov3",
        "arch": dinov3_arch_name(hidden, layers, bool(config.get("use_gated_mlp", False))),
        "feature_dim": hidden,
        "patch_size": int(patch),
        "registers": int(config.get("num_register_tokens", 0) or 0),
    }


def dinov3_identity_from_checkpoint(checkpoint: Any) -> dict[str, Any] | None:
    """The same from Meta's original file (shapes only), or ``None`` if it is not DINOv3."""
    try:
        sd = normalise_dinov3_keys(unwrap_state_dict(checkpoint, WRAPPERS, "DINOv3"))
    except CheckpointError:
        return None
    if not looks_like_dinov3(sd):
        return None
    arch = infer_dinov3_architecture(sd)
    return {
        "family": "dinov3",
        "arch": arch.arch,
        "feature_dim": arch.hidden_size,
        "patch_size": arch.patch_size,
        "registers": arch.registers,
    }
