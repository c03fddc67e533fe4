"""Tiny random-weight DINOv2 and SAM 2 models for tests (no downloads, milliseconds to build).

They keep the real interfaces: DINOv2 takes 518² and returns a 37×37 grid; SAM 2 takes
1024², has the 256/128/64 feature pyramid and returns 256² low-res logits. Weights are
seeded and deterministic, and parameters ``transformers`` would zero-initialise
(``no_memory_embedding``, register/mask tokens, Hiera positional embeddings) are drawn at
random so that tests can see whether they are used.
"""

from __future__ import annotations

from typing import Any

import torch

from fiftyone_ntt.models.dinov2.conversion import Dinov2Spec
from fiftyone_ntt.models.sam2.specs import HieraSpec

__all__ = [
    "TINY_DINOV2_SPEC",
    "TINY_HIERA_SPEC",
    "tiny_dinov2_config",
    "tiny_dinov2_model",
    "tiny_encoder",
    "tiny_proposer",
    "tiny_sam2_config",
    "tiny_sam2_model",
]

#: The tiny SAM 2 trunk, in the form architecture inference understands (tests register it
#: in ``conversion.HIERA_SPECS`` to round-trip Meta-format checkpoints).
TINY_HIERA_SPEC = HieraSpec(
    arch="hiera_tiny_random",
    embed_dim=8,
    blocks_per_stage=(1, 1, 2, 1),
    heads_per_stage=(1, 1, 2, 2),
    window_sizes=(8, 4, 8, 4),
    # Like the real sizes: global attention inside stage 3, never on a pooling block.
    global_attention_blocks=(3,),
    window_pos_embed_bkg=(7, 7),
    decoder_heads=2,
)

#: The tiny DINOv2 (width 32, depth 2, 2 heads), for ``conversion.DINOV2_SPECS``.
TINY_DINOV2_SPEC = Dinov2Spec(arch="vit_tiny_random", hidden_size=32, num_layers=2, num_heads=2)

_SAM2_HIDDEN = 32


def tiny_dinov2_config(
    registers: int = 0,
    *,
    hidden_size: int = TINY_DINOV2_SPEC.hidden_size,
    num_hidden_layers: int = TINY_DINOV2_SPEC.num_layers,
    num_attention_heads: int = TINY_DINOV2_SPEC.num_heads,
    image_size: int = 518,
    patch_size: int = 14,
    **extra: Any,
) -> Any:
    """A ``Dinov2Config`` (or ``Dinov2WithRegistersConfig``) of a tiny ViT/14 at 518².

    ``extra`` passes other config fields (e.g. ``use_swiglu_ffn=True``).
    """
    from transformers import Dinov2Config, Dinov2WithRegistersConfig

    common: dict[str, Any] = {
        "hidden_size": hidden_size,
        "num_hidden_layers": num_hidden_layers,
        "num_attention_heads": num_attention_heads,
        "mlp_ratio": 4,
        "image_size": image_size,
        "patch_size": patch_size,
        "layer_norm_eps": 1e-6,
        **extra,
    }
    if registers:
        return Dinov2WithRegistersConfig(num_register_tokens=registers, **common)
    return Dinov2Config(**common)


def tiny_dinov2_model(seed: int = 0, registers: int = 0, **config_overrides: Any) -> Any:
    """A seeded random ``Dinov2Model`` / ``Dinov2WithRegistersModel`` (eval, no grad)."""
    from transformers import Dinov2Model, Dinov2WithRegistersModel

    config = tiny_dinov2_config(registers, **config_overrides)
    cls = Dinov2WithRegistersModel if registers else Dinov2Model
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cls(config)
        with torch.no_grad():
            embeddings = model.embeddings
            embeddings.mask_token.normal_(0.0, 0.5)
            if registers:
                embeddings.register_tokens.normal_(0.0, 0.5)
            for layer in model.encoder.layer:
                # Layer scale 1.0 would let random blocks swamp the embeddings; draw it.
                layer.layer_scale1.lambda1.uniform_(0.1, 1.0)
                layer.layer_scale2.lambda1.uniform_(0.1, 1.0)
    model.eval()
    model.requires_grad_(False)
    return model


