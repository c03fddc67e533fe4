"""Meta's original checkpoint layout from ``transformers`` state dicts: the key mapping of
the ``conversion`` modules of :mod:`fiftyone_ntt.models.sam2`, ``.dinov2`` and ``.edgetam`` inverted by hand, so tests can write tiny Meta-format
files (``sam2_hiera_large.pt`` with key ``"model"``, ``dinov2_vitl14_pretrain.pth``).
"""

from __future__ import annotations

import re

import torch

# --------------------------------------------------------------------------------------------
# Inverse mappings: transformers names → Meta's original names
# --------------------------------------------------------------------------------------------

_MLP3 = {"proj_in": "0", "layers.0": "1", "proj_out": "2"}
_MLP2 = {"proj_in": "0", "proj_out": "1"}
_MASK_EMBED = {"conv1": "0", "layer_norm1": "1", "conv2": "3", "layer_norm2": "4", "conv3": "6"}
_UPSCALE = {"upscale_conv1": "0", "upscale_layer_norm": "1", "upscale_conv2": "3"}


def _sam2_hf_to_meta_key(key: str) -> str:
    rules = [
        (
            r"vision_encoder\.backbone\.patch_embed\.projection\.(\w+)",
            r"image_encoder.trunk.patch_embed.proj.\1",
        ),
        (r"vision_encoder\.backbone\.(pos_embed|pos_embed_window)", r"image_encoder.trunk.\1"),
        (
            r"vision_encoder\.backbone\.blocks\.(\d+)\.layer_norm(\d)\.(\w+)",
            r"image_encoder.trunk.blocks.\1.norm\2.\3",
        ),
        (
            r"vision_encoder\.backbone\.blocks\.(\d+)\.attn\.(\w+)\.(\w+)",
            r"image_encoder.trunk.blocks.\1.attn.\2.\3",
        ),
        (
            r"vision_encoder\.backbone\.blocks\.(\d+)\.proj\.(\w+)",
            r"image_encoder.trunk.blocks.\1.proj.\2",
        ),
        (r"vision_encoder\.neck\.convs\.(\d+)\.(\w+)", r"image_encoder.neck.convs.\1.conv.\2"),
        (
            r"prompt_encoder\.shared_embedding\.positional_embedding",
            "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
        ),
        (
            r"prompt_encoder\.(not_a_point_embed|no_mask_embed)\.weight",
            r"sam_prompt_encoder.\1.weight",
        ),
        (
            r"mask_decoder\.transformer\.layers\.(\d+)\.(\w+)\.o_proj\.(\w+)",
            r"sam_mask_decoder.transformer.layers.\1.\2.out_proj.\3",
        ),
        (
            r"mask_decoder\.transformer\.layers\.(\d+)\.(\w+)\.([qkv]_proj)\.(\w+)",
            r"sam_mask_decoder.transformer.layers.\1.\2.\3.\4",
        ),
        (
            r"mask_decoder\.transformer\.layers\.(\d+)\.layer_norm(\d)\.(\w+)",
            r"sam_mask_decoder.transformer.layers.\1.norm\2.\3",
        ),
        (
            r"mask_decoder\.transformer\.final_attn_token_to_image\.o_proj\.(\w+)",
            r"sam_mask_decoder.transformer.final_attn_token_to_image.out_proj.\1",
        ),
        (
            r"mask_decoder\.transformer\.final_attn_token_to_image\.([qkv]_proj)\.(\w+)",
            r"sam_mask_decoder.transformer.final_attn_token_to_image.\1.\2",
        ),
        (
            r"mask_decoder\.transformer\.layer_norm_final_attn\.(\w+)",
            r"sam_mask_decoder.transformer.norm_final_attn.\1",
        ),
        (
            r"mask_decoder\.(iou_token|mask_tokens|obj_score_token|conv_s0|conv_s1)\.(\w+)",
            r"sam_mask_decoder.\1.\2",
        ),
        (r"no_memory_embedding", "no_mem_embed"),
    ]
    m = re.match(r"^vision_encoder\.backbone\.blocks\.(\d+)\.mlp\.(proj_in|proj_out)\.(\w+)$", key)
    if m:
        return f"image_encoder.trunk.blocks.{m[1]}.mlp.layers.{_MLP2[m[2]]}.{m[3]}"
    m = re.match(r"^mask_decoder\.transformer\.layers\.(\d+)\.mlp\.(proj_in|proj_out)\.(\w+)$", key)
    if m:
        return f"sam_mask_decoder.transformer.layers.{m[1]}.mlp.layers.{_MLP2[m[2]]}.{m[3]}"
    m = re.match(r"^prompt_encoder\.mask_embed\.(\w+)\.(\w+)$", key)
    if m:
        return f"sam_prompt_encoder.mask_downscaling.{_MASK_EMBED[m[1]]}.{m[2]}"
    m = re.match(r"^mask_decoder\.(upscale_conv1|upscale_layer_norm|upscale_conv2)\.(\w+)$", key)
    if m:
        return f"sam_mask_decoder.output_upscaling.{_UPSCALE[m[1]]}.{m[2]}"
    m = re.match(
        r"^mask_decoder\.(output_hypernetworks_mlps\.\d+|iou_prediction_head|pred_obj_score_head)"
        r"\.(proj_in|layers\.0|proj_out)\.(\w+)$",
        key,
    )
    if m:
        return f"sam_mask_decoder.{m[1]}.layers.{_MLP3[m[2]]}.{m[3]}"
    for pattern, replacement in rules:
        if re.fullmatch(pattern, key):
            return re.sub(pattern, replacement, key)
    raise AssertionError(f"test helper has no Meta name for {key}")


