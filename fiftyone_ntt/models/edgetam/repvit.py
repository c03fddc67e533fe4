"""RepViT image backbones in plain PyTorch, as EdgeTAM uses them (no ``timm``, no ``torchvision``).

RepViT (Wang et al., "RepViT: Revisiting Mobile CNN From ViT Perspective", arXiv 2307.09283)
is a MobileNet-style CNN: a stride-4 convolutional stem, then four stages at strides 4, 8, 16,
32. Every stage but the first opens with a downsampling unit; every block is a depthwise
"token mixer" (k×k conv + 1×1 conv + identity, summed), an optional squeeze-excite and a 1×1
conv MLP "channel mixer" with a residual connection.

EdgeTAM (transformers' ``EdgeTamVisionModel``) takes the four stage outputs of ``repvit_m1``
as built by ``timm.create_model(arch, features_only=True, out_indices=(0, 1, 2, 3))`` and
wrapped in transformers' ``TimmWrapperModel``. :class:`RepVitBackbone` is a drop-in for that
wrapper: the same constructor arguments (read from the same ``TimmWrapperConfig``), the same
parameter and buffer names (``timm_model.stem.conv1.c.weight``,
``timm_model.stages_2.blocks.13.se.fc1.bias``, ...) so EdgeTAM checkpoints load strictly, and
the same output (``last_hidden_state`` = the list of NCHW stage maps). Its equality with timm's
module on random weights is tested in ``tests/unit/test_models_repvit.py`` where timm imports.

Inference only matters here: batch norms are ordinary ``nn.BatchNorm2d`` (running statistics
in eval mode) and the structural re-parameterisation ("fusing") of the paper is not done.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = [
    "REPVIT_VARIANTS",
    "RepVitBackbone",
    "RepVitBackboneOutput",
    "RepVitSpec",
    "repvit_spec",
]


@dataclass(frozen=True)
class RepVitSpec:
    """One RepViT layout.

    Attributes:
        embed_dim: channels of each stage (the stem outputs ``embed_dim[0]``).
        depth: blocks per stage (not counting a stage's downsampling unit).
        legacy: the original M1-M3 release: the token mixer's 1×1 branch is conv + BN and
            there is no BN after the sum (later releases: a plain biased 1×1 conv, BN after).
        mlp_ratio: channel-mixer hidden width / width.
        kernel_size: depthwise kernel of the token mixers and of the downsampling conv.
        out_indices: which stage outputs the backbone returns (stages after the last are not
            built, as in timm's feature extractor).
    """

    embed_dim: tuple[int, ...]
    depth: tuple[int, ...]
    legacy: bool
    mlp_ratio: float = 2.0
    kernel_size: int = 3
    out_indices: tuple[int, ...] = (0, 1, 2, 3)


#: timm's registered RepViT layouts (``timm.models.repvit``), by architecture name.
REPVIT_VARIANTS: dict[str, RepVitSpec] = {
    "repvit_m1": RepVitSpec((48, 96, 192, 384), (2, 2, 14, 2), legacy=True),
    "repvit_m2": RepVitSpec((64, 128, 256, 512), (2, 2, 12, 2), legacy=True),
    "repvit_m3": RepVitSpec((64, 128, 256, 512), (4, 4, 18, 2), legacy=True),
    "repvit_m0_9": RepVitSpec((48, 96, 192, 384), (2, 2, 14, 2), legacy=False),
    "repvit_m1_0": RepVitSpec((56, 112, 224, 448), (2, 2, 14, 2), legacy=False),
    "repvit_m1_1": RepVitSpec((64, 128, 256, 512), (2, 2, 12, 2), legacy=False),
    "repvit_m1_5": RepVitSpec((64, 128, 256, 512), (4, 4, 24, 4), legacy=False),
    "repvit_m2_3": RepVitSpec((80, 160, 320, 640), (6, 6, 34, 2), legacy=False),
}

# timm.create_model keyword arguments that do not change a features-only RepViT's layout.
_IGNORED_ARGS = frozenset({"in_chans", "features_only", "num_classes", "pretrained", "img_size"})
_SPEC_ARGS = frozenset({"embed_dim", "depth", "legacy", "mlp_ratio", "kernel_size", "out_indices"})


def _variant_name(architecture: str) -> str:
    # "timm/repvit_m1.dist_in1k" or "hf-hub:timm/repvit_m1.dist_in1k" -> "repvit_m1"
    return architecture.split(":")[-1].split("/")[-1].split(".")[0]


def repvit_spec(architecture: str, model_args: Mapping[str, Any] | None = None) -> RepVitSpec:
    """The layout ``timm.create_model(architecture, **model_args)`` would build.

    Args:
        architecture: a timm name with an optional pretrained tag, e.g. ``"repvit_m1"`` or
            ``"repvit_m1.dist_in1k"``.
        model_args: ``TimmWrapperConfig.model_args``; must ask for ``features_only=True`` and
            three input channels; ``embed_dim``, ``depth``, ``legacy``, ``mlp_ratio``,
            ``kernel_size`` and ``out_indices`` override the variant's.

    Raises:
        ValueError: not a RepViT name, not a features-only backbone, or an argument this
            implementation does not reproduce (the message names it).
    """
    name = _variant_name(architecture)
    if name not in REPVIT_VARIANTS:
        raise ValueError(
            f"{architecture!r} is not a RepViT architecture (known: {', '.join(REPVIT_VARIANTS)})"
        )
    args = dict(model_args or {})
    if not args.get("features_only", False):
        raise ValueError(
            f"RepViT {architecture!r}: only the features_only backbone EdgeTAM uses is "
            f"implemented; model_args={args} lacks features_only=True"
        )
    if int(args.get("in_chans", 3)) != 3:
        raise ValueError(f"RepViT {architecture!r}: in_chans={args['in_chans']}; only 3 (RGB)")
    unknown = sorted(set(args) - _IGNORED_ARGS - _SPEC_ARGS)
    if unknown:
        raise ValueError(
            f"RepViT {architecture!r}: model_args {unknown} are not reproduced without timm"
        )
    spec = REPVIT_VARIANTS[name]
    embed_dim = tuple(int(d) for d in args.get("embed_dim", spec.embed_dim))
    depth = tuple(int(d) for d in args.get("depth", spec.depth))
    out_indices = tuple(int(i) for i in args.get("out_indices", spec.out_indices))
    if len(embed_dim) != len(depth) or not embed_dim:
        raise ValueError(
            f"RepViT {architecture!r}: embed_dim {embed_dim} and depth {depth} differ in length"
        )
    if not out_indices or any(not 0 <= i < len(depth) for i in out_indices):
        raise ValueError(
            f"RepViT {architecture!r}: out_indices {out_indices} must index the {len(depth)} stages"
        )
    return RepVitSpec(
        embed_dim=embed_dim,
        depth=depth,
        legacy=bool(args.get("legacy", spec.legacy)),
        mlp_ratio=float(args.get("mlp_ratio", spec.mlp_ratio)),
        kernel_size=int(args.get("kernel_size", spec.kernel_size)),
        out_indices=tuple(sorted(set(out_indices))),
    )


# --------------------------------------------------------------------------------------------
# Building blocks (module and attribute names are those of the checkpoints)
# --------------------------------------------------------------------------------------------


class _ConvBn(nn.Sequential):
    """Bias-free conv then batch norm, as ``c`` and ``bn``."""

    def __init__(
        self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1
    ) -> None:
        super().__init__()
        self.c = nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)


class _TokenMixer(nn.Module):
    """Depthwise k×k conv-BN + depthwise 1×1 branch + identity, summed (RepVGG style)."""

    def __init__(self, dim: int, kernel: int, legacy: bool) -> None:
        super().__init__()
        self.conv = _ConvBn(dim, dim, kernel, groups=dim)
        if legacy:
            self.conv1: nn.Module = _ConvBn(dim, dim, 1, groups=dim)
            self.bn: nn.Module = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(dim, dim, 1, groups=dim)
            self.bn = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x) + self.conv1(x) + x)


def _se_width(channels: int) -> int:
    # A quarter of the channels, rounded to the nearest multiple of 8 (at least 8): the
    # squeeze width RepViT's SE layers were trained with.
    return max(8, int(channels / 4 + 4) // 8 * 8)


class _SqueezeExcite(nn.Module):
    """Channel gate: x * sigmoid(fc2(relu(fc1(mean over H, W)))), with 1×1 convs."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = _se_width(channels)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True))))
        return x * torch.sigmoid(gate)


class _ConvMlp(nn.Module):
    """1×1 conv-BN, GELU, 1×1 conv-BN (dim → dim·ratio → dim)."""

    def __init__(self, dim: int, ratio: float) -> None:
        super().__init__()
        hidden = int(dim * ratio)
        self.conv1 = _ConvBn(dim, hidden)
        self.act = nn.GELU()
        self.conv2 = _ConvBn(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act(self.conv1(x)))


class _Block(nn.Module):
    def __init__(self, dim: int, spec: RepVitSpec, use_se: bool) -> None:
        super().__init__()
        self.token_mixer = _TokenMixer(dim, spec.kernel_size, spec.legacy)
        self.se: nn.Module = _SqueezeExcite(dim) if use_se else nn.Identity()
        self.channel_mixer = _ConvMlp(dim, spec.mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.se(self.token_mixer(x))
        return x + self.channel_mixer(x)


class _Downsample(nn.Module):
    """A block, a stride-2 depthwise conv, a 1×1 conv to the new width, a residual MLP."""

    def __init__(self, cin: int, cout: int, spec: RepVitSpec) -> None:
        super().__init__()
        self.pre_block = _Block(cin, spec, use_se=False)
        self.spatial_downsample = _ConvBn(cin, cin, spec.kernel_size, stride=2, groups=cin)
        self.channel_downsample = _ConvBn(cin, cout)
        self.ffn = _ConvMlp(cout, spec.mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.channel_downsample(self.spatial_downsample(self.pre_block(x)))
        return x + self.ffn(x)


class _Stage(nn.Module):
    def __init__(self, cin: int, cout: int, depth: int, spec: RepVitSpec, first: bool) -> None:
        super().__init__()
        self.downsample: nn.Module = nn.Identity() if first else _Downsample(cin, cout, spec)
        # Squeeze-excite on every other block, starting with the first.
        self.blocks = nn.Sequential(*(_Block(cout, spec, use_se=i % 2 == 0) for i in range(depth)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class _Stem(nn.Module):
    """Two stride-2 3×3 conv-BNs (3 → C/2 → C) with a GELU between: stride 4."""

    def __init__(self, cout: int) -> None:
        super().__init__()
        self.conv1 = _ConvBn(3, cout // 2, 3, stride=2)
        self.act1 = nn.GELU()
        self.conv2 = _ConvBn(cout // 2, cout, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act1(self.conv1(x)))


class _Features(nn.Module):
    """``stem`` then ``stages_0``, ``stages_1``, ... up to the last returned stage."""

    def __init__(self, spec: RepVitSpec) -> None:
        super().__init__()
        self.out_indices = spec.out_indices
        self.stem = _Stem(spec.embed_dim[0])
        cin = spec.embed_dim[0]
        for i in range(max(spec.out_indices) + 1):
            cout = spec.embed_dim[i]
            self.add_module(f"stages_{i}", _Stage(cin, cout, spec.depth[i], spec, first=i == 0))
            cin = cout

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        out = []
        for i in range(max(self.out_indices) + 1):
            x = getattr(self, f"stages_{i}")(x)
            if i in self.out_indices:
                out.append(x)
        return out


# --------------------------------------------------------------------------------------------
# The backbone EdgeTAM calls
# --------------------------------------------------------------------------------------------


@dataclass
class RepVitBackboneOutput:
    """What ``EdgeTamVisionModel`` reads from its backbone.

    Attributes:
        last_hidden_state: the returned stage maps, ``[B, C_i, H/s_i, W/s_i]`` for strides
            ``s_i`` = 4, 8, 16, 32 (the ``out_indices`` stages, in order).
        hidden_states: the same list when hidden states were asked for, else ``None``.
    """

    last_hidden_state: list[torch.Tensor]
    hidden_states: list[torch.Tensor] | None = None


class RepVitBackbone(nn.Module):
    """A RepViT feature extractor standing in for transformers' ``TimmWrapperModel``.

    Args:
        config: the ``TimmWrapperConfig`` (anything with ``architecture`` and ``model_args``)
            EdgeTAM names as its ``backbone_config``; kept as ``self.config``.

    Input ``pixel_values`` ``[B, 3, H, W]`` (normalised RGB); output
    :class:`RepVitBackboneOutput`. Parameters live under ``timm_model.`` as in the wrapper.
    """

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config
        self.spec = repvit_spec(config.architecture, getattr(config, "model_args", None))
        self.timm_model = _Features(self.spec)

    @property
    def channels(self) -> tuple[int, ...]:
        """Channels of each returned map, in order."""
        return tuple(self.spec.embed_dim[i] for i in self.spec.out_indices)

    def forward(
        self,
        pixel_values: torch.Tensor,
        output_attentions: bool | None = None,
        output_hidden_states: bool | Sequence[int] | None = None,
        return_dict: bool | None = None,
        **_: Any,
    ) -> RepVitBackboneOutput:
        if output_attentions:
            raise ValueError("RepViT is a CNN: it has no attentions to output")
        weight = self.timm_model.stem.conv1.c.weight
        features = self.timm_model(pixel_values.to(weight.device, weight.dtype))
        return RepVitBackboneOutput(
            last_hidden_state=features,
            hidden_states=features if output_hidden_states else None,
        )
