"""Tiny random video models (SAM 2's and EdgeTAM's video memory) for tests and the tracking
benchmark: the image parts of :mod:`fiftyone_ntt.models.tiny` with the memory modules that
carry objects from frame to frame. Random weights: shapes and code paths, not quality.
"""

from __future__ import annotations

from typing import Any

import torch

from fiftyone_ntt.models.tiny import (
    draw_cnn,
    draw_decoder_heads,
    tiny_edgetam_config,
    tiny_sam2_config,
)

__all__ = [
    "tiny_edgetam_video_config",
    "tiny_edgetam_video_model",
    "tiny_sam2_video_config",
    "tiny_sam2_video_model",
]

_VIDEO_HIDDEN = 128  # memory attention needs the width above its 64-wide memory
_VIDEO_SIZE = 256  # 16x16 top level: memory attention over 256 tokens, milliseconds per frame


def tiny_sam2_video_config() -> Any:
    """A ``Sam2VideoConfig``: the tiny Hiera at 256² with a 128-wide neck and decoder (the
    memory is 64 wide, as in the released models) and one memory-attention layer."""
    from transformers import Sam2VideoConfig

    image = tiny_sam2_config()
    side = _VIDEO_SIZE // 4
    vision = image.vision_config.to_dict()
    vision.update(
        fpn_hidden_size=_VIDEO_HIDDEN,
        image_size=_VIDEO_SIZE,
        backbone_feature_sizes=[[side, side], [side // 2, side // 2], [side // 4, side // 4]],
    )
    prompt = image.prompt_encoder_config.to_dict()
    prompt.update(hidden_size=_VIDEO_HIDDEN, image_size=_VIDEO_SIZE)
    decoder = image.mask_decoder_config.to_dict()
    decoder.update(hidden_size=_VIDEO_HIDDEN, iou_head_hidden_dim=_VIDEO_HIDDEN)
    return Sam2VideoConfig(
        vision_config=vision,
        prompt_encoder_config=prompt,
        mask_decoder_config=decoder,
        image_size=_VIDEO_SIZE,
        memory_attention_hidden_size=_VIDEO_HIDDEN,
        memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=64,
        memory_attention_rope_feat_sizes=[side // 4, side // 4],
        memory_encoder_hidden_size=_VIDEO_HIDDEN,
        mask_downsampler_embed_dim=_VIDEO_HIDDEN,
        memory_fuser_embed_dim=_VIDEO_HIDDEN,
        memory_fuser_intermediate_dim=64,
        memory_fuser_num_layers=1,
    )


def tiny_sam2_video_model(seed: int = 0) -> tuple[Any, Any]:
    """A seeded random ``Sam2VideoModel`` and the ``Sam2Model`` of its image modules (same
    sizes: a tiny proposer's model whose weights the video model can share)."""
    from transformers import Sam2Config, Sam2Model, Sam2VideoModel

    config = tiny_sam2_video_config()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        video = Sam2VideoModel(config)
        image = Sam2Model(
            Sam2Config(
                vision_config=config.vision_config.to_dict(),
                prompt_encoder_config=config.prompt_encoder_config.to_dict(),
                mask_decoder_config=config.mask_decoder_config.to_dict(),
            )
        )
        with torch.no_grad():
            for model in (video, image):
                model.no_memory_embedding.normal_(0.0, 0.5)
                draw_decoder_heads(model.mask_decoder)
            for name, param in video.named_parameters():
                if name.startswith(("memory_", "no_object", "occlusion", "object_pointer")):
                    if param.dim() > 1:
                        param.normal_(0.0, param[0].numel() ** -0.5)
    for model in (video, image):
        model.eval()
        model.requires_grad_(False)
    return video, image


def tiny_edgetam_video_config() -> Any:
    """An ``EdgeTamVideoConfig``: the tiny RepViT of :func:`tiny_edgetam_config` at 256² with
    the 128-wide neck, decoder and one memory-attention layer of
    :func:`tiny_sam2_video_config`, and a one-layer spatial perceiver that compresses a
    memory (16×16 tokens, 64 wide as in the released model) to 16 global and 4×4 windowed
    latents."""
    from transformers import EdgeTamVideoConfig

    from fiftyone_ntt.models.edgetam.proposer import plain_sub_config

    image = tiny_edgetam_config()
    side = _VIDEO_SIZE // 4
    vision = plain_sub_config(image.vision_config)
    vision.update(
        fpn_hidden_size=_VIDEO_HIDDEN,
        backbone_feature_sizes=[[side, side], [side // 2, side // 2], [side // 4, side // 4]],
    )
    prompt = plain_sub_config(image.prompt_encoder_config)
    prompt.update(hidden_size=_VIDEO_HIDDEN, image_size=_VIDEO_SIZE)
    decoder = plain_sub_config(image.mask_decoder_config)
    decoder.update(hidden_size=_VIDEO_HIDDEN, iou_head_hidden_dim=_VIDEO_HIDDEN)
    return EdgeTamVideoConfig(
        vision_config={"model_type": "edgetam_vision_model", **vision},
        prompt_encoder_config=prompt,
        mask_decoder_config=decoder,
        image_size=_VIDEO_SIZE,
        memory_attention_hidden_size=_VIDEO_HIDDEN,
        memory_attention_num_layers=1,
        memory_attention_mlp_hidden_size=64,
        memory_attention_rope_feat_sizes=[side // 4, side // 4],
        memory_attention_rope_k_sizes=[side // 16, side // 16],
        perceiver_resampler_num_latents=16,
        perceiver_resampler_num_latents_2d=(side // 16) ** 2,
        perceiver_resampler_mlp_intermediate_size=64,
        perceiver_resampler_num_layers=1,
        memory_encoder_hidden_size=_VIDEO_HIDDEN,
        mask_downsampler_embed_dim=_VIDEO_HIDDEN,
        memory_fuser_embed_dim=_VIDEO_HIDDEN,
        memory_fuser_intermediate_dim=64,
        memory_fuser_num_layers=1,
    )


def tiny_edgetam_video_model(seed: int = 0) -> tuple[Any, Any]:
    """A seeded random ``EdgeTamVideoModel`` and the ``EdgeTamModel`` of its image modules
    (same sizes, own tensors: a tiny proposer's model whose weights the video model can
    share), both with the native RepViT backbone (no timm)."""
    from transformers import EdgeTamConfig, EdgeTamVideoModel

    from fiftyone_ntt.models.edgetam.proposer import (
        build_edgetam_model,
        native_repvit,
        plain_sub_config,
    )

    config = tiny_edgetam_video_config()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with native_repvit():
            video = EdgeTamVideoModel(config)
        image = build_edgetam_model(
            EdgeTamConfig(
                vision_config=plain_sub_config(config.vision_config),
                prompt_encoder_config=plain_sub_config(config.prompt_encoder_config),
                mask_decoder_config=plain_sub_config(config.mask_decoder_config),
            )
        )
        with torch.no_grad():
            for model in (video, image):
                model.no_memory_embedding.normal_(0.0, 0.5)
                model.shared_image_embedding.positional_embedding.copy_(
                    model.prompt_encoder.shared_embedding.positional_embedding
                )
                draw_cnn(model.vision_encoder)
                draw_decoder_heads(model.mask_decoder)
            for name, param in video.named_parameters():
                if name.startswith(
                    ("memory_", "no_object", "occlusion", "object_pointer", "spatial_perceiver")
                ):
                    if param.dim() > 1:
                        param.normal_(0.0, param[0].numel() ** -0.5)
    for model in (video, image):
        model.eval()
        model.requires_grad_(False)
    return video, image
