"""Meta's SAM 2 / 2.1 checkpoints (``sam2*_hiera_*.pt``) → ``transformers.Sam2Model`` names;
the Hiera size read from the tensors."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from fiftyone_ntt.models.sam2.specs import HIERA_SPECS, HieraSpec
from fiftyone_ntt.models.state_dict import (
    CheckpointError,
    StateDict,
    as_float32,
    key_indices,
    tensor_shape,
    unwrap_state_dict,
)

# --------------------------------------------------------------------------------------------
# SAM 2
# --------------------------------------------------------------------------------------------

#: Tensors of the video path (memory attention/encoder, object pointers): unused when
#: proposing masks on single images (§1.1), so they are skipped.
SAM2_VIDEO_PREFIXES = (
    "memory_attention.",
    "memory_encoder.",
    "mask_downsample.",
    "obj_ptr_proj.",
    "obj_ptr_tpos_proj.",
)
_SAM2_VIDEO_KEYS = frozenset(
    {"maskmem_tpos_enc", "no_mem_pos_enc", "no_obj_ptr", "no_obj_embed_spatial"}
)
#: Keys that may hold the state dict in Meta's files (SAM 2 and EdgeTAM).
SAM2_WRAPPERS = ("model", "state_dict")
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


def strip_sam2_prefixes(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict without a ``module.`` / ``model.`` prefix common to all its keys."""
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
    blocks = key_indices(sd, rf"^{re.escape(trunk)}blocks\.(\d+)\.")
    if not blocks or blocks != list(range(len(blocks))):
        raise CheckpointError(f"SAM 2 trunk blocks are not numbered 0..N-1: {blocks[:10]}...")
    dims = [tensor_shape(sd, f"{trunk}blocks.{i}.norm2.weight", what)[0] for i in blocks]
    # A stage is a run of blocks with the same output width (widths double between stages).
    stages: list[int] = []
    widths: list[int] = []
    for width in dims:
        if widths and widths[-1] == width:
            stages[-1] += 1
        else:
            widths.append(width)
            stages.append(1)
    embed_dim = tensor_shape(sd, f"{trunk}pos_embed", what)[1]
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
    bkg = tensor_shape(sd, f"{trunk}pos_embed", what)[2:]
    window = tensor_shape(sd, f"{trunk}pos_embed_window", what)[2]
    if tuple(bkg) != spec.window_pos_embed_bkg or window != spec.window_sizes[0]:
        raise CheckpointError(
            f"{spec.arch}: positional embedding {tuple(bkg)} / window {window} do not match "
            f"the published config ({spec.window_pos_embed_bkg} / {spec.window_sizes[0]})"
        )

    necks = key_indices(sd, r"^image_encoder\.neck\.convs\.(\d+)\.conv\.weight$")
    neck_shapes = [
        tensor_shape(sd, f"image_encoder.neck.convs.{i}.conv.weight", what) for i in necks
    ]
    if not neck_shapes:
        raise CheckpointError("the SAM 2 checkpoint has no FPN neck ('image_encoder.neck.*')")
    fpn = neck_shapes[0][0]
    channels = [s[1] for s in neck_shapes]
    if channels != spec.embed_dims[::-1]:
        raise CheckpointError(
            f"{spec.arch}: FPN neck inputs {channels} do not match the trunk widths "
            f"{spec.embed_dims[::-1]}"
        )

    decoder, prompt = sam2_head_configs(sd, spec.decoder_heads, fpn)
    version = "2.1" if any(k.startswith(_SAM2_1_MARKERS) for k in sd) else "2.0"
    return Sam2Architecture(
        spec=spec,
        version=version,
        fpn_hidden_size=fpn,
        backbone_channel_list=channels,
        decoder=decoder,
        prompt_encoder=prompt,
    )


def sam2_head_configs(
    sd: StateDict, decoder_heads: int, fpn_hidden_size: int, what: str = "SAM 2"
) -> tuple[dict[str, int], dict[str, int]]:
    """The mask decoder / prompt encoder config keywords of a Meta SAM 2-style state dict
    (SAM 2 and EdgeTAM share both modules).

    Args:
        sd: Meta-layout tensors (``sam_mask_decoder.*``, ``sam_prompt_encoder.*``).
        decoder_heads: attention heads of the two-way transformer (not readable from shapes).
        fpn_hidden_size: the neck width, which must equal the decoder width.
        what: the model named in messages.

    Raises:
        CheckpointError: a missing tensor or a decoder variant transformers cannot build.
    """
    fpn = fpn_hidden_size
    dec = "sam_mask_decoder."
    hidden = tensor_shape(sd, f"{dec}iou_token.weight", what)[1]
    if f"{dec}obj_score_token.weight" not in sd:
        raise CheckpointError(
            "the SAM 2 mask decoder has no object-score token (pred_obj_scores=False); every "
            "released SAM 2 / 2.1 checkpoint has one, this variant is not supported"
        )
    n_layers = len(key_indices(sd, rf"^{re.escape(dec)}transformer\.layers\.(\d+)\."))
    depths = _mlp_depths(sd)
    decoder = {
        "hidden_size": hidden,
        "num_hidden_layers": n_layers,
        "num_attention_heads": decoder_heads,
        "mlp_dim": tensor_shape(sd, f"{dec}transformer.layers.0.mlp.layers.0.weight", what)[0],
        "num_multimask_outputs": tensor_shape(sd, f"{dec}mask_tokens.weight", what)[0] - 1,
        "iou_head_depth": depths.get(f"{dec}iou_prediction_head", 0),
        "iou_head_hidden_dim": tensor_shape(sd, f"{dec}iou_prediction_head.layers.0.weight", what)[
            0
        ],
    }
    if n_layers != 2 or depths.get(f"{dec}transformer.layers.0.mlp") != 2:
        # transformers ties the two-way block count to its MLP depth (both 2 in SAM 2).
        raise CheckpointError(
            f"unsupported SAM 2 decoder: {n_layers} two-way blocks (expected 2 with 2-layer MLPs)"
        )
    if fpn != hidden:
        raise CheckpointError(f"FPN width {fpn} differs from the mask decoder width {hidden}")
    prompt = {
        "hidden_size": tensor_shape(sd, "sam_prompt_encoder.no_mask_embed.weight", what)[1],
        "mask_input_channels": tensor_shape(
            sd, "sam_prompt_encoder.mask_downscaling.3.weight", what
        )[0],
    }
    return decoder, prompt


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


