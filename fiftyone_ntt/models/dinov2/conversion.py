"""Meta's DINOv2 checkpoints (``dinov2_vit*14*_pretrain.pth``) → ``transformers`` DINOv2
names; size, registers and SwiGLU read from the tensors."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import torch

from fiftyone_ntt.models.state_dict import (
    VIT_BLOCK_RENAMES,
    CheckpointError,
    StateDict,
    key_indices,
    rename_vit_state_dict,
    split_qkv,
    tensor_shape,
    unwrap_state_dict,
)


@dataclass(frozen=True)
class Dinov2Spec:
    """One DINOv2 ViT size (``dinov2/hub/backbones.py``): width, depth and heads."""

    arch: str
    hidden_size: int
    num_layers: int
    num_heads: int

    @property
    def key(self) -> tuple[int, int]:
        return (self.hidden_size, self.num_layers)


#: Released DINOv2 sizes keyed by ``(hidden_size, num_layers)``. ViT-g uses SwiGLU.
DINOV2_SPECS: dict[tuple[int, int], Dinov2Spec] = {
    spec.key: spec
    for spec in (
        Dinov2Spec("vit_small", 384, 12, 6),
        Dinov2Spec("vit_base", 768, 12, 12),
        Dinov2Spec("vit_large", 1024, 24, 16),
        Dinov2Spec("vit_giant", 1536, 40, 24),
    )
}


def dinov2_arch_name(hidden_size: int, num_layers: int) -> str:
    """Our name for a DINOv2 size (``"vit_large"``), or ``"vit_custom"``."""
    spec = DINOV2_SPECS.get((int(hidden_size), int(num_layers)))
    return spec.arch if spec else "vit_custom"


# --------------------------------------------------------------------------------------------
# DINOv2
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dinov2Architecture:
    """What a DINOv2 state dict was recognised as."""

    spec: Dinov2Spec
    patch_size: int
    image_size: int
    registers: int
    swiglu: bool
    mlp_ratio: int
    qkv_bias: bool

    def describe(self) -> str:
        reg = f", {self.registers} registers" if self.registers else ", no registers"
        return (
            f"DINOv2 {self.spec.arch} (width {self.spec.hidden_size}, depth "
            f"{self.spec.num_layers}, patch {self.patch_size}, positional grid "
            f"{self.image_size // self.patch_size}²{reg}{', SwiGLU' if self.swiglu else ''})"
        )

    def to_config(self) -> Any:
        """The ``Dinov2Config`` / ``Dinov2WithRegistersConfig`` of this architecture."""
        from transformers import Dinov2Config, Dinov2WithRegistersConfig

        common: dict[str, Any] = {
            "hidden_size": self.spec.hidden_size,
            "num_hidden_layers": self.spec.num_layers,
            "num_attention_heads": self.spec.num_heads,
            "mlp_ratio": self.mlp_ratio,
            "image_size": self.image_size,
            "patch_size": self.patch_size,
            "qkv_bias": self.qkv_bias,
            "use_swiglu_ffn": self.swiglu,
            "layer_norm_eps": 1e-6,
        }
        if self.registers:
            return Dinov2WithRegistersConfig(num_register_tokens=self.registers, **common)
        return Dinov2Config(**common)


def normalise_dinov2_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip DDP/teacher prefixes and flatten ``block_chunks`` numbering."""
    for prefix in ("module.", "backbone."):
        if sd and all(k.startswith(prefix) for k in sd if not k.startswith(_DINO_HEADS)):
            sd = {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in sd.items()}
    chunked = re.compile(r"^blocks\.(\d+)\.(\d+)\.")
    if any(chunked.match(k) for k in sd):
        # block_chunks > 0 stores block i as blocks.<chunk>.<i> (i is the global index).
        sd = {chunked.sub(lambda m: f"blocks.{m[2]}.", k): v for k, v in sd.items()}
    return sd


_DINO_HEADS = ("dino_head.", "ibot_head.", "head.")