def tiny_sam2_config() -> Any:
    """A ``Sam2Config``: a 5-block Hiera (width 8..64) and a 32-wide neck and decoder."""
    from transformers import (
        Sam2Config,
        Sam2HieraDetConfig,
        Sam2MaskDecoderConfig,
        Sam2PromptEncoderConfig,
        Sam2VisionConfig,
    )

    spec = TINY_HIERA_SPEC
    backbone = Sam2HieraDetConfig(
        hidden_size=spec.embed_dim,
        num_attention_heads=spec.heads_per_stage[0],
        blocks_per_stage=list(spec.blocks_per_stage),
        embed_dim_per_stage=spec.embed_dims,
        num_attention_heads_per_stage=list(spec.heads_per_stage),
        window_size_per_stage=list(spec.window_sizes),
        global_attention_blocks=list(spec.global_attention_blocks),
        window_positional_embedding_background_size=list(spec.window_pos_embed_bkg),
    )
    vision = Sam2VisionConfig(
        backbone_config=backbone,
        backbone_channel_list=spec.embed_dims[::-1],
        fpn_hidden_size=_SAM2_HIDDEN,
    )
    prompt = Sam2PromptEncoderConfig(hidden_size=_SAM2_HIDDEN, mask_input_channels=8)
    decoder = Sam2MaskDecoderConfig(
        hidden_size=_SAM2_HIDDEN,
        mlp_dim=64,
        num_attention_heads=spec.decoder_heads,
        iou_head_hidden_dim=_SAM2_HIDDEN,
    )
    return Sam2Config(
        vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder
    )


def tiny_sam2_model(seed: int = 0) -> Any:
    """A seeded random ``Sam2Model`` (eval, no grad) with a non-zero ``no_memory_embedding``."""
    from transformers import Sam2Model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Sam2Model(tiny_sam2_config())
        with torch.no_grad():
            model.no_memory_embedding.normal_(0.0, 0.5)
            # SAM 2 has one random-Fourier matrix for prompts and image PE (transformers keeps
            # two copies, equal in every converted checkpoint); random init draws two.
            model.shared_image_embedding.positional_embedding.copy_(
                model.prompt_encoder.shared_embedding.positional_embedding
            )
            backbone = model.vision_encoder.backbone
            backbone.pos_embed.normal_(0.0, 0.1)
            backbone.pos_embed_window.normal_(0.0, 0.1)
            draw_decoder_heads(model.mask_decoder)
    model.eval()
    model.requires_grad_(False)
    return model


def draw_decoder_heads(decoder: torch.nn.Module) -> None:
    """Re-draw a SAM 2-style mask decoder's output heads at unit gain (in place, no grad).

    transformers' small init (std 0.02) shrinks these heads' outputs to ~1e-4: at unit gain
    predicted IoUs spread over (0, 1) and mask logits are O(1), with positive and negative
    pixels.
    """
    for head in (*decoder.output_hypernetworks_mlps, decoder.iou_prediction_head):
        for linear in (head.proj_in, *head.layers, head.proj_out):
            linear.weight.normal_(0.0, linear.in_features**-0.5)
    for conv in (decoder.conv_s0, decoder.upscale_conv2):
        conv.weight.normal_(0.0, conv.weight[0].numel() ** -0.5)


