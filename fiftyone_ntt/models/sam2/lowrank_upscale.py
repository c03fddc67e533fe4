"""The upscaling of :class:`~fiftyone_ntt.models.sam2.lowrank.LowRankMaskDecoder` (per kept
prompt), optionally in bfloat16.

``upscale_conv1`` is a per-pixel linear map, so for image tokens
``keys[p] = s[p]·Y2[p] + coef[:, p]ᵀ·basis`` it is ``s·(Y2 W1) + coefᵀ (basis W1)``: a
``(L, 2K+4)·(2K+4, 4·C/4)`` product per prompt instead of ``(L, C)·(C, 4·C/4)``, with
``Y2 W1`` once per image. Then LayerNorm, GELU, ``upscale_conv2``, GELU and the
hypernetwork product as in :class:`~fiftyone_ntt.models.sam2.decoder.FastMaskDecoder`, in
pixel tiles so the ``(tile, ·)`` intermediates stay in the CPU caches.

``dtype=torch.bfloat16`` (the CPU ``bfloat16`` precision) runs these products and passes
in bfloat16; the LayerNorm's statistics are still accumulated in float32 by PyTorch's
kernel, and everything before (two-way blocks, IoU head, the per-pixel scale ``s``) stays
float32, so the kept prompts and their IoU are the float32 ones. ``dtype=torch.float32``
is the exact default.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from fiftyone_ntt.models.sam2.decoder import UpscalePlan

__all__ = ["UPSCALE_PIXELS", "UPSCALE_TILE", "low_rank_upscale"]

#: Pixels per upscaling tile (rows of the ``(tile, C)`` intermediates).
UPSCALE_TILE = 1024
#: Prompt-pixels per upscaling step on CPU (prompts per step = this // tile).
UPSCALE_PIXELS = 4096
#: float32 hypernetwork product as one ``mv`` per prompt straight into the output: a float32
#: ``bmm`` with one column measured 6x slower (float rounding differs, ~1e-6 relative).
HYPER_MATVEC = True


def low_rank_upscale(
    decoder: Any,
    keys: Any,
    mask_token: torch.Tensor,
    chosen: torch.Tensor,
    plan: UpscalePlan,
    side: int,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Mask logits of the kept prompts.

    Args:
        decoder: the ``Sam2MaskDecoder`` (its hypernetwork MLPs).
        keys: a ``LowRankKeys`` of ``k`` prompts (``scale (k, L)``, ``coef (k, 2K+4, L)``,
            ``basis (k, 2K+4, C)``, ``terms.y2 (L, C)``, ``terms.cache``).
        mask_token: ``(k, C)`` chosen mask tokens after the final attention.
        chosen: ``(k,)`` their token index.
        plan: float32 upscaling plan.
        side: the image-token grid side ``h = w``.
        dtype: compute dtype of the products and passes here (float32 or bfloat16).

    Returns:
        ``(k, 4h, 4w)`` float32 logits.
    """
    k, _, length = keys.coef.shape
    h = w = side
    c4 = plan.norm_weight.shape[0]
    c8 = plan.w2.shape[1] // 4
    device = keys.coef.device
    hyper = torch.empty((k, c8, 1), dtype=dtype, device=device)
    for token in torch.unique(chosen).tolist():
        rows = torch.nonzero(chosen == token).flatten()
        mlp = decoder.output_hypernetworks_mlps[token]
        hyper[rows, :, 0] = mlp(mask_token[rows]).to(dtype)
    # Per-image terms in the compute dtype, cached on the image's terms (Y2 W1 once).
    cache = keys.terms.cache
    key = (id(plan.w1), dtype)
    shared = cache.get(key)
    if shared is None:
        shared = tuple(
            x.to(dtype).contiguous()
            for x in (keys.terms.y2 @ plan.w1, plan.w1, plan.s1, plan.s0, plan.w2)
        )
        shared += (plan.norm_weight.to(dtype), plan.norm_bias.to(dtype))
        cache.clear()
        cache[key] = shared
    y2w1, w1, s1, s0, w2, norm_weight, norm_bias = shared
    basis = keys.basis.to(dtype)
    coef = keys.coef.to(dtype)
    # A bf16 ``baddbmm`` copies its transposed operand first (measured: as slow as the
    # product); a bf16 ``addmm`` per prompt takes it transposed without a copy.
    per_prompt = dtype != torch.float32 and device.type == "cpu"
    matvec = HYPER_MATVEC and dtype == torch.float32 and device.type == "cpu"
    scale = keys.scale.to(dtype)
    weight1 = torch.bmm(basis, w1.expand(k, -1, -1))  # (k, 2K+4, 4·C/4)
    masks = torch.empty((k, length * 16), dtype=torch.float32, device=device)
    tile = UPSCALE_TILE if device.type == "cpu" else length
    group = max(1, UPSCALE_PIXELS // tile) if device.type == "cpu" else 64
    # Pixel tiles outermost: the shared (tile, ·) rows stay in cache for every prompt.
    for lo in range(0, length, tile):
        hi = min(length, lo + tile)
        span = hi - lo
        s1_rows, y_rows, s0_rows = s1[lo:hi], y2w1[lo:hi], s0[4 * lo : 4 * hi]
        for start in range(0, k, group):
            stop = min(k, start + group)
            g = stop - start
            up = torch.addcmul(s1_rows, y_rows, scale[start:stop, lo:hi, None])
            if per_prompt:
                for i in range(g):
                    up[i].addmm_(coef[start + i, :, lo:hi].T, weight1[start + i])
            else:
                up.baddbmm_(coef[start:stop, :, lo:hi].transpose(1, 2), weight1[start:stop])
            up = F.layer_norm(up.view(g, span * 4, c4), (c4,), norm_weight, norm_bias, plan.eps)
            up = torch.ops.aten.gelu_(up)  # exact (erf) GELU, as nn.GELU()
            up = torch.baddbmm(s0_rows, up, w2.expand(g, -1, -1))  # (g, 4·span, 4·C/8)
            up = torch.ops.aten.gelu_(up)
            flat = up.view(g, span * 16, c8)
            if matvec:
                for i in range(g):
                    torch.mv(
                        flat[i], hyper[start + i, :, 0], out=masks[start + i, 16 * lo : 16 * hi]
                    )
            else:
                out = torch.bmm(flat, hyper[start:stop])
                masks[start:stop, 16 * lo : 16 * hi] = out.view(g, span * 16)
    # Rows are (y, x, a, b, c, d) → pixel (4y+2a+c, 4x+2b+d).
    masks = masks.view(k, h, w, 2, 2, 2, 2).permute(0, 1, 3, 5, 2, 4, 6)
    return masks.reshape(k, 4 * h, 4 * w)
