"""Architecture tables (Meta's published SAM 2 / DINOv2 sizes), the checkpoint error type and
state-dict helpers shared by :mod:`.conversion_sam2` and :mod:`.conversion_dinov2`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch


class CheckpointError(ValueError):
    """A checkpoint file or folder that cannot be used (wrong model, unknown layout, bad
    shapes). The message names the file and what was expected."""


# --------------------------------------------------------------------------------------------
# Architecture tables
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HieraSpec:
    """One SAM 2 image-encoder size, as in Meta's ``sam2{,.1}_hiera_*.yaml``.

    Attributes:
        arch: our name (``hiera_tiny``, ``hiera_small``, ``hiera_base_plus``, ``hiera_large``).
        embed_dim: width of stage 1 (doubles at each stage).
        blocks_per_stage: Hiera ``stages``.
        heads_per_stage: attention heads per stage (``num_heads`` × 2 per stage).
        window_sizes: ``window_spec`` per stage (windowed attention outside global blocks).
        global_attention_blocks: ``global_att_blocks`` (0-based block indices).
        window_pos_embed_bkg: ``window_pos_embed_bkg_spatial_size``.
        decoder_heads: attention heads of the mask decoder's two-way transformer.
        fpn_top_down_levels: FPN levels that receive the top-down path.
    """

    arch: str
    embed_dim: int
    blocks_per_stage: tuple[int, ...]
    heads_per_stage: tuple[int, ...]
    window_sizes: tuple[int, ...]
    global_attention_blocks: tuple[int, ...]
    window_pos_embed_bkg: tuple[int, int]
    decoder_heads: int = 8
    fpn_top_down_levels: tuple[int, ...] = (2, 3)

    @property
    def key(self) -> tuple[int, tuple[int, ...]]:
        return (self.embed_dim, self.blocks_per_stage)

    @property
    def embed_dims(self) -> list[int]:
        return [self.embed_dim * 2**i for i in range(len(self.blocks_per_stage))]


def _specs(*specs: HieraSpec) -> dict[tuple[int, tuple[int, ...]], HieraSpec]:
    return {spec.key: spec for spec in specs}


#: The four released Hiera sizes (identical in SAM 2.0 and 2.1), keyed by
#: ``(embed_dim, blocks_per_stage)``. Tests may add entries for tiny random models.
HIERA_SPECS: dict[tuple[int, tuple[int, ...]], HieraSpec] = _specs(
    HieraSpec("hiera_tiny", 96, (1, 2, 7, 2), (1, 2, 4, 8), (8, 4, 14, 7), (5, 7, 9), (7, 7)),
    HieraSpec("hiera_small", 96, (1, 2, 11, 2), (1, 2, 4, 8), (8, 4, 14, 7), (7, 10, 13), (7, 7)),
    HieraSpec(
        "hiera_base_plus",
        112,
        (2, 3, 16, 3),
        (2, 4, 8, 16),
        (8, 4, 14, 7),
        (12, 16, 20),
        (14, 14),
    ),
    HieraSpec(
        "hiera_large", 144, (2, 6, 36, 4), (2, 4, 8, 16), (8, 4, 16, 8), (23, 33, 43), (7, 7)
    ),
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


def hiera_arch_name(embed_dim: int, blocks_per_stage: list[int] | tuple[int, ...]) -> str:
    """Our name for a Hiera size (``"hiera_large"``), or ``"hiera_custom"``."""
    spec = HIERA_SPECS.get((int(embed_dim), tuple(int(b) for b in blocks_per_stage)))
    return spec.arch if spec else "hiera_custom"


def dinov2_arch_name(hidden_size: int, num_layers: int) -> str:
    """Our name for a DINOv2 size (``"vit_large"``), or ``"vit_custom"``."""
    spec = DINOV2_SPECS.get((int(hidden_size), int(num_layers)))
    return spec.arch if spec else "vit_custom"


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------

StateDict = Mapping[str, torch.Tensor]


def _unwrap(obj: Any, wrappers: tuple[str, ...], what: str) -> dict[str, torch.Tensor]:
    """The flat ``name -> tensor`` dict inside a checkpoint (``{"model": ...}`` etc.)."""
    for _ in range(3):
        if isinstance(obj, Mapping):
            for name in wrappers:
                inner = obj.get(name)
                if isinstance(inner, Mapping):
                    obj = inner
                    break
            else:
                break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"expected a {what} state dict, got {type(obj).__name__}")
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and torch.is_tensor(v)}
    if not tensors:
        raise CheckpointError(f"expected a {what} state dict of tensors; it holds none")
    return tensors


def _shape(sd: StateDict, key: str, what: str) -> tuple[int, ...]:
    try:
        return tuple(sd[key].shape)
    except KeyError:
        raise CheckpointError(
            f"the {what} checkpoint lacks {key!r}, which the image path needs"
        ) from None


def _indices(sd: StateDict, pattern: str) -> list[int]:
    """Sorted distinct integers captured by group 1 of ``pattern`` over the keys."""
    regex = re.compile(pattern)
    found = {int(m.group(1)) for k in sd if (m := regex.match(k))}
    return sorted(found)


def _mlp_depths(sd: StateDict) -> dict[str, int]:
    """Number of linear layers of every ``<prefix>.layers.<i>`` MLP in a Meta state dict."""
    depths: dict[str, int] = {}
    for key in sd:
        m = re.match(r"^(.*)\.layers\.(\d+)\.weight$", key)
        if m:
            depths[m.group(1)] = max(depths.get(m.group(1), 0), int(m.group(2)) + 1)
    return depths


def _mlp_name(index: int, depth: int) -> str:
    """Meta ``MLP.layers[i]`` → transformers ``Sam2FeedForward`` attribute."""
    if index == 0:
        return "proj_in"
    if index == depth - 1:
        return "proj_out"
    return f"layers.{index - 1}"


def _float32(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.float32).contiguous() if t.is_floating_point() else t