def rename_sam2_tensors(
    sd: StateDict, video_prefixes: tuple[str, ...]
) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """Rename SAM 2's image-path tensors (Hiera trunk, FPN neck, prompt encoder, mask
    decoder) from Meta's names to ``transformers`` names, as float32.

    Args:
        sd: a Meta-layout state dict (prefixes already stripped).
        video_prefixes: name prefixes of video-only modules to skip.

    Returns:
        ``(renamed, skipped, unknown)``: ``skipped`` are video-only or foreign tensors,
        ``unknown`` image-path tensors no rule places (the caller decides how to fail).

    Raises:
        CheckpointError: the prompt encoder lacks one of its 4 point embeddings.
    """
    rules = _sam2_rules(_mlp_depths(sd))
    out: dict[str, torch.Tensor] = {}
    skipped: list[str] = []
    unknown: list[str] = []
    point_embeddings: dict[int, torch.Tensor] = {}
    for key, value in sd.items():
        if key.startswith(video_prefixes) or key in _SAM2_VIDEO_KEYS:
            skipped.append(key)
            continue
        m = re.match(r"^sam_prompt_encoder\.point_embeddings\.(\d+)\.weight$", key)
        if m:
            point_embeddings[int(m[1])] = value
            continue
        for pattern, rename in rules:
            m = pattern.match(key)
            if m:
                out[rename(m)] = as_float32(value)
                break
        else:
            (
                unknown
                if key.startswith(_SAM2_IMAGE_PREFIXES) or key == "no_mem_embed"
                else skipped
            ).append(key)
    if sorted(point_embeddings) != [0, 1, 2, 3]:
        raise CheckpointError(
            "the SAM 2 prompt encoder needs 4 point embeddings "
            f"('sam_prompt_encoder.point_embeddings.0..3'), found {sorted(point_embeddings)}"
        )
    # Meta keeps the 4 point-type embeddings (negative, positive, box corner 1, box corner 2)
    # as separate nn.Embedding(1, C); transformers stacks them in one nn.Embedding(4, C).
    out["prompt_encoder.point_embed.weight"] = torch.cat(
        [as_float32(point_embeddings[i]).reshape(1, -1) for i in range(4)], dim=0
    )
    # One random-Fourier matrix serves both the prompt points and the dense image PE in
    # Meta's code; transformers holds two copies.
    gaussian = out.get("prompt_encoder.shared_embedding.positional_embedding")
    if gaussian is not None:
        out["shared_image_embedding.positional_embedding"] = gaussian
    return out, skipped, unknown


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
    sd = strip_sam2_prefixes(unwrap_state_dict(checkpoint, SAM2_WRAPPERS, "SAM 2"))
    arch = infer_sam2_architecture(sd)
    out, skipped, unknown = rename_sam2_tensors(sd, SAM2_VIDEO_PREFIXES)
    if unknown:
        raise CheckpointError(
            f"{len(unknown)} SAM 2 image-path tensor(s) have no place in the recognised "
            f"{arch.spec.arch} model: {unknown[:8]}"
        )
    return out, arch, skipped


#: The image trunk's tensor names in Meta's EdgeTAM checkpoints (a RepViT trunk), which
#: tell an EdgeTAM file from a SAM 2 one.
EDGETAM_TRUNK = "image_encoder.trunk.body."


def original_proposer_family(state_dict: StateDict) -> str | None:
    """``"edgetam"``, ``"sam2"`` or ``None`` (neither) for a Meta-layout state dict, by its
    image trunk's tensor names (EdgeTAM: ``image_encoder.trunk.body.*``)."""
    keys = strip_sam2_prefixes(dict(state_dict)).keys()
    if not any(k.startswith("sam_mask_decoder.") for k in keys):
        return None
    if any(k.startswith(EDGETAM_TRUNK) for k in keys):
        return "edgetam"
    if any(k.startswith("image_encoder.trunk.") for k in keys):
        return "sam2"
    return None
