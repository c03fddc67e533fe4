"""Meta's original EdgeTAM checkpoint (``edgetam.pt``) → ``transformers.EdgeTamModel`` names;
the RepViT size read from the tensors.

``edgetam.pt`` (facebookresearch/EdgeTAM) is a SAM 2 checkpoint with another image trunk: a
dict with key ``"model"`` whose image encoder is ``image_encoder.trunk.body.*`` (timm's
``features_only`` RepViT, so the names after ``body.`` are timm's, the ones
:class:`~fiftyone_ntt.models.edgetam.repvit.RepVitBackbone` keeps under ``timm_model.``) and
``image_encoder.neck.*`` (SAM 2's FPN neck); prompt encoder and mask decoder are SAM 2's and
are renamed by :func:`~fiftyone_ntt.models.sam2.conversion.rename_sam2_tensors`. The video
modules (memory attention/encoder, the spatial perceiver, object pointers) are skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch

from fiftyone_ntt.models.edgetam.repvit import REPVIT_VARIANTS, repvit_spec
from fiftyone_ntt.models.sam2.conversion import (
    EDGETAM_TRUNK,
    SAM2_VIDEO_PREFIXES,
    SAM2_WRAPPERS,
    original_proposer_family,
    rename_sam2_tensors,
    sam2_head_configs,
    strip_sam2_prefixes,
)
from fiftyone_ntt.models.state_dict import (
    CheckpointError,
    StateDict,
    as_float32,
    key_indices,
    tensor_shape,
    unwrap_state_dict,
)

__all__ = [
    "EDGETAM_SPECS",
    "EdgeTamArchitecture",
    "EdgeTamSpec",
    "convert_edgetam_state_dict",
    "infer_edgetam_architecture",
]

_HF_TRUNK = "vision_encoder.backbone.timm_model."
#: EdgeTAM's video-only modules, on top of SAM 2's.
_EDGETAM_VIDEO_PREFIXES = (*SAM2_VIDEO_PREFIXES, "spatial_perceiver.")


@dataclass(frozen=True)
class EdgeTamSpec:
    """A released EdgeTAM size: what its tensors cannot tell.

    Attributes:
        name: how we call it (``"edgetam"``).
        architecture: timm's RepViT name (:data:`~fiftyone_ntt.models.edgetam.repvit.REPVIT_VARIANTS`).
        embed_dim: RepViT stage widths, the key with ``depth``.
        depth: RepViT blocks per stage.
        decoder_heads: attention heads of the mask decoder's two-way transformer.
    """

    name: str
    architecture: str
    embed_dim: tuple[int, ...]
    depth: tuple[int, ...]
    decoder_heads: int = 8

    @property
    def key(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return self.embed_dim, self.depth


_M1 = REPVIT_VARIANTS["repvit_m1"]
#: Known EdgeTAM sizes by (RepViT widths, depths). The released ``edgetam.pt``
#: (``configs/edgetam.yaml``): RepViT-M1 trunk, SAM 2's 256-wide 8-head decoder.
EDGETAM_SPECS: dict[tuple[tuple[int, ...], tuple[int, ...]], EdgeTamSpec] = {
    (_M1.embed_dim, _M1.depth): EdgeTamSpec("edgetam", "repvit_m1", _M1.embed_dim, _M1.depth)
}


@dataclass(frozen=True)
class EdgeTamArchitecture:
    """What an EdgeTAM state dict was recognised as.

    Attributes:
        spec: the known size.
        model_args: ``TimmWrapperConfig.model_args`` of the RepViT trunk.
        backbone_channel_list: neck input widths, low to high resolution.
        fpn_hidden_size: neck / decoder width.
        decoder: keyword arguments for ``EdgeTamMaskDecoderConfig``.
        prompt_encoder: keyword arguments for ``EdgeTamPromptEncoderConfig``.
    """

    spec: EdgeTamSpec
    model_args: dict[str, Any]
    backbone_channel_list: list[int]
    fpn_hidden_size: int
    decoder: dict[str, int]
    prompt_encoder: dict[str, int]

    def describe(self) -> str:
        s = self.spec
        return (
            f"EdgeTAM {s.name} ({s.architecture} trunk, widths {list(s.embed_dim)}, "
            f"blocks {list(s.depth)}, decoder {self.decoder['hidden_size']} wide)"
        )

    def to_config(self) -> Any:
        """The ``transformers.EdgeTamConfig`` of this architecture."""
        from transformers import (
            EdgeTamConfig,
            EdgeTamMaskDecoderConfig,
            EdgeTamPromptEncoderConfig,
            EdgeTamVisionConfig,
            TimmWrapperConfig,
        )

        backbone = TimmWrapperConfig(
            architecture=self.spec.architecture, model_args=dict(self.model_args)
        )
        vision = EdgeTamVisionConfig(
            backbone_config=backbone,
            backbone_channel_list=list(self.backbone_channel_list),
            fpn_hidden_size=self.fpn_hidden_size,
        )
        return EdgeTamConfig(
            vision_config=vision,
            prompt_encoder_config=EdgeTamPromptEncoderConfig(**self.prompt_encoder),
            mask_decoder_config=EdgeTamMaskDecoderConfig(**self.decoder),
        )


def _repvit_layout(sd: StateDict) -> dict[str, Any]:
    """RepViT widths, depths, legacy flag, MLP ratio and kernel read from trunk tensors."""
    what = "EdgeTAM"
    stages = key_indices(sd, rf"^{re.escape(EDGETAM_TRUNK)}stages_(\d+)\.")
    if not stages or stages != list(range(len(stages))):
        raise CheckpointError(
            f"EdgeTAM trunk stages are not numbered 0..N-1 ('{EDGETAM_TRUNK}stages_<i>.*'): {stages}"
        )
    widths: list[int] = []
    depths: list[int] = []
    for i in stages:
        prefix = f"{EDGETAM_TRUNK}stages_{i}.blocks."
        blocks = key_indices(sd, rf"^{re.escape(prefix)}(\d+)\.")
        if not blocks or blocks != list(range(len(blocks))):
            raise CheckpointError(f"EdgeTAM trunk stage {i} blocks are not 0..N-1: {blocks}")
        widths.append(tensor_shape(sd, f"{prefix}0.token_mixer.conv.c.weight", what)[0])
        depths.append(len(blocks))
    first = f"{EDGETAM_TRUNK}stages_0.blocks.0."
    hidden = tensor_shape(sd, f"{first}channel_mixer.conv1.c.weight", what)[0]
    return {
        "embed_dim": tuple(widths),
        "depth": tuple(depths),
        # The original M1-M3 RepViT has a conv-BN 1×1 token-mixer branch (``conv1.c``).
        "legacy": f"{first}token_mixer.conv1.c.weight" in sd,
        "mlp_ratio": hidden / widths[0],
        "kernel_size": tensor_shape(sd, f"{first}token_mixer.conv.c.weight", what)[-1],
    }


def infer_edgetam_architecture(state_dict: StateDict) -> EdgeTamArchitecture:
    """Recognise Meta's EdgeTAM checkpoint from its tensor names and shapes.

    Args:
        state_dict: the ``"model"`` dict of ``edgetam.pt`` (tensors may be on the ``meta``
            device: only shapes are read).

    Raises:
        CheckpointError: not EdgeTAM, or a RepViT size not in :data:`EDGETAM_SPECS`.
    """
    sd = strip_sam2_prefixes(dict(state_dict))
    if original_proposer_family(sd) != "edgetam":
        sample = ", ".join(sorted(sd)[:5])
        raise CheckpointError(
            f"this is not an EdgeTAM checkpoint: expected tensors named '{EDGETAM_TRUNK}*' and "
            f"'sam_mask_decoder.*' (Meta's edgetam.pt), found e.g. {sample}"
        )
    layout = _repvit_layout(sd)
    spec = EDGETAM_SPECS.get((layout["embed_dim"], layout["depth"]))
    if spec is None:
        known = ", ".join(
            f"{s.name} (widths {list(s.embed_dim)}, blocks {list(s.depth)})"
            for s in EDGETAM_SPECS.values()
        )
        raise CheckpointError(
            f"unknown EdgeTAM RepViT size: widths {list(layout['embed_dim'])}, blocks per "
            f"stage {list(layout['depth'])}; known sizes: {known}"
        )
    variant = REPVIT_VARIANTS[spec.architecture]
    model_args: dict[str, Any] = {
        "in_chans": 3,
        "features_only": True,
        "out_indices": list(range(len(layout["depth"]))),
    }
    # Only what differs from timm's registered variant, so stock configs stay stock.
    for name, value in layout.items():
        if value != getattr(variant, name):
            model_args[name] = value
    try:
        repvit_spec(spec.architecture, model_args)
    except ValueError as error:
        raise CheckpointError(f"EdgeTAM trunk: {error}") from None

    necks = key_indices(sd, r"^image_encoder\.neck\.convs\.(\d+)\.conv\.weight$")
    shapes = [
        tensor_shape(sd, f"image_encoder.neck.convs.{i}.conv.weight", "EdgeTAM") for i in necks
    ]
    if not shapes:
        raise CheckpointError("the EdgeTAM checkpoint has no FPN neck ('image_encoder.neck.*')")
    channels = [s[1] for s in shapes]
    if channels != list(layout["embed_dim"])[::-1]:
        raise CheckpointError(
            f"EdgeTAM FPN neck inputs {channels} do not match the RepViT widths "
            f"{list(layout['embed_dim'])[::-1]}"
        )
    decoder, prompt = sam2_head_configs(sd, spec.decoder_heads, shapes[0][0], "EdgeTAM")
    return EdgeTamArchitecture(
        spec=spec,
        model_args=model_args,
        backbone_channel_list=channels,
        fpn_hidden_size=shapes[0][0],
        decoder=decoder,
        prompt_encoder=prompt,
    )


def convert_edgetam_state_dict(
    checkpoint: Any,
) -> tuple[dict[str, torch.Tensor], EdgeTamArchitecture, list[str]]:
    """Rename Meta's EdgeTAM checkpoint for ``transformers.EdgeTamModel``.

    Args:
        checkpoint: what ``torch.load`` returned for ``edgetam.pt`` (a dict with key
            ``"model"``) or the state dict itself.

    Returns:
        ``(state_dict, architecture, skipped)``: the renamed float32 tensors (integer batch
        norm counters stay integer), the recognised architecture and the names of the
        video-only tensors left out.

    Raises:
        CheckpointError: not EdgeTAM, an unknown size, or an image-path tensor we cannot place.
    """
    sd = strip_sam2_prefixes(unwrap_state_dict(checkpoint, SAM2_WRAPPERS, "EdgeTAM"))
    arch = infer_edgetam_architecture(sd)
    trunk = {k: v for k, v in sd.items() if k.startswith(EDGETAM_TRUNK)}
    rest = {k: v for k, v in sd.items() if not k.startswith(EDGETAM_TRUNK)}
    out, skipped, unknown = rename_sam2_tensors(rest, _EDGETAM_VIDEO_PREFIXES)
    if unknown:
        raise CheckpointError(
            f"{len(unknown)} EdgeTAM image-path tensor(s) have no place in the recognised "
            f"{arch.spec.name} model: {unknown[:8]}"
        )
    # timm's features_only RepViT under "body." is the same module transformers wraps as
    # "timm_model." (and RepVitBackbone copies): names after the prefix are unchanged.
    for key, value in trunk.items():
        out[_HF_TRUNK + key[len(EDGETAM_TRUNK) :]] = as_float32(value)
        # Batch-norm step counters are only used in training; a checkpoint saved without
        # them (e.g. after fusing or by a tool that drops integer buffers) still loads.
        if key.endswith(".running_mean"):
            counter = (
                _HF_TRUNK + key[len(EDGETAM_TRUNK) : -len("running_mean")] + "num_batches_tracked"
            )
            out.setdefault(counter, torch.tensor(0, dtype=torch.long))
    return out, arch, skipped
