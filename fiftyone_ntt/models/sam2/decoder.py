"""The SAM 2 mask decoder for many point prompts on one image, re-associated (exact maths).

Same weights and the same functions as ``transformers``' ``Sam2MaskDecoder`` (two-way
transformer, final token→image attention, IoU head, upscaling, hypernetwork product);
only the order of the linear algebra differs, so results agree to float rounding
(``tests/unit/test_models_sam2.py`` checks ~1e-5 on tiny models; at real size with the
Large decoder the worst relative logit difference measured is ~1e-6). Notation:
``L = 64·64`` image tokens, ``C = 256`` channels, ``T = 8`` tokens per prompt, ``H = 8``
heads of size ``d = 16``.

* The IoU head runs before any upscaling, and only prompts that pass the IoU threshold and
  only their chosen token are upscaled (docs/method.md §5: the reference discards the rest); the
  final token→image attention runs for the IoU token (all prompts) and the chosen mask
  token (kept prompts) only.
* Attention against the image never projects the image per prompt: the projections are
  folded into the ``T`` tokens (``(q_h W_k,h)·imageᵀ``, ``A_h (image W_v,hᵀ) =
  (A_h image) W_v,hᵀ``, ``Σ_h A_h (V_h W_o,hᵀ + b_o/H)``), and every term that involves only
  the image of block 1 or the positional embedding (``pe·W_kᵀ + b_k`` and
  ``pe·W_qᵀ + b_q``) is computed once per image (:meth:`FastMaskDecoder.image_terms`).
* ``ConvTranspose2d(kernel=2, stride=2)`` is a per-pixel linear map, so the upscaling runs
  as channels-last matrix products with the high-resolution features as their input.

On CPU :class:`~fiftyone_ntt.models.sam2.lowrank.LowRankMaskDecoder` (a
subclass) is used instead: it never materialises the per-prompt image tokens (each block's
update is a per-pixel affine map plus a rank-``H·T`` term whose products with shared image
matrices go through shared projections), and runs its passes on worker threads
(docs/benchmarks.md, "Low-rank decoder"; under CPU bfloat16 only its upscaling runs in
bf16). This class stays the path for GPUs and decoders of other shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

__all__ = [
    "FastMaskDecoder",
    "ImageTerms",
    "UpscalePlan",
    "attention_heads",
    "heads_last",
    "token_to_shared_image",
]


@dataclass(frozen=True)
class UpscalePlan:
    """Channels-last weights/features of the mask upscaling (see :meth:`FastMaskDecoder.plan`).

    Attributes:
        w1: ``(C, 4·C/4)`` ``upscale_conv1`` as a per-pixel map, columns (sub-pixel, channel).
        w2: ``(C/4, 4·C/8)`` ``upscale_conv2`` likewise.
        s1: ``(L, 4·C/4)`` ``feat_s1`` + conv1 bias, rows pixel ``y·w+x``.
        s0: ``(4·L, 4·C/8)`` ``feat_s0`` + conv2 bias, rows (pixel, sub-pixel).
    """

    w1: torch.Tensor
    w2: torch.Tensor
    s1: torch.Tensor
    s0: torch.Tensor
    norm_weight: torch.Tensor
    norm_bias: torch.Tensor
    eps: float


@dataclass(frozen=True)
class ImageTerms:
    """Prompt-independent terms of one image (computed once per :meth:`decode` call).

    Attributes:
        image: ``(L, C)`` image tokens ``X0`` (embedding + dense prompt).
        first_k, first_v: ``(H, d, L)`` / ``(H, L, d)`` block 1 token→image key/value heads.
        first_q: ``(H, d, L)`` block 1 image→token query heads, scaled.
        pe_k: per later block, ``(H, d, L)`` ``pe·W_kᵀ + b_k`` of its token→image attention
            (keys are image + PE: the PE part of every logit is shared by all prompts).
        pe_q: per later block, ``(H, d, L)`` ``pe·W_qᵀ + b_q`` of its image→token attention.
        final_pe: ``(H, d, L)`` ``pe·W_kᵀ + b_k`` of the final attention.
    """

    image: torch.Tensor
    first_k: torch.Tensor
    first_v: torch.Tensor
    first_q: torch.Tensor
    pe_k: list[torch.Tensor]
    pe_q: list[torch.Tensor]
    final_pe: torch.Tensor


def attention_heads(attn: Any) -> tuple[int, int, float]:
    """``(heads, head size, scaling)`` of a ``transformers`` SAM 2 attention module."""
    return int(attn.num_attention_heads), int(attn.head_dim), float(attn.scaling)


class FastMaskDecoder:
    """``Sam2MaskDecoder`` for ``n`` single-image prompts, re-associated (module doc).

    Attributes:
        decoder: the wrapped ``transformers`` ``Sam2MaskDecoder`` (weights are read from it).
        pe: ``(L, C)`` image-wide positional embedding.
        side: side of the image-token grid (64).
    """

    def __init__(self, decoder: Any, pe: torch.Tensor, side: int) -> None:
        self.decoder = decoder
        self.pe = pe
        self.side = side
        with torch.inference_mode():
            # Output tokens in transformers' order: [object score, IoU, mask 0..M-1].
            self.output_tokens = torch.cat(
                [
                    decoder.obj_score_token.weight,
                    decoder.iou_token.weight,
                    decoder.mask_tokens.weight,
                ]
            ).contiguous()
        self.num_mask_tokens = int(decoder.num_mask_tokens)

    # ----------------------------------------------------------------------------------------
    # Per-image terms
    # ----------------------------------------------------------------------------------------

    def image_terms(self, image: torch.Tensor) -> ImageTerms:
        """Prompt-independent terms for ``image`` ``(L, C)`` (see :class:`ImageTerms`)."""
        transformer = self.decoder.transformer
        layers = list(transformer.layers)
        pe = self.pe.to(image.dtype)
        length = image.shape[0]
        first = layers[0]
        heads, dim, _ = attention_heads(first.cross_attn_token_to_image)
        key = image + pe
        t2i = first.cross_attn_token_to_image
        first_k = t2i.k_proj(key).view(length, heads, dim).permute(1, 2, 0).contiguous()
        first_v = t2i.v_proj(image).view(length, heads, dim).transpose(0, 1).contiguous()
        i2t = first.cross_attn_image_to_token
        heads2, dim2, scale2 = attention_heads(i2t)
        first_q = (i2t.q_proj(key) * scale2).view(length, heads2, dim2).permute(1, 2, 0)
        pe_k, pe_q = [], []
        for layer in layers[1:]:
            t2i, i2t = layer.cross_attn_token_to_image, layer.cross_attn_image_to_token
            pe_k.append(heads_last(t2i.k_proj(pe), t2i))
            pe_q.append(heads_last(i2t.q_proj(pe), i2t))
        final = transformer.final_attn_token_to_image
        final_pe = heads_last(final.k_proj(pe), final)
        return ImageTerms(
            image=image,
            first_k=first_k,
            first_v=first_v,
            first_q=first_q.contiguous(),
            pe_k=pe_k,
            pe_q=pe_q,
            final_pe=final_pe,
        )

    def plan(
        self, high_res_s0: torch.Tensor, high_res_s1: torch.Tensor, dtype: torch.dtype
    ) -> UpscalePlan:
        """Weights and high-res features of the upscaling path, rearranged channels-last.

        ``ConvTranspose2d(kernel=2, stride=2)`` is a per-pixel linear map to 2×2 sub-pixels,
        so both upscaling steps become matrix products on ``(pixels, channels)`` tensors,
        with the high-res features (and conv biases) folded in as the ``baddbmm`` input.

        Args:
            high_res_s0: ``(1, C/8, 4h, 4w)``; high_res_s1: ``(1, C/4, 2h, 2w)``.
        """
        decoder = self.decoder
        conv1, conv2 = decoder.upscale_conv1, decoder.upscale_conv2
        c4, c8 = conv1.out_channels, conv2.out_channels
        h = w = self.side
        # Columns ordered (sub-pixel a·2+b, channel): weight (Cin, Cout, 2, 2) → (Cin, 2, 2, Cout).
        w1 = conv1.weight.permute(0, 2, 3, 1).reshape(conv1.in_channels, 4 * c4).to(dtype)
        w2 = conv2.weight.permute(0, 2, 3, 1).reshape(c4, 4 * c8).to(dtype)
        # feat_s1 (1, C/4, 2h, 2w) at (2y+a, 2x+b) → rows y·w+x, columns (a·2+b, channel).
        s1 = high_res_s1[0].to(dtype).permute(1, 2, 0).reshape(h, 2, w, 2, c4)
        s1 = s1.permute(0, 2, 1, 3, 4).reshape(h * w, 4 * c4) + conv1.bias.to(dtype).repeat(4)
        # feat_s0 (1, C/8, 4h, 4w) at (4y+2a+c, 4x+2b+d) → rows (y·w+x)·4 + a·2+b,
        # columns (c·2+d, channel).
        s0 = high_res_s0[0].to(dtype).permute(1, 2, 0).reshape(h, 2, 2, w, 2, 2, c8)
        s0 = s0.permute(0, 3, 1, 4, 2, 5, 6).reshape(h * w * 4, 4 * c8)
        s0 = s0 + conv2.bias.to(dtype).repeat(4)
        norm = decoder.upscale_layer_norm
        return UpscalePlan(w1, w2, s1, s0, norm.weight.to(dtype), norm.bias.to(dtype), norm.eps)

    # ----------------------------------------------------------------------------------------
    # Decoding
    # ----------------------------------------------------------------------------------------

    def decode(
        self,
        terms: ImageTerms,
        sparse: torch.Tensor,
        plan: UpscalePlan,
        threshold: float | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mask decoder for ``n`` prompts sharing one image.

        Args:
            terms: from :meth:`image_terms`.
            sparse: ``(n, S, C)`` sparse prompt embeddings.
            plan: from :meth:`plan`.
            threshold: ``None`` → token 0 for every prompt, none dropped; else the best of
                tokens 1..M-1 by predicted IoU, kept when IoU > threshold.

        Returns:
            ``(keep, logits, iou)`` for kept prompts: positions in the batch,
            ``(K, 4h, 4w)`` logits of the chosen token and ``(K,)`` its IoU.
        """
        n = sparse.shape[0]
        device = sparse.device
        tokens = torch.cat(
            [self.output_tokens.to(sparse.dtype).expand(n, -1, -1), sparse], dim=1
        )  # (n, T, C): [object score, IoU, mask 0..M-1, prompt points...]
        queries, keys = self._two_way(tokens, terms)
        # The final token→image attention treats every token independently, and only the
        # IoU token (all prompts) and the chosen mask token (kept prompts) are ever read, so
        # it runs for those alone (§1.1: the other outputs are discarded by the reference).
        iou_token = self._final_attention(queries[:, 1:2], tokens[:, 1:2], keys, terms)[:, 0]
        iou_all = self.decoder.iou_prediction_head(iou_token).float()  # (n, M), sigmoid
        if threshold is None:
            chosen = torch.zeros(n, dtype=torch.long, device=device)
            score = iou_all[:, 0]
            keep = torch.arange(n, device=device)
        else:
            # §1.1: arg-max over the multimask tokens 1..3 (first on ties, as torch.argmax).
            chosen = torch.argmax(iou_all[:, 1:], dim=-1) + 1
            score = iou_all.gather(1, chosen[:, None])[:, 0]
            keep = torch.nonzero(score > threshold).flatten()
            chosen, score = chosen[keep], score[keep]
        if keep.numel() == 0:
            side = 4 * self.side
            empty = torch.zeros((0, side, side), dtype=torch.float32, device=device)
            return keep, empty, score
        if keep.numel() != n:
            queries, tokens = queries[keep], tokens[keep]
            keys = keys.index_select(0, keep)
        rows = torch.arange(keep.numel(), device=device)
        slot = chosen + 2  # mask token t sits at position 2 + t
        mask_token = self._final_attention(
            queries[rows, slot][:, None], tokens[rows, slot][:, None], keys, terms
        )[:, 0]
        logits = self._upscale(keys, mask_token, chosen, plan)
        return keep, logits, score

    def _two_way(
        self, tokens: torch.Tensor, terms: ImageTerms
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The two-way blocks of ``Sam2TwoWayTransformer`` for ``n`` prompts on one image
        (the final token→image attention is :meth:`_final_attention`).

        Args:
            tokens: ``(n, T, C)`` output + sparse prompt tokens (also their positional
                embedding, as in SAM).
            terms: the image's shared terms.

        Returns:
            ``(queries (n, T, C), keys (n, L, C))`` after the last block.
        """
        queries = tokens
        keys: torch.Tensor | None = None  # None: still the shared image (first block)
        for index, layer in enumerate(self.decoder.transformer.layers):
            # Token self-attention (small: T tokens per prompt); the first block has no PE
            # and no residual, exactly as in SAM.
            if layer.skip_first_layer_pe:
                queries = layer.self_attn(
                    query=queries[None], key=queries[None], value=queries[None]
                )[0][0]
            else:
                q = queries + tokens
                queries = (
                    queries + layer.self_attn(query=q[None], key=q[None], value=queries[None])[0][0]
                )
            queries = layer.layer_norm1(queries)

            image_q: torch.Tensor | tuple[torch.Tensor, torch.Tensor]
            if keys is None:
                attn = token_to_shared_image(
                    layer.cross_attn_token_to_image, queries + tokens, terms.first_k, terms.first_v
                )
                image_q = terms.first_q  # (H, d, L), scaled
                residual = terms.image
            else:
                attn = _token_to_image(
                    layer.cross_attn_token_to_image, queries + tokens, keys, terms.pe_k[index - 1]
                )
                image_q = (keys, terms.pe_q[index - 1])
                residual = keys
            queries = layer.layer_norm2(queries + attn)
            queries = layer.layer_norm3(queries + layer.mlp(queries))

            weights_t, values = _image_to_token(
                layer.cross_attn_image_to_token, image_q, queries + tokens, queries
            )
            # residual + Σ_h A_h (V_h W_o,hᵀ + b_o/H), the residual add fused into the product.
            keys = layer.layer_norm4(torch.baddbmm(residual, weights_t.transpose(1, 2), values))
        if keys is None:
            raise RuntimeError("the SAM 2 mask decoder has no two-way blocks")
        return queries, keys

    def _final_attention(
        self,
        queries: torch.Tensor,
        tokens: torch.Tensor,
        keys: torch.Tensor,
        terms: ImageTerms,
    ) -> torch.Tensor:
        """``final_attn_token_to_image`` + ``layer_norm_final_attn`` for some tokens.

        Args:
            queries: ``(n, t, C)`` token states after the last two-way block.
            tokens: ``(n, t, C)`` their positional embeddings (the initial tokens).
            keys: ``(n, L, C)`` image states after the last block.

        Returns:
            ``(n, t, C)``.
        """
        transformer = self.decoder.transformer
        attn = _token_to_image(
            transformer.final_attn_token_to_image, queries + tokens, keys, terms.final_pe
        )
        return transformer.layer_norm_final_attn(queries + attn)

    def _upscale(
        self,
        keys: torch.Tensor,
        mask_token: torch.Tensor,
        chosen: torch.Tensor,
        plan: UpscalePlan,
    ) -> torch.Tensor:
        """Low-res logits of the chosen token only: ``(K, 4h, 4w)``.

        Args:
            keys: ``(K, L, C)`` image tokens after the two-way transformer.
            mask_token: ``(K, C)`` output of each prompt's chosen mask token.
            chosen: ``(K,)`` token per prompt.
            plan: from :meth:`plan`.
        """
        decoder = self.decoder
        k, length, _ = keys.shape
        h = w = self.side
        c4 = plan.norm_weight.shape[0]
        c8 = plan.w2.shape[1] // 4
        # Hypernetwork MLP of each prompt's chosen token only: (K, C/8).
        hyper = torch.empty((k, c8), dtype=keys.dtype, device=keys.device)
        for token in torch.unique(chosen).tolist():
            rows = torch.nonzero(chosen == token).flatten()
            mlp = decoder.output_hypernetworks_mlps[token]
            hyper[rows] = mlp(mask_token[rows]).to(hyper.dtype)
        # Groups bound the 4h·4w·C/8 activations (8 MB per prompt at C = 256).
        group = 16 if keys.device.type == "cpu" else 64
        out: list[torch.Tensor] = []
        for start in range(0, k, group):
            src = keys[start : start + group]
            g = src.shape[0]
            # upscale_conv1 + feat_s1, then LayerNorm over channels and GELU.
            up = torch.baddbmm(plan.s1, src, plan.w1.expand(g, -1, -1))  # (g, L, 4·C/4)
            up = F.layer_norm(
                up.view(g, length * 4, c4), (c4,), plan.norm_weight, plan.norm_bias, plan.eps
            )
            up = torch.ops.aten.gelu_(up)  # exact (erf) GELU, as nn.GELU(); in place
            # upscale_conv2 + feat_s0, GELU.
            up = torch.baddbmm(plan.s0, up, plan.w2.expand(g, -1, -1))  # (g, 4L, 4·C/8)
            up = torch.ops.aten.gelu_(up)
            masks = torch.bmm(up.view(g, length * 16, c8), hyper[start : start + g, :, None])
            # Rows are (y, x, a, b, c, d) → pixel (4y+2a+c, 4x+2b+d).
            masks = masks.view(g, h, w, 2, 2, 2, 2).permute(0, 1, 3, 5, 2, 4, 6)
            out.append(masks.reshape(g, 4 * h, 4 * w).float())
        return torch.cat(out)


# --------------------------------------------------------------------------------------------
# Attention against the image (``Sam2Attention`` maths, re-associated)
# --------------------------------------------------------------------------------------------


def token_to_shared_image(
    attn: Any, q_tokens: torch.Tensor, k_heads: torch.Tensor, v_heads: torch.Tensor
) -> torch.Tensor:
    """Tokens attend to one image shared by all prompts: ``(n, T, C)``.

    ``k_heads`` ``(H, d, L)`` / ``v_heads`` ``(H, L, d)`` are the image's projections
    (computed once per image); the heads are the batch dimension so nothing of size
    ``n × L × C`` is formed.
    """
    heads, dim, scale = attention_heads(attn)
    n, t, _ = q_tokens.shape
    q = (attn.q_proj(q_tokens) * scale).view(n * t, heads, dim).transpose(0, 1)  # (H, nT, d)
    weights = torch.softmax(torch.bmm(q, k_heads), dim=-1)  # (H, nT, L)
    out = torch.bmm(weights, v_heads)  # (H, nT, d)
    return attn.o_proj(out.transpose(0, 1).reshape(n, t, heads * dim))


def heads_last(x: torch.Tensor, attn: Any) -> torch.Tensor:
    """``(L, H·d)`` → ``(H, d, L)`` contiguous."""
    heads, dim, _ = attention_heads(attn)
    return x.view(-1, heads, dim).permute(1, 2, 0).contiguous()


def _folded_logits(
    attn: Any, q: torch.Tensor, image: torch.Tensor, pe_heads: torch.Tensor
) -> torch.Tensor:
    """Scaled logits ``q_h · (W_h (image + pe) + b_h)`` of every head: ``(n, H, T, L)``.

    The projection is folded into the ``T`` tokens (``(q_h W_h) · imageᵀ``: ``L·H·T·C``
    instead of projecting the image, ``L·C·H·d``) and the PE + bias part is shared by all
    prompts, so it costs ``L·H·T·d``.

    Args:
        attn: the attention whose image-side projection ``W`` is used: the key projection
            (token→image) or the query projection (image→token), given as ``weight``.
        q: ``(n, T, H, d)`` scaled token-side projections.
        image: ``(n, L, C)`` per-prompt image tokens (without PE).
        pe_heads: ``(H, d, L)`` ``pe·Wᵀ + b``.
    """
    n, t, heads, dim = q.shape
    length, channels = image.shape[1], image.shape[2]
    weight = attn.weight.view(heads, dim, channels)
    folded = torch.einsum("nthd,hdc->nhtc", q, weight).reshape(n, heads * t, channels)
    # PE part with the heads as the batch (the shared (H, d, L) is not copied per prompt).
    offset = torch.bmm(q.permute(2, 0, 1, 3).reshape(heads, n * t, dim), pe_heads)
    offset = offset.view(heads, n, t, length).transpose(0, 1).reshape(n, heads * t, length)
    return torch.baddbmm(offset, folded, image.transpose(1, 2)).view(n, heads, t, length)


def _token_to_image(
    attn: Any, q_tokens: torch.Tensor, image: torch.Tensor, pe_k: torch.Tensor
) -> torch.Tensor:
    """Tokens attend to per-prompt image tokens (keys = image + PE, values = image).

    Args:
        q_tokens: ``(n, T, C)`` queries (tokens + their PE).
        image: ``(n, L, C)`` image tokens.
        pe_k: ``(H, d, L)`` ``pe·W_kᵀ + b_k``.

    Returns:
        ``(n, T, C)``.
    """
    heads, dim, scale = attention_heads(attn)
    n, t, channels = q_tokens.shape
    q = attn.q_proj(q_tokens).view(n, t, heads, dim) * scale
    logits = _folded_logits(attn.k_proj, q, image, pe_k)  # (n, H, T, L)
    weights = torch.softmax(logits, dim=-1).view(n, heads * t, -1)
    mixed = torch.bmm(weights, image).view(n, heads, t, channels)  # (n, H, T, C)
    # A_h (image W_v,hᵀ + b_v,h) = (A_h image) W_v,hᵀ + b_v,h: rows of A_h sum to 1.
    w_v = attn.v_proj.weight.view(heads, dim, channels)
    out = torch.einsum("nhtc,hdc->nthd", mixed, w_v) + attn.v_proj.bias.view(heads, dim)
    return attn.o_proj(out.reshape(n, t, heads * dim))


def _image_to_token(
    attn: Any,
    image_q: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
    k_tokens: torch.Tensor,
    v_tokens: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Image tokens attend to each prompt's tokens; returns the update's factors.

    Args:
        image_q: the shared image's scaled query heads ``(H, d, L)``, or per-prompt
            ``(image (n, L, C), pe_q (H, d, L))`` (queries = image + PE, projected here).
        k_tokens: ``(n, T, C)`` keys (tokens + PE); v_tokens: ``(n, T, C)`` values.

    Returns:
        ``(weights_t (n, H·T, L), values (n, H·T, C))`` with
        ``update = weights_tᵀ · values``: ``o_proj(concat_h A_h V_h) = Σ_h A_h (V_h W_o,hᵀ +
        b_o / H)`` since each head's weights sum to 1 per pixel.
    """
    heads, dim, scale = attention_heads(attn)
    n, t, _ = k_tokens.shape
    k = attn.k_proj(k_tokens).view(n, t, heads, dim)
    if isinstance(image_q, tuple):
        image, pe_q = image_q
        logits = _folded_logits(attn.q_proj, k * scale, image, pe_q)  # (n, H, T, L)
    else:
        # Heads as the batch: (H, n·T, d)·(H, d, L), the shared queries are not copied.
        length = image_q.shape[-1]
        logits = torch.bmm(k.permute(2, 0, 1, 3).reshape(heads, n * t, dim), image_q)
        logits = logits.view(heads, n, t, length).transpose(0, 1)  # (n, H, T, L) view
    length = logits.shape[-1]
    # The softmax over the T tokens runs along a strided axis with L contiguous values, far
    # faster on CPU than L·H softmaxes of length T.
    weights_t = torch.softmax(logits, dim=2).reshape(n, heads * t, length)
    v = attn.v_proj(v_tokens).view(n, t, heads, dim)
    w_o = attn.o_proj.weight.view(-1, heads, dim)  # (C, H, d)
    values = torch.einsum("nthd,chd->nhtc", v, w_o).reshape(n, heads * t, -1)
    return weights_t, values + attn.o_proj.bias / heads