def tiny_encoder(
    seed: int = 0,
    registers: int = 0,
    *,
    device: str | torch.device = "cpu",
    precision: str = "float32",
    **config_overrides: Any,
) -> Any:
    """A :class:`~fiftyone_ntt.models.dinov2.Dinov2Encoder` over :func:`tiny_dinov2_model`."""
    from fiftyone_ntt.models.dinov2.encoder import Dinov2Encoder

    return Dinov2Encoder(
        tiny_dinov2_model(seed, registers, **config_overrides),
        source=f"tiny-random-dinov2(seed={seed}, registers={registers})",
        device=device,
        precision=precision,
        arch=TINY_DINOV2_SPEC.arch,
    )


def tiny_proposer(
    seed: int = 0,
    *,
    device: str | torch.device = "cpu",
    precision: str = "float32",
    version: str = "2.1",
    decode_batch_size: int | None = None,
) -> Any:
    """A :class:`~fiftyone_ntt.models.sam2.Sam2Proposer` over :func:`tiny_sam2_model`."""
    from fiftyone_ntt.models.sam2.proposer import Sam2Proposer

    return Sam2Proposer(
        tiny_sam2_model(seed),
        source=f"tiny-random-sam2(seed={seed})",
        version=version,
        device=device,
        precision=precision,
        decode_batch_size=decode_batch_size,
        arch=TINY_HIERA_SPEC.arch,
    )


# --------------------------------------------------------------------------------------------
# DINOv3 (ViT/16 with RoPE and 4 registers)
# --------------------------------------------------------------------------------------------


def tiny_dinov3_config(
    *,
    hidden_size: int = 32,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 2,
    intermediate_size: int = 64,
    registers: int = 4,
    gated: bool = False,
    **extra: Any,
) -> Any:
    """A ``DINOv3ViTConfig`` of a tiny ViT/16 (width 32, depth 2, head size 16, 4 registers),
    with the released models' masked key bias and LayerNorm eps."""
    from transformers import DINOv3ViTConfig

    return DINOv3ViTConfig(
        hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        intermediate_size=intermediate_size,
        patch_size=16,
        image_size=224,
        num_register_tokens=registers,
        use_gated_mlp=gated,
        hidden_act="silu" if gated else "gelu",
        key_bias=False,
        layer_norm_eps=1e-5,
        **extra,
    )


def tiny_dinov3_model(seed: int = 0, **config_overrides: Any) -> Any:
    """A seeded random ``DINOv3ViTModel`` (eval, no grad)."""
    from transformers import DINOv3ViTModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DINOv3ViTModel(tiny_dinov3_config(**config_overrides))
        with torch.no_grad():
            embeddings = model.embeddings
            embeddings.mask_token.normal_(0.0, 0.5)
            embeddings.register_tokens.normal_(0.0, 0.5)
            for layer in model.model.layer:
                # Meta inits layer scale at 1e-5 and transformers at 1.0; draw it so that
                # conversion tests see a mix-up of ls1/ls2.
                layer.layer_scale1.lambda1.uniform_(0.1, 1.0)
                layer.layer_scale2.lambda1.uniform_(0.1, 1.0)
            for name, param in model.named_parameters():
                if name.endswith("bias"):
                    param.normal_(0.0, 0.1)  # zero biases would hide q/k/v bias mix-ups
                elif name.endswith("proj.weight"):
                    # transformers' std 0.02 makes every residual branch ~1e-4 of the stream;
                    # unit gain lets tests see which weights went where.
                    param.normal_(0.0, param.shape[1] ** -0.5)
    model.eval()
    model.requires_grad_(False)
    return model


def tiny_dinov3_encoder(
    seed: int = 0,
    *,
    device: str | torch.device = "cpu",
    precision: str = "float32",
    **config_overrides: Any,
) -> Any:
    """A :class:`~fiftyone_ntt.models.dinov3.Dinov3Encoder` over :func:`tiny_dinov3_model`."""
    from fiftyone_ntt.models.dinov3.encoder import Dinov3Encoder

    return Dinov3Encoder(
        tiny_dinov3_model(seed, **config_overrides),
        source=f"tiny-random-dinov3(seed={seed})",
        device=device,
        precision=precision,
        arch="vit_tiny_random",
    )