def infer_dinov2_architecture(state_dict: StateDict) -> Dinov2Architecture:
    """Recognise a DINOv2 checkpoint (Meta's layout) from its tensor names and shapes.

    Args:
        state_dict: the state dict of ``dinov2_vit*14*_pretrain.pth``, after
            :func:`normalise_dinov2_keys` (shapes only are read).

    Raises:
        CheckpointError: not DINOv2, or a size not in :data:`DINOV2_SPECS`.
    """
    sd = state_dict
    what = "DINOv2"
    if "cls_token" not in sd or "patch_embed.proj.weight" not in sd or "pos_embed" not in sd:
        sample = ", ".join(sorted(sd)[:5])
        raise CheckpointError(
            "this is not a DINOv2 checkpoint: expected tensors 'cls_token', 'pos_embed', "
            f"'patch_embed.proj.weight' and 'blocks.*' (dinov2_vit*14*_pretrain.pth), found e.g. {sample}"
        )
    hidden = tensor_shape(sd, "cls_token", what)[-1]
    blocks = key_indices(sd, r"^blocks\.(\d+)\.")
    if not blocks or blocks != list(range(len(blocks))):
        raise CheckpointError(f"DINOv2 blocks are not numbered 0..N-1: {blocks[:10]}...")
    spec = DINOV2_SPECS.get((hidden, len(blocks)))
    if spec is None:
        known = ", ".join(
            f"{s.arch} (width {s.hidden_size}, depth {s.num_layers})" for s in DINOV2_SPECS.values()
        )
        raise CheckpointError(
            f"unknown DINOv2 size: width {hidden}, depth {len(blocks)}; known sizes: {known}"
        )
    patch_w = tensor_shape(sd, "patch_embed.proj.weight", what)
    if patch_w[-1] != patch_w[-2]:
        raise CheckpointError(f"non-square DINOv2 patches {patch_w[-2:]} are not supported")
    patch = patch_w[-1]
    positions = tensor_shape(sd, "pos_embed", what)[1] - 1
    grid = math.isqrt(positions)
    if grid * grid != positions:
        raise CheckpointError(f"DINOv2 pos_embed has {positions} patch positions, not a square")
    registers = tensor_shape(sd, "register_tokens", what)[1] if "register_tokens" in sd else 0
    swiglu = "blocks.0.mlp.w12.weight" in sd
    if swiglu:
        hidden_ffn = tensor_shape(sd, "blocks.0.mlp.w3.weight", what)[1]
        mlp_ratio = 4
        expected = (int(hidden * mlp_ratio * 2 / 3) + 7) // 8 * 8
        if hidden_ffn != expected:
            raise CheckpointError(
                f"DINOv2 SwiGLU hidden width {hidden_ffn} is not the standard {expected}"
            )
    else:
        hidden_ffn = tensor_shape(sd, "blocks.0.mlp.fc1.weight", what)[0]
        if hidden_ffn % hidden:
            raise CheckpointError(f"DINOv2 MLP width {hidden_ffn} is not a multiple of {hidden}")
        mlp_ratio = hidden_ffn // hidden
    for key in ("blocks.0.ls1.gamma", "blocks.0.ls2.gamma", "mask_token"):
        tensor_shape(sd, key, what)
    return Dinov2Architecture(
        spec=spec,
        patch_size=patch,
        image_size=grid * patch,
        registers=registers,
        swiglu=swiglu,
        mlp_ratio=mlp_ratio,
        qkv_bias="blocks.0.attn.qkv.bias" in sd,
    )


def convert_dinov2_state_dict(
    checkpoint: Any,
) -> tuple[dict[str, torch.Tensor], Dinov2Architecture, list[str]]:
    """Rename a Meta DINOv2 checkpoint for ``Dinov2Model`` / ``Dinov2WithRegistersModel``.

    The fused ``attn.qkv`` is split into ``q_proj/k_proj/v_proj``; the fused SwiGLU ``w12``
    (ViT-g) into ``gate_proj`` (first half, the SiLU branch) and ``up_proj``.

    Args:
        checkpoint: what ``torch.load`` returned for ``dinov2_vit*14*_pretrain.pth`` (a plain
            state dict; a training checkpoint with a ``"teacher"`` entry is accepted too).

    Returns:
        ``(state_dict, architecture, skipped)``; ``skipped`` lists projection-head tensors
        of training checkpoints (``dino_head``, ``ibot_head``).

    Raises:
        CheckpointError: not DINOv2, an unknown size, or a tensor we cannot place.
    """
    sd = normalise_dinov2_keys(
        unwrap_state_dict(checkpoint, ("teacher", "model", "state_dict"), "DINOv2")
    )
    arch = infer_dinov2_architecture(sd)
    out, skipped = rename_vit_state_dict(
        sd,
        # Meta stores mask_token as (1, C) like transformers; older exports use (1, 1, C).
        top={**_TOP_RENAMES, "mask_token": ("embeddings.mask_token", (1, -1))},
        skip=lambda key: key.startswith(_DINO_HEADS),
        layer="encoder.layer",
        block=_rename_block,
        what="DINOv2",
        model=f"{arch.spec.arch} model",
    )
    return out, arch, skipped


_TOP_RENAMES = {
    "cls_token": "embeddings.cls_token",
    "pos_embed": "embeddings.position_embeddings",
    "register_tokens": "embeddings.register_tokens",
    "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
    "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
    "norm.weight": "layernorm.weight",
    "norm.bias": "layernorm.bias",
}

_BLOCK_RENAMES = {
    **VIT_BLOCK_RENAMES,
    "mlp.fc1.weight": "mlp.fc1.weight",
    "mlp.fc1.bias": "mlp.fc1.bias",
    "mlp.fc2.weight": "mlp.fc2.weight",
    "mlp.fc2.bias": "mlp.fc2.bias",
    "mlp.w3.weight": "mlp.down_proj.weight",
    "mlp.w3.bias": "mlp.down_proj.bias",
}


def _rename_block(rest: str, value: torch.Tensor) -> dict[str, torch.Tensor] | None:
    """One tensor of a block: the fused qkv split, the fused SwiGLU ``w12`` split into
    ``gate_proj`` (first half) and ``up_proj``, the others renamed."""
    parts = split_qkv(rest, value)
    if parts is not None:
        return parts
    if rest in ("mlp.w12.weight", "mlp.w12.bias"):
        gate, up = value.chunk(2, dim=0)
        kind = rest.rsplit(".", 1)[1]
        return {f"mlp.gate_proj.{kind}": gate.contiguous(), f"mlp.up_proj.{kind}": up.contiguous()}
    name = _BLOCK_RENAMES.get(rest)
    return None if name is None else {name: value}


def peek_dinov2_architecture(checkpoint: Any) -> Dinov2Architecture:
    """The architecture of a DINOv2 checkpoint from its shapes only (nothing converted)."""
    state = unwrap_state_dict(checkpoint, ("teacher", "model", "state_dict"), "DINOv2")
    return infer_dinov2_architecture(normalise_dinov2_keys(state))