def sam2_hf_to_meta(hf_state: dict[str, torch.Tensor], version: str = "2.0") -> dict:
    """A Meta-layout SAM 2 state dict (with video-only extras) from a transformers one."""
    out: dict[str, torch.Tensor] = {}
    for key, value in hf_state.items():
        if key == "shared_image_embedding.positional_embedding":
            continue  # Meta has a single copy (the prompt encoder's)
        if key == "prompt_encoder.point_embed.weight":
            for i in range(value.shape[0]):
                out[f"sam_prompt_encoder.point_embeddings.{i}.weight"] = value[i : i + 1].clone()
            continue
        out[_sam2_hf_to_meta_key(key)] = value.clone()
    device = next(iter(hf_state.values())).device
    extras = {
        "maskmem_tpos_enc": (7, 1, 1, 64),
        "no_mem_pos_enc": (1, 1, 256),
        "no_obj_ptr": (1, 256),
        "memory_attention.layers.0.self_attn.q_proj.weight": (256, 256),
        "memory_encoder.fuser.layers.0.dwconv.weight": (256, 1, 7, 7),
        "mask_downsample.weight": (1, 1, 4, 4),
        "obj_ptr_proj.layers.0.weight": (256, 256),
    }
    if version == "2.1":
        extras.update({"no_obj_embed_spatial": (1, 64), "obj_ptr_tpos_proj.weight": (64, 256)})
    for key, shape in extras.items():
        out[key] = torch.zeros(shape, device=device)
    return out


def dinov2_hf_to_meta(hf_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A Meta-layout DINOv2 state dict (fused qkv / w12) from a transformers one."""
    top = {
        "embeddings.cls_token": "cls_token",
        "embeddings.mask_token": "mask_token",
        "embeddings.position_embeddings": "pos_embed",
        "embeddings.register_tokens": "register_tokens",
        "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
        "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
        "layernorm.weight": "norm.weight",
        "layernorm.bias": "norm.bias",
    }
    simple = {
        "norm1": "norm1",
        "norm2": "norm2",
        "attention.o_proj": "attn.proj",
        "mlp.fc1": "mlp.fc1",
        "mlp.fc2": "mlp.fc2",
        "mlp.down_proj": "mlp.w3",
    }
    out: dict[str, torch.Tensor] = {}
    for key, value in hf_state.items():
        if key in top:
            out[top[key]] = value.clone()
            continue
        m = re.match(r"^encoder\.layer\.(\d+)\.(.+)\.(weight|bias|lambda1)$", key)
        assert m, key
        block, name, kind = f"blocks.{m[1]}", m[2], m[3]
        if name in simple:
            out[f"{block}.{simple[name]}.{kind}"] = value.clone()
        elif name in ("layer_scale1", "layer_scale2"):
            out[f"{block}.ls{name[-1]}.gamma"] = value.clone()
        elif name == "attention.q_proj":
            parts = [
                hf_state[f"encoder.layer.{m[1]}.attention.{p}.{kind}"]
                for p in ("q_proj", "k_proj", "v_proj")
            ]
            out[f"{block}.attn.qkv.{kind}"] = torch.cat(parts)
        elif name == "mlp.gate_proj":
            parts = [
                hf_state[f"encoder.layer.{m[1]}.mlp.{p}.{kind}"] for p in ("gate_proj", "up_proj")
            ]
            out[f"{block}.mlp.w12.{kind}"] = torch.cat(parts)
        elif name in ("attention.k_proj", "attention.v_proj", "mlp.up_proj"):
            continue  # fused above
        else:
            raise AssertionError(f"test helper has no Meta name for {key}")
    return out


def edgetam_hf_to_meta(hf_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A Meta-layout EdgeTAM state dict (``edgetam.pt``'s ``"model"``) from a transformers
    ``EdgeTamModel`` one, with video-only extras (SAM 2's and a spatial perceiver) that a
    loader must ignore. The RepViT trunk keeps timm's names under ``image_encoder.trunk.body.``.
    """
    trunk = "vision_encoder.backbone.timm_model."
    out = sam2_hf_to_meta({k: v for k, v in hf_state.items() if not k.startswith(trunk)})
    for key, value in hf_state.items():
        if key.startswith(trunk):
            out["image_encoder.trunk.body." + key[len(trunk) :]] = value.clone()
    device = next(iter(hf_state.values())).device
    for key, shape in {
        "spatial_perceiver.latents": (256, 64),
        "spatial_perceiver.layers.0.ff.0.weight": (64,),
        "spatial_perceiver.layers.0.cross_attn.to_q.weight": (64, 64),
        "memory_encoder.out_proj.weight": (64, 256, 1, 1),
    }.items():
        out[key] = torch.zeros(shape, device=device)
    return out