# --------------------------------------------------------------------------------------------
# EdgeTAM (RepViT, built without timm, + SAM 2's prompt encoder and decoder)
# --------------------------------------------------------------------------------------------


def tiny_edgetam_config() -> Any:
    """An ``EdgeTamConfig``: a 4-stage RepViT of widths 8..64 (one block each) and the same
    32-wide neck and decoder as :func:`tiny_sam2_config`."""
    from transformers import (
        EdgeTamConfig,
        EdgeTamMaskDecoderConfig,
        EdgeTamPromptEncoderConfig,
        EdgeTamVisionConfig,
        TimmWrapperConfig,
    )

    widths = (8, 16, 32, 64)
    backbone = TimmWrapperConfig(
        architecture="repvit_m1",
        model_args={
            "in_chans": 3,
            "features_only": True,
            "out_indices": [0, 1, 2, 3],
            "embed_dim": widths,
            "depth": (1, 1, 1, 1),
        },
    )
    vision = EdgeTamVisionConfig(
        backbone_config=backbone,
        backbone_channel_list=list(widths[::-1]),
        fpn_hidden_size=_SAM2_HIDDEN,
    )
    prompt = EdgeTamPromptEncoderConfig(hidden_size=_SAM2_HIDDEN, mask_input_channels=8)
    decoder = EdgeTamMaskDecoderConfig(
        hidden_size=_SAM2_HIDDEN,
        mlp_dim=64,
        num_attention_heads=2,
        iou_head_hidden_dim=_SAM2_HIDDEN,
    )
    return EdgeTamConfig(
        vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder
    )


def draw_cnn(module: torch.nn.Module) -> None:
    """Variance-keeping convs and non-trivial batch-norm statistics (transformers' init draws
    convs at std 0.02, which fades RepViT's features to ~1e-9 after four stages, and sets the
    norms to the identity, which would leave their use untested)."""
    for layer in module.modules():
        if isinstance(layer, torch.nn.Conv2d):
            layer.weight.normal_(0.0, layer.weight[0].numel() ** -0.5)
            if layer.bias is not None:
                layer.bias.normal_(0.0, 0.1)
        elif isinstance(layer, torch.nn.BatchNorm2d):
            layer.weight.uniform_(0.5, 1.5)
            layer.bias.normal_(0.0, 0.1)
            layer.running_mean.normal_(0.0, 0.1)
            layer.running_var.uniform_(0.5, 1.5)


def tiny_edgetam_model(seed: int = 0) -> Any:
    """A seeded random ``EdgeTamModel`` (eval, no grad), drawn like :func:`tiny_sam2_model`."""
    from fiftyone_ntt.models.edgetam.proposer import build_edgetam_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_edgetam_model(tiny_edgetam_config())
        with torch.no_grad():
            model.no_memory_embedding.normal_(0.0, 0.5)
            model.shared_image_embedding.positional_embedding.copy_(
                model.prompt_encoder.shared_embedding.positional_embedding
            )
            draw_cnn(model.vision_encoder)
            draw_decoder_heads(model.mask_decoder)
    model.eval()
    model.requires_grad_(False)
    return model


def tiny_edgetam_proposer(
    seed: int = 0,
    *,
    device: str | torch.device = "cpu",
    precision: str = "float32",
    decode_batch_size: int | None = None,
) -> Any:
    """An :class:`~fiftyone_ntt.models.edgetam.EdgeTamProposer` over :func:`tiny_edgetam_model`."""
    from fiftyone_ntt.models.edgetam.proposer import EdgeTamProposer

    return EdgeTamProposer(
        tiny_edgetam_model(seed),
        source=f"tiny-random-edgetam(seed={seed})",
        device=device,
        precision=precision,
        decode_batch_size=decode_batch_size,
        arch="repvit_tiny_random",
    )
