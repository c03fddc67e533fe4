"""Meta's original SAM 2 and DINOv2 checkpoints → Hugging Face ``transformers`` modules.

The reference implementation loads Meta's own files (``sam2_hiera_large.pt``,
``dinov2_vitl14_pretrain.pth``; method §1.1, §1.2); we run the ``transformers`` modules, so
those files are renamed (and a few tensors split or joined) at load time. The architecture is
read from the tensors themselves (users rename files):

* SAM 2 Hiera size from the trunk's width and blocks per stage; the settings that shapes
  cannot show (heads, window sizes, global-attention blocks) come from :data:`HIERA_SPECS`,
  Meta's published configs ``sam2{,.1}_hiera_{t,s,b+,l}.yaml``.
* SAM 2.0 vs 2.1 from tensors only 2.1 has (``no_obj_embed_spatial``, ``obj_ptr_tpos_proj``).
* DINOv2 size from width/depth (:data:`DINOV2_SPECS`), registers from ``register_tokens``,
  SwiGLU (ViT-g) from ``mlp.w12``.

Nothing here touches the network or the disk; :mod:`fiftyone_ntt.models.checkpoints` does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "DINOV2_SPECS",
    "HIERA_SPECS",
    "CheckpointError",
    "Dinov2Architecture",
    "Dinov2Spec",
    "HieraSpec",
    "Sam2Architecture",
    "convert_dinov2_state_dict",
    "convert_sam2_state_dict",
    "dinov2_arch_name",
    "hiera_arch_name",
    "infer_dinov2_architecture",
    "infer_sam2_architecture",
]


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


# --------------------------------------------------------------------------------------------
# SAM 2
# --------------------------------------------------------------------------------------------

#: Tensors of the video path (memory attention/encoder, object pointers): unused when
#: proposing masks on single images (§1.1), so they are skipped.
_SAM2_VIDEO_PREFIXES = (
    "memory_attention.",
    "memory_encoder.",
    "mask_downsample.",
    "obj_ptr_proj.",
    "obj_ptr_tpos_proj.",
)
_SAM2_VIDEO_KEYS = frozenset(
    {"maskmem_tpos_enc", "no_mem_pos_enc", "no_obj_ptr", "no_obj_embed_spatial"}
)
#: Tensors only SAM 2.1 checkpoints have.
_SAM2_1_MARKERS = ("no_obj_embed_spatial", "obj_ptr_tpos_proj.")
_SAM2_IMAGE_PREFIXES = ("image_encoder.", "sam_prompt_encoder.", "sam_mask_decoder.")


@dataclass(frozen=True)
class Sam2Architecture:
    """What a SAM 2 state dict was recognised as.

    Attributes:
        spec: the Hiera size.
        version: ``"2.0"`` or ``"2.1"``.
        fpn_hidden_size: neck / decoder width (256).
        backbone_channel_list: neck input widths, low to high resolution.
        decoder: keyword arguments for ``Sam2MaskDecoderConfig``.
        prompt_encoder: keyword arguments for ``Sam2PromptEncoderConfig``.
    """

    spec: HieraSpec
    version: str
    fpn_hidden_size: int
    backbone_channel_list: list[int]
    decoder: dict[str, int] = field(default_factory=dict)
    prompt_encoder: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        s = self.spec
        return (
            f"SAM {self.version} {s.arch} (Hiera embed_dim {s.embed_dim}, "
            f"blocks {list(s.blocks_per_stage)}, global attention {list(s.global_attention_blocks)}, "
            f"windows {list(s.window_sizes)})"
        )

    def to_config(self) -> Any:
        """The ``transformers.Sam2Config`` of this architecture."""
        from transformers import (
            Sam2Config,
            Sam2HieraDetConfig,
            Sam2MaskDecoderConfig,
            Sam2PromptEncoderConfig,
            Sam2VisionConfig,
        )

        s = self.spec
        backbone = Sam2HieraDetConfig(
            hidden_size=s.embed_dim,
            num_attention_heads=s.heads_per_stage[0],
            blocks_per_stage=list(s.blocks_per_stage),
            embed_dim_per_stage=s.embed_dims,
            num_attention_heads_per_stage=list(s.heads_per_stage),
            window_size_per_stage=list(s.window_sizes),
            global_attention_blocks=list(s.global_attention_blocks),
            window_positional_embedding_background_size=list(s.window_pos_embed_bkg),
        )
        vision = Sam2VisionConfig(
            backbone_config=backbone,
            backbone_channel_list=list(self.backbone_channel_list),
            fpn_hidden_size=self.fpn_hidden_size,
            fpn_top_down_levels=list(s.fpn_top_down_levels),
        )
        return Sam2Config(
            vision_config=vision,
            prompt_encoder_config=Sam2PromptEncoderConfig(**self.prompt_encoder),
            mask_decoder_config=Sam2MaskDecoderConfig(**self.decoder),
        )


def _strip_sam2_prefixes(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in ("module.", "model."):
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix) :]: v for k, v in sd.items()}
    return sd


def infer_sam2_architecture(state_dict: StateDict) -> Sam2Architecture:
    """Recognise a SAM 2 / 2.1 checkpoint (Meta's layout) from its tensor names and shapes.

    Args:
        state_dict: the ``"model"`` dict of ``sam2*_hiera_*.pt`` (tensors may be on the
            ``meta`` device: only shapes are read).

    Raises:
        CheckpointError: not a SAM 2 image model, or a size not in :data:`HIERA_SPECS`.
    """
    sd = state_dict
    what = "SAM 2"
    if not any(k.startswith("image_encoder.trunk.") for k in sd) or not any(
        k.startswith("sam_mask_decoder.") for k in sd
    ):
        sample = ", ".join(sorted(sd)[:5])
        raise CheckpointError(
            "this is not a SAM 2 checkpoint: expected tensors named 'image_encoder.trunk.*' "
            f"and 'sam_mask_decoder.*' (Meta's sam2*_hiera_*.pt), found e.g. {sample}"
        )
    trunk = "image_encoder.trunk."
    blocks = _indices(sd, rf"^{re.escape(trunk)}blocks\.(\d+)\.")
    if not blocks or blocks != list(range(len(blocks))):
        raise CheckpointError(f"SAM 2 trunk blocks are not numbered 0..N-1: {blocks[:10]}...")
    dims = [_shape(sd, f"{trunk}blocks.{i}.norm2.weight", what)[0] for i in blocks]
    # A stage is a run of blocks with the same output width (widths double between stages).
    stages: list[int] = []
    widths: list[int] = []
    for width in dims:
        if widths and widths[-1] == width:
            stages[-1] += 1
        else:
            widths.append(width)
            stages.append(1)
    embed_dim = _shape(sd, f"{trunk}pos_embed", what)[1]
    key = (embed_dim, tuple(stages))
    spec = HIERA_SPECS.get(key)
    if spec is None:
        known = ", ".join(
            f"{s.arch} (embed_dim {s.embed_dim}, blocks {list(s.blocks_per_stage)})"
            for s in HIERA_SPECS.values()
        )
        raise CheckpointError(
            f"unknown SAM 2 Hiera size: embed_dim {embed_dim}, blocks per stage {stages}; "
            f"known sizes: {known}"
        )
    if widths != spec.embed_dims:
        raise CheckpointError(f"Hiera stage widths {widths} do not match {spec.arch}")
    bkg = _shape(sd, f"{trunk}pos_embed", what)[2:]
    window = _shape(sd, f"{trunk}pos_embed_window", what)[2]
    if tuple(bkg) != spec.window_pos_embed_bkg or window != spec.window_sizes[0]:
        raise CheckpointError(
            f"{spec.arch}: positional embedding {tuple(bkg)} / window {window} do not match "
            f"the published config ({spec.window_pos_embed_bkg} / {spec.window_sizes[0]})"
        )

    necks = _indices(sd, r"^image_encoder\.neck\.convs\.(\d+)\.conv\.weight$")
    neck_shapes = [_shape(sd, f"image_encoder.neck.convs.{i}.conv.weight", what) for i in necks]
    if not neck_shapes:
        raise CheckpointError("the SAM 2 checkpoint has no FPN neck ('image_encoder.neck.*')")
    fpn = neck_shapes[0][0]
    channels = [s[1] for s in neck_shapes]
    if channels != spec.embed_dims[::-1]:
        raise CheckpointError(
            f"{spec.arch}: FPN neck inputs {channels} do not match the trunk widths "
            f"{spec.embed_dims[::-1]}"
        )

    dec = "sam_mask_decoder."
    hidden = _shape(sd, f"{dec}iou_token.weight", what)[1]
    if f"{dec}obj_score_token.weight" not in sd:
        raise CheckpointError(
            "the SAM 2 mask decoder has no object-score token (pred_obj_scores=False); every "
            "released SAM 2 / 2.1 checkpoint has one, this variant is not supported"
        )
    n_layers = len(_indices(sd, rf"^{re.escape(dec)}transformer\.layers\.(\d+)\."))
    depths = _mlp_depths(sd)
    decoder = {
        "hidden_size": hidden,
        "num_hidden_layers": n_layers,
        "num_attention_heads": spec.decoder_heads,
        "mlp_dim": _shape(sd, f"{dec}transformer.layers.0.mlp.layers.0.weight", what)[0],
        "num_multimask_outputs": _shape(sd, f"{dec}mask_tokens.weight", what)[0] - 1,
        "iou_head_depth": depths.get(f"{dec}iou_prediction_head", 0),
        "iou_head_hidden_dim": _shape(sd, f"{dec}iou_prediction_head.layers.0.weight", what)[0],
    }
    if n_layers != 2 or depths.get(f"{dec}transformer.layers.0.mlp") != 2:
        # transformers ties the two-way block count to its MLP depth (both 2 in SAM 2).
        raise CheckpointError(
            f"unsupported SAM 2 decoder: {n_layers} two-way blocks (expected 2 with 2-layer MLPs)"
        )
    if fpn != hidden:
        raise CheckpointError(f"FPN width {fpn} differs from the mask decoder width {hidden}")
    prompt = {
        "hidden_size": _shape(sd, "sam_prompt_encoder.no_mask_embed.weight", what)[1],
        "mask_input_channels": _shape(sd, "sam_prompt_encoder.mask_downscaling.3.weight", what)[0],
    }
    version = "2.1" if any(k.startswith(_SAM2_1_MARKERS) for k in sd) else "2.0"
    return Sam2Architecture(
        spec=spec,
        version=version,
        fpn_hidden_size=fpn,
        backbone_channel_list=channels,
        decoder=decoder,
        prompt_encoder=prompt,
    )


_Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], str]]


def _sam2_rules(depths: dict[str, int]) -> list[_Rule]:
    """Regex renames from Meta's SAM 2 names to ``transformers.Sam2Model`` names."""
    bb = "vision_encoder.backbone"
    dec = "mask_decoder"
    mask_embed = {"0": "conv1", "1": "layer_norm1", "3": "conv2", "4": "layer_norm2", "6": "conv3"}
    upscaling = {"0": "upscale_conv1", "1": "upscale_layer_norm", "3": "upscale_conv2"}

    def proj(name: str) -> str:
        return "o_proj" if name == "out_proj" else name

    def mlp(prefix_meta: str, prefix_hf: str, m: re.Match[str], index: str, tail: str) -> str:
        return f"{prefix_hf}.{_mlp_name(int(index), depths[prefix_meta])}.{tail}"

    raw: list[tuple[str, Callable[[re.Match[str]], str]]] = [
        (
            r"image_encoder\.trunk\.patch_embed\.proj\.(weight|bias)",
            lambda m: f"{bb}.patch_embed.projection.{m[1]}",
        ),
        (r"image_encoder\.trunk\.(pos_embed|pos_embed_window)", lambda m: f"{bb}.{m[1]}"),
        (
            r"image_encoder\.trunk\.blocks\.(\d+)\.norm([12])\.(weight|bias)",
            lambda m: f"{bb}.blocks.{m[1]}.layer_norm{m[2]}.{m[3]}",
        ),
        (
            r"image_encoder\.trunk\.blocks\.(\d+)\.attn\.(qkv|proj)\.(weight|bias)",
            lambda m: f"{bb}.blocks.{m[1]}.attn.{m[2]}.{m[3]}",
        ),
        (
            r"image_encoder\.trunk\.blocks\.(\d+)\.mlp\.layers\.(\d+)\.(weight|bias)",
            lambda m: mlp(
                f"image_encoder.trunk.blocks.{m[1]}.mlp", f"{bb}.blocks.{m[1]}.mlp", m, m[2], m[3]
            ),
        ),
        (
            r"image_encoder\.trunk\.blocks\.(\d+)\.proj\.(weight|bias)",
            lambda m: f"{bb}.blocks.{m[1]}.proj.{m[2]}",
        ),
        (
            r"image_encoder\.neck\.convs\.(\d+)\.conv\.(weight|bias)",
            lambda m: f"vision_encoder.neck.convs.{m[1]}.{m[2]}",
        ),
        (
            r"sam_prompt_encoder\.pe_layer\.positional_encoding_gaussian_matrix",
            lambda m: "prompt_encoder.shared_embedding.positional_embedding",
        ),
        (
            r"sam_prompt_encoder\.(not_a_point_embed|no_mask_embed)\.weight",
            lambda m: f"prompt_encoder.{m[1]}.weight",
        ),
        (
            r"sam_prompt_encoder\.mask_downscaling\.([01346])\.(weight|bias)",
            lambda m: f"prompt_encoder.mask_embed.{mask_embed[m[1]]}.{m[2]}",
        ),
        (
            r"sam_mask_decoder\.transformer\.layers\.(\d+)\."
            r"(self_attn|cross_attn_token_to_image|cross_attn_image_to_token)\."
            r"(q_proj|k_proj|v_proj|out_proj)\.(weight|bias)",
            lambda m: f"{dec}.transformer.layers.{m[1]}.{m[2]}.{proj(m[3])}.{m[4]}",
        ),
        (
            r"sam_mask_decoder\.transformer\.layers\.(\d+)\.norm([1-4])\.(weight|bias)",
            lambda m: f"{dec}.transformer.layers.{m[1]}.layer_norm{m[2]}.{m[3]}",
        ),
        (
            r"sam_mask_decoder\.transformer\.layers\.(\d+)\.mlp\.layers\.(\d+)\.(weight|bias)",
            lambda m: mlp(
                f"sam_mask_decoder.transformer.layers.{m[1]}.mlp",
                f"{dec}.transformer.layers.{m[1]}.mlp",
                m,
                m[2],
                m[3],
            ),
        ),
        (
            r"sam_mask_decoder\.transformer\.final_attn_token_to_image\."
            r"(q_proj|k_proj|v_proj|out_proj)\.(weight|bias)",
            lambda m: f"{dec}.transformer.final_attn_token_to_image.{proj(m[1])}.{m[2]}",
        ),
        (
            r"sam_mask_decoder\.transformer\.norm_final_attn\.(weight|bias)",
            lambda m: f"{dec}.transformer.layer_norm_final_attn.{m[1]}",
        ),
        (
            r"sam_mask_decoder\.(iou_token|mask_tokens|obj_score_token)\.weight",
            lambda m: f"{dec}.{m[1]}.weight",
        ),
        (
            r"sam_mask_decoder\.output_upscaling\.([013])\.(weight|bias)",
            lambda m: f"{dec}.{upscaling[m[1]]}.{m[2]}",
        ),
        (r"sam_mask_decoder\.(conv_s0|conv_s1)\.(weight|bias)", lambda m: f"{dec}.{m[1]}.{m[2]}"),
        (
            r"sam_mask_decoder\.(output_hypernetworks_mlps\.\d+|iou_prediction_head|"
            r"pred_obj_score_head)\.layers\.(\d+)\.(weight|bias)",
            lambda m: mlp(f"sam_mask_decoder.{m[1]}", f"{dec}.{m[1]}", m, m[2], m[3]),
        ),
        (r"no_mem_embed", lambda m: "no_memory_embedding"),
    ]
    return [(re.compile(rf"^{pattern}$"), fn) for pattern, fn in raw]


def convert_sam2_state_dict(
    checkpoint: Any,
) -> tuple[dict[str, torch.Tensor], Sam2Architecture, list[str]]:
    """Rename a Meta SAM 2 / 2.1 checkpoint for ``transformers.Sam2Model``.

    Args:
        checkpoint: what ``torch.load`` returned for ``sam2*_hiera_*.pt`` (a dict with key
            ``"model"``) or the state dict itself.

    Returns:
        ``(state_dict, architecture, skipped)``: the renamed float32 tensors, the recognised
        architecture (:func:`infer_sam2_architecture`) and the names of the video-only
        tensors that were left out (memory attention/encoder, object pointers).

    Raises:
        CheckpointError: not SAM 2, an unknown size, or an image-path tensor we cannot place.
    """
    sd = _strip_sam2_prefixes(_unwrap(checkpoint, ("model", "state_dict"), "SAM 2"))
    arch = infer_sam2_architecture(sd)
    rules = _sam2_rules(_mlp_depths(sd))
    out: dict[str, torch.Tensor] = {}
    skipped: list[str] = []
    unknown: list[str] = []
    point_embeddings: dict[int, torch.Tensor] = {}
    for key, value in sd.items():
        if key.startswith(_SAM2_VIDEO_PREFIXES) or key in _SAM2_VIDEO_KEYS:
            skipped.append(key)
            continue
        m = re.match(r"^sam_prompt_encoder\.point_embeddings\.(\d+)\.weight$", key)
        if m:
            point_embeddings[int(m[1])] = value
            continue
        for pattern, rename in rules:
            m = pattern.match(key)
            if m:
                out[rename(m)] = _float32(value)
                break
        else:
            (
                unknown
                if key.startswith(_SAM2_IMAGE_PREFIXES) or key == "no_mem_embed"
                else skipped
            ).append(key)
    if unknown:
        raise CheckpointError(
            f"{len(unknown)} SAM 2 image-path tensor(s) have no place in the recognised "
            f"{arch.spec.arch} model: {unknown[:8]}"
        )
    if sorted(point_embeddings) != [0, 1, 2, 3]:
        raise CheckpointError(
            "the SAM 2 prompt encoder needs 4 point embeddings "
            f"('sam_prompt_encoder.point_embeddings.0..3'), found {sorted(point_embeddings)}"
        )
    # Meta keeps the 4 point-type embeddings (negative, positive, box corner 1, box corner 2)
    # as separate nn.Embedding(1, C); transformers stacks them in one nn.Embedding(4, C).
    out["prompt_encoder.point_embed.weight"] = torch.cat(
        [_float32(point_embeddings[i]).reshape(1, -1) for i in range(4)], dim=0
    )
    # One random-Fourier matrix serves both the prompt points and the dense image PE in
    # Meta's code; transformers holds two copies.
    gaussian = out.get("prompt_encoder.shared_embedding.positional_embedding")
    if gaussian is not None:
        out["shared_image_embedding.positional_embedding"] = gaussian
    return out, arch, skipped


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


def _normalise_dinov2_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
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
            :func:`_normalise_dinov2_keys` (shapes only are read).

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
    hidden = _shape(sd, "cls_token", what)[-1]
    blocks = _indices(sd, r"^blocks\.(\d+)\.")
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
    patch_w = _shape(sd, "patch_embed.proj.weight", what)
    if patch_w[-1] != patch_w[-2]:
        raise CheckpointError(f"non-square DINOv2 patches {patch_w[-2:]} are not supported")
    patch = patch_w[-1]
    positions = _shape(sd, "pos_embed", what)[1] - 1
    grid = math.isqrt(positions)
    if grid * grid != positions:
        raise CheckpointError(f"DINOv2 pos_embed has {positions} patch positions, not a square")
    registers = _shape(sd, "register_tokens", what)[1] if "register_tokens" in sd else 0
    swiglu = "blocks.0.mlp.w12.weight" in sd
    if swiglu:
        hidden_ffn = _shape(sd, "blocks.0.mlp.w3.weight", what)[1]
        mlp_ratio = 4
        expected = (int(hidden * mlp_ratio * 2 / 3) + 7) // 8 * 8
        if hidden_ffn != expected:
            raise CheckpointError(
                f"DINOv2 SwiGLU hidden width {hidden_ffn} is not the standard {expected}"
            )
    else:
        hidden_ffn = _shape(sd, "blocks.0.mlp.fc1.weight", what)[0]
        if hidden_ffn % hidden:
            raise CheckpointError(f"DINOv2 MLP width {hidden_ffn} is not a multiple of {hidden}")
        mlp_ratio = hidden_ffn // hidden
    for key in ("blocks.0.ls1.gamma", "blocks.0.ls2.gamma", "mask_token"):
        _shape(sd, key, what)
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
    sd = _normalise_dinov2_keys(_unwrap(checkpoint, ("teacher", "model", "state_dict"), "DINOv2"))
    arch = infer_dinov2_architecture(sd)
    out: dict[str, torch.Tensor] = {}
    skipped: list[str] = []
    unknown: list[str] = []
    top = {
        "cls_token": "embeddings.cls_token",
        "mask_token": "embeddings.mask_token",
        "pos_embed": "embeddings.position_embeddings",
        "register_tokens": "embeddings.register_tokens",
        "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
        "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
        "norm.weight": "layernorm.weight",
        "norm.bias": "layernorm.bias",
    }
    block = re.compile(r"^blocks\.(\d+)\.(.+)$")
    for key, value in sd.items():
        value = _float32(value)
        if key in top:
            # Meta stores mask_token as (1, C) like transformers; older exports use (1, 1, C).
            out[top[key]] = value.reshape(1, -1) if key == "mask_token" else value
            continue
        if key.startswith(_DINO_HEADS):
            skipped.append(key)
            continue
        m = block.match(key)
        if not m:
            unknown.append(key)
            continue
        layer, rest = f"encoder.layer.{m[1]}", m[2]
        if rest in ("attn.qkv.weight", "attn.qkv.bias"):
            q, k, v = value.chunk(3, dim=0)
            kind = rest.rsplit(".", 1)[1]
            for name, part in (("q_proj", q), ("k_proj", k), ("v_proj", v)):
                out[f"{layer}.attention.{name}.{kind}"] = part.contiguous()
        elif rest in ("mlp.w12.weight", "mlp.w12.bias"):
            gate, up = value.chunk(2, dim=0)
            kind = rest.rsplit(".", 1)[1]
            out[f"{layer}.mlp.gate_proj.{kind}"] = gate.contiguous()
            out[f"{layer}.mlp.up_proj.{kind}"] = up.contiguous()
        else:
            simple = {
                "norm1.weight": "norm1.weight",
                "norm1.bias": "norm1.bias",
                "norm2.weight": "norm2.weight",
                "norm2.bias": "norm2.bias",
                "attn.proj.weight": "attention.o_proj.weight",
                "attn.proj.bias": "attention.o_proj.bias",
                "ls1.gamma": "layer_scale1.lambda1",
                "ls2.gamma": "layer_scale2.lambda1",
                "mlp.fc1.weight": "mlp.fc1.weight",
                "mlp.fc1.bias": "mlp.fc1.bias",
                "mlp.fc2.weight": "mlp.fc2.weight",
                "mlp.fc2.bias": "mlp.fc2.bias",
                "mlp.w3.weight": "mlp.down_proj.weight",
                "mlp.w3.bias": "mlp.down_proj.bias",
            }.get(rest)
            if simple is None:
                unknown.append(key)
            else:
                out[f"{layer}.{simple}"] = value
    if unknown:
        raise CheckpointError(
            f"{len(unknown)} DINOv2 tensor(s) have no place in the recognised "
            f"{arch.spec.arch} model: {unknown[:8]}"
        )
    return out, arch, skipped
