"""The SAM 2 mask decoder without per-prompt image tokens (exact maths, CPU float32 path).

:class:`LowRankMaskDecoder` computes the same function as
:class:`~fiftyone_ntt.models.sam2.decoder.FastMaskDecoder` (and ``transformers``'
``Sam2MaskDecoder``) but never forms an ``(L, C)`` image tensor per prompt. Notation:
``L = 64·64`` pixels, ``C = 256`` channels, ``T = 8`` tokens, ``H = 8`` heads of ``d = 16``,
``K = H·T = 64``.

Why it is exact and cheap. In each two-way block the image tokens get
``x ← LN(x + Aᵀ U)`` with ``A`` ``(K, L)`` softmax weights of the prompt and ``U`` ``(K, C)``
(head ``h``'s rows are ``V_h W_o,hᵀ + b_o/H``). Since the block-1 image ``X0`` is shared, the
image tokens after block ``b`` are, per pixel ``p``,

    keys_b[p] = s[p] · Y_b[p] + coef[:, p]ᵀ · B

with ``Y_b = (X0 − mean) ⊙ γ_1 ⊙ …`` shared by all prompts, a per-pixel scalar ``s`` (the
product of the LayerNorms' ``1/σ``), a per-prompt basis ``B`` (``(K + 2, C)`` after block 1,
``(2K + 4, C)`` after block 2: the ``U`` rows scaled by the LayerNorm weights, ``γ`` and
``β``) and coefficients ``coef`` (the ``A`` rows scaled by ``1/σ``, ``−μ/σ`` and ``1``).
Every product of a per-prompt vector ``r`` with ``keys[p]`` then splits into
``s[p]·(Y_b[p]·r)`` and ``(B r)·coef[:, p]``; ``r`` always lies in a fixed subspace (the
row space of a projection ``W_h``, ``d`` dims per head), so ``Y_b W_hᵀ`` is projected once
per image and the per-prompt cost is ``L·d·T`` per head plus ``L·K·(K+2)`` for the
low-rank part, instead of ``L·C·K`` for a materialised image. The LayerNorm statistics
(per-pixel mean and ``E[x²]``) follow from the same shared projections and quadratic forms
``coefᵀ (B Bᵀ) coef``; they are combined in float64 (``E[x²] − μ²`` cancels).

What stays per kept prompt is the upscaling: ``upscale_conv1`` is a per-pixel linear map,
so ``keys2 · W1 = s·(Y_2 W1) + coefᵀ (B W1)`` (a ``(L, 2K+4)·(2K+4, C)`` product instead of
``(L, C)·(C, C)``), then LayerNorm, GELU, ``upscale_conv2``, GELU and the hypernetwork
product as in :class:`FastMaskDecoder`, run in pixel tiles so the ``(tile, C)``
intermediates stay in the CPU caches.

Only for SAM 2's two-way transformer with two blocks (the first without PE and residual in
its self-attention). The two-way blocks and the statistics run in float32 (half precision
would lose the cancelling statistics); only the upscaling can run in bfloat16
(:mod:`fiftyone_ntt.models.sam2.lowrank_upscale`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from fiftyone_ntt.models.sam2.decoder import (
    FastMaskDecoder,
    ImageTerms,
    UpscalePlan,
    attention_heads,
    heads_last,
    token_to_shared_image,
)
from fiftyone_ntt.models.sam2.lowrank_terms import LowRankKeys, LowRankTerms
from fiftyone_ntt.models.sam2.lowrank_upscale import low_rank_upscale

__all__ = ["LowRankMaskDecoder", "supports_low_rank"]

#: Prompts per two-way pass on CPU: small passes keep the ``(n, K..2K+4, L)`` operands of the
#: elementwise passes in the caches (docs/benchmarks.md, 2026-11-26: 4 → 12.7-13.0 s per 1024
#: prompts on 2 workers, 12 → 13.8-14.8 s).
CPU_CHUNK = 4


def supports_low_rank(decoder: Any) -> bool:
    """Whether ``decoder`` (a ``Sam2MaskDecoder``) has the structure this path assumes."""
    layers = list(decoder.transformer.layers)
    return (
        len(layers) == 2
        and bool(layers[0].skip_first_layer_pe)
        and not bool(layers[1].skip_first_layer_pe)
    )


def _per_head(x: torch.Tensor, heads: int, dim: int) -> torch.Tensor:
    """``(L, H·d)`` → ``(H, L, d)`` contiguous."""
    return x.view(-1, heads, dim).transpose(0, 1).contiguous()


def _by_prompt(x: torch.Tensor, n: int, t: int) -> torch.Tensor:
    """``(H, n·t, L)`` (heads first, from a shared-projection product) → ``(n, H, t, L)`` view."""
    heads, _, length = x.shape
    return x.view(heads, n, t, length).transpose(0, 1)


class LowRankMaskDecoder(FastMaskDecoder):
    """:class:`FastMaskDecoder` whose two-way part, final attention and ``upscale_conv1`` run
    on shared image projections plus rank-``K`` per-prompt terms (module doc).

    Same inputs and outputs as :class:`FastMaskDecoder` (``image_terms``, ``plan``,
    ``decode``); requires :func:`supports_low_rank`.
    """

    def __init__(
        self,
        decoder: Any,
        pe: torch.Tensor,
        side: int,
        chunk: int | None = None,
        workers: int | None = None,
        upscale_dtype: torch.dtype = torch.float32,
    ) -> None:
        """Args as :class:`FastMaskDecoder`; ``chunk``: prompts per pass (default
        :data:`CPU_CHUNK` on CPU, all on other devices); ``workers``: CPU worker threads
        (default ``torch.get_num_threads()``). Results never depend on either.
        ``upscale_dtype``: ``torch.bfloat16`` runs the per-kept-prompt upscaling in
        bfloat16 (the CPU ``bfloat16`` precision; the rest stays float32, so kept prompts
        and IoU are the float32 ones); float32 (default) is exact."""
        if upscale_dtype not in (torch.float32, torch.bfloat16):
            raise ValueError(
                f"upscale_dtype={upscale_dtype!r} is not supported; use torch.float32 or "
                "torch.bfloat16"
            )
        if not supports_low_rank(decoder):
            raise ValueError(
                "LowRankMaskDecoder needs SAM 2's two-block two-way transformer; "
                "use FastMaskDecoder for this decoder"
            )
        super().__init__(decoder, pe, side)
        self.chunk = chunk
        self.workers = workers
        self.upscale_dtype = upscale_dtype

    def decode(
        self,
        terms: ImageTerms,
        sparse: torch.Tensor,
        plan: UpscalePlan,
        threshold: float | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """As :meth:`FastMaskDecoder.decode`, in passes of :attr:`chunk` prompts.

        On CPU with ``torch.get_num_threads() = w > 1`` the passes run on ``w`` worker
        threads with one intra-op thread each (torch releases the GIL inside operations):
        the many mid-sized operations of this path then never wait at an OpenMP barrier for
        a second core, which on a shared machine costs more than the operations themselves.
        The caller's thread count is restored afterwards. Results do not depend on it.
        A caller's autocast is switched off in every pass (it is thread-local, so worker
        threads would not see it anyway): the precision is :attr:`upscale_dtype`.
        """
        n = sparse.shape[0]
        cpu = sparse.device.type == "cpu"
        wanted = self.workers or torch.get_num_threads()
        chunk = self.chunk or n
        if self.chunk is None and cpu and n > CPU_CHUNK:
            # At most CPU_CHUNK prompts per pass, and a multiple of `wanted` passes of
            # near-equal size, so no worker idles at the end of the call.
            passes = wanted * -(-n // (wanted * CPU_CHUNK))
            chunk = -(-n // passes)
        starts = list(range(0, n, chunk))
        workers = min(wanted, len(starts)) if cpu else 1
        parent = super().decode
        inference = torch.is_inference_mode_enabled()
        grad = torch.is_grad_enabled()
        device_type = sparse.device.type

        def run(start: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            # inference/grad mode are thread-local: carry the caller's into the worker.
            with (
                torch.inference_mode(inference),
                torch.set_grad_enabled(grad),
                torch.autocast(device_type, enabled=False),
            ):
                return parent(terms, sparse[start : start + chunk], plan, threshold)

        if len(starts) <= 1:
            return run(0)

        if workers > 1:
            threads = torch.get_num_threads()  # the caller's, restored below

            def work(start: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
                torch.set_num_threads(1)
                return run(start)

            try:
                with ThreadPoolExecutor(workers, thread_name_prefix="sam2-decode") as pool:
                    parts = list(pool.map(work, starts))
            finally:
                torch.set_num_threads(threads)  # also the default of threads started later
        else:
            parts = [run(start) for start in starts]
        keep = torch.cat([part[0] + start for part, start in zip(parts, starts)])
        return keep, torch.cat([part[1] for part in parts]), torch.cat([part[2] for part in parts])

    # ----------------------------------------------------------------------------------------
    # Per-image terms
    # ----------------------------------------------------------------------------------------

    def image_terms(self, image: torch.Tensor) -> LowRankTerms:
        """Shared terms of :class:`FastMaskDecoder` plus the low-rank projections (float32,
        a caller's autocast switched off: the LayerNorm statistics are built on them)."""
        with torch.autocast(image.device.type, enabled=False):
            return self._image_terms(image.float())

    def _image_terms(self, image: torch.Tensor) -> LowRankTerms:
        base = super().image_terms(image)
        transformer = self.decoder.transformer
        first, second = transformer.layers
        final = transformer.final_attn_token_to_image
        heads, dim, _ = attention_heads(first.cross_attn_image_to_token)
        g1, b1 = first.layer_norm4.weight, first.layer_norm4.bias
        g2 = second.layer_norm4.weight
        # LayerNorm ignores a per-pixel constant: centre once so the variances below do not
        # cancel against a large per-pixel mean.
        x0c = image - image.mean(-1, keepdim=True)
        y1 = x0c * g1
        y2 = y1 * g2
        x0g = x0c * (g1 * g1)
        w_o1, b_o1 = (
            first.cross_attn_image_to_token.o_proj.weight,
            (first.cross_attn_image_to_token.o_proj.bias),
        )
        o1 = torch.cat(
            [
                heads_last(x0c @ w_o1, first.cross_attn_image_to_token),
                heads_last(x0g @ w_o1, first.cross_attn_image_to_token),
            ],
            dim=-1,
        )
        x0c64, y164 = x0c.double(), y1.double()
        b_o2 = second.cross_attn_image_to_token.o_proj.bias.double()
        pix = {
            "x0sq": (x0c64 * x0c64).sum(-1),
            "bo1": x0c64 @ b_o1.double(),
            "bo1g": x0g.double() @ b_o1.double(),
            "y1g": x0c64 @ (g1 * g1).double(),
            "y1b": x0c64 @ (g1 * b1).double(),
            "y1sq": (y164 * y164).sum(-1),
            "y1mean": y164.mean(-1),
            "yb2": y164 @ b_o2,
        }
        t2i, i2t = second.cross_attn_token_to_image, second.cross_attn_image_to_token
        return LowRankTerms(
            **{name: getattr(base, name) for name in base.__dataclass_fields__},
            o1=o1.contiguous(),
            pix=pix,
            t2i=torch.cat([heads_last(y1 @ t2i.k_proj.weight.T, t2i), base.pe_k[0]], -1),
            t2i_v=_per_head(y1 @ t2i.v_proj.weight.T, heads, dim),
            i2t=torch.cat([heads_last(y1 @ i2t.q_proj.weight.T, i2t), base.pe_q[0]], -1),
            o2=heads_last(y1 @ i2t.o_proj.weight, i2t),
            fin=torch.cat([heads_last(y2 @ final.k_proj.weight.T, final), base.final_pe], -1),
            fin_v=_per_head(y2 @ final.v_proj.weight.T, heads, dim),
            y2=y2.contiguous(),
        )

    # ----------------------------------------------------------------------------------------
    # Two-way blocks
    # ----------------------------------------------------------------------------------------

    def _two_way(  # type: ignore[override]
        self, tokens: torch.Tensor, terms: ImageTerms
    ) -> tuple[torch.Tensor, Any]:
        if not isinstance(terms, LowRankTerms):
            return super()._two_way(tokens, terms)
        first, second = self.decoder.transformer.layers
        n, t, channels = tokens.shape
        pix = terms.pix

        # ---- Block 1: tokens (as FastMaskDecoder), then the image update's factors.
        queries = first.self_attn(query=tokens[None], key=tokens[None], value=tokens[None])[0][0]
        queries = first.layer_norm1(queries)
        attn = token_to_shared_image(
            first.cross_attn_token_to_image, queries + tokens, terms.first_k, terms.first_v
        )
        queries = first.layer_norm2(queries + attn)
        queries = first.layer_norm3(queries + first.mlp(queries))
        i2t = first.cross_attn_image_to_token
        heads, dim, _ = attention_heads(i2t)
        k_rows = heads * t
        length = terms.first_q.shape[-1]
        k = i2t.k_proj(queries + tokens).view(n, t, heads, dim)
        logits = torch.bmm(k.permute(2, 0, 1, 3).reshape(heads, n * t, dim), terms.first_q)
        a1 = torch.softmax(_by_prompt(logits, n, t), dim=2).reshape(n, k_rows, length)
        v = i2t.v_proj(queries).view(n, t, heads, dim)
        u1 = self._values(i2t, v)  # (n, K, C)
        # cross[k, p] = U1[k]·X0c[p] − X0c[p]·b_o/H, and the same with X0c ⊙ γ1².
        cross = torch.bmm(v.permute(2, 0, 1, 3).reshape(heads, n * t, dim), terms.o1)
        cross = cross.view(heads, n, t, 2, length).permute(3, 1, 0, 2, 4)
        cross1 = cross[0].reshape(n, k_rows, length)
        cross1g = cross[1].reshape(n, k_rows, length)
        # |x1|² = |X0c|² + Σ_k A1 (2 U1·X0c + (U1 U1ᵀ A1)) with x1 = X0c + A1ᵀU1.
        quad = torch.baddbmm(cross1, torch.bmm(u1, u1.transpose(1, 2)), a1, beta=2.0)
        sq1 = (a1 * quad).sum(1).double() + 2.0 * pix["bo1"] + pix["x0sq"]
        mu1 = torch.bmm(u1.mean(-1)[:, None], a1)[:, 0].double()
        ln1 = first.layer_norm4
        s1_64 = torch.rsqrt(sq1 / channels - mu1 * mu1 + ln1.eps)
        s1 = s1_64.float()
        # keys1[p] = s1·Y1[p] + E1[:, p]ᵀ B1, E1 = [s1·A1; −s1·μ1; 1], B1 = [U1⊙γ1; γ1; β1].
        e1 = torch.empty((n, k_rows + 2, length), dtype=tokens.dtype, device=tokens.device)
        torch.mul(a1, s1[:, None], out=e1[:, :k_rows])
        e1[:, k_rows] = (-s1_64 * mu1).float()
        e1[:, k_rows + 1] = 1.0
        g1, b1 = ln1.weight, ln1.bias
        basis1 = torch.cat([u1 * g1, g1.expand(n, 1, channels), b1.expand(n, 1, channels)], dim=1)
        # Y1·z and the mean of keys1 (z = E1ᵀ B1), for block 2's statistics.
        y1z = (a1 * cross1g).sum(1).double() + pix["bo1g"]
        y1z = s1_64 * y1z - s1_64 * mu1 * pix["y1g"] + pix["y1b"]
        mean_k1 = s1_64 * pix["y1mean"] + torch.bmm(basis1.mean(-1)[:, None], e1)[:, 0].double()

        # ---- Block 2: tokens.
        q = queries + tokens
        queries = queries + second.self_attn(query=q[None], key=q[None], value=queries[None])[0][0]
        queries = second.layer_norm1(queries)
        t2i = second.cross_attn_token_to_image
        q = t2i.q_proj(queries + tokens).view(n, t, heads, dim) * attention_heads(t2i)[2]
        rows = torch.einsum(
            "nthd,hdc->nhtc", q, t2i.k_proj.weight.view(heads, dim, channels)
        ).reshape(n, k_rows, channels)
        # One product for the logits' low-rank part and |z|² = E1ᵀ (B1 B1ᵀ) E1.
        low = torch.bmm(torch.bmm(torch.cat([rows, basis1], 1), basis1.transpose(1, 2)), e1)
        shared = torch.bmm(q.permute(2, 0, 1, 3).reshape(heads, n * t, dim), terms.t2i)
        weights = self._combine(low[:, :k_rows], shared, s1, n, t)
        weights = torch.softmax(weights, dim=-1).reshape(n, k_rows, length)
        zsq = (low[:, k_rows:] * e1).sum(1).double()
        attn = self._attend_values(t2i, weights, s1, e1, basis1, terms.t2i_v, n, t)
        queries = second.layer_norm2(queries + attn)
        queries = second.layer_norm3(queries + second.mlp(queries))

        # ---- Block 2: image update.
        i2t = second.cross_attn_image_to_token
        k = i2t.k_proj(queries + tokens).view(n, t, heads, dim) * attention_heads(i2t)[2]
        v = i2t.v_proj(queries).view(n, t, heads, dim)
        u2 = self._values(i2t, v)
        rows = torch.einsum(
            "nthd,hdc->nhtc", k, i2t.q_proj.weight.view(heads, dim, channels)
        ).reshape(n, k_rows, channels)
        low = torch.bmm(torch.bmm(torch.cat([rows, u2], 1), basis1.transpose(1, 2)), e1)
        shared = torch.bmm(k.permute(2, 0, 1, 3).reshape(heads, n * t, dim), terms.i2t)
        logits = self._combine(low[:, :k_rows], shared, s1, n, t)
        a2 = torch.softmax(logits, dim=2).reshape(n, k_rows, length)
        # cross2[k, p] = U2[k]·keys1[p] − s1·Y1[p]·b_o2/H.
        cross2 = low[:, k_rows:]
        o2 = torch.bmm(v.permute(2, 0, 1, 3).reshape(heads, n * t, dim), terms.o2)
        cross2.view(n, heads, t, length).addcmul_(_by_prompt(o2, n, t), s1.view(n, 1, 1, length))
        quad = torch.baddbmm(cross2, torch.bmm(u2, u2.transpose(1, 2)), a2, beta=2.0)
        sq2 = (a2 * quad).sum(1).double() + 2.0 * s1_64 * pix["yb2"]
        sq2 += s1_64 * s1_64 * pix["y1sq"] + 2.0 * s1_64 * y1z + zsq
        mu2 = mean_k1 + torch.bmm(u2.mean(-1)[:, None], a2)[:, 0].double()
        ln2 = second.layer_norm4
        s2_64 = torch.rsqrt(sq2 / channels - mu2 * mu2 + ln2.eps)
        s2 = s2_64.float()
        # keys2 = s1 s2·Y2 + [s2·E1; s2·A2; −s2·μ2; 1]ᵀ [B1⊙γ2; U2⊙γ2; γ2; β2].
        coef = torch.empty((n, 2 * k_rows + 4, length), dtype=tokens.dtype, device=tokens.device)
        torch.mul(e1, s2[:, None], out=coef[:, : k_rows + 2])
        torch.mul(a2, s2[:, None], out=coef[:, k_rows + 2 : 2 * k_rows + 2])
        coef[:, 2 * k_rows + 2] = (-s2_64 * mu2).float()
        coef[:, 2 * k_rows + 3] = 1.0
        g2, b2 = ln2.weight, ln2.bias
        basis = torch.cat(
            [basis1 * g2, u2 * g2, g2.expand(n, 1, channels), b2.expand(n, 1, channels)], dim=1
        )
        return queries, LowRankKeys((s1_64 * s2_64).float(), coef, basis, terms)

    @staticmethod
    def _values(attn: Any, v: torch.Tensor) -> torch.Tensor:
        """``(n, K, C)`` rows ``V_h W_o,hᵀ + b_o/H`` of the image update (heads major)."""
        n, t, heads, dim = v.shape
        w_o = attn.o_proj.weight.view(-1, heads, dim)
        values = torch.einsum("nthd,chd->nhtc", v, w_o).reshape(n, heads * t, -1)
        return values + attn.o_proj.bias / heads

    @staticmethod
    def _combine(
        low: torch.Tensor, shared: torch.Tensor, scale: torch.Tensor, n: int, t: int
    ) -> torch.Tensor:
        """Logits ``low + scale·shared[:L] + shared[L:]`` as ``(n, H, t, L)``, in ``low``.

        Args:
            low: ``(n, H·t, L)`` low-rank part (a view; overwritten).
            shared: ``(H, n·t, 2L)`` products with ``[Y W_hᵀ | pe W_hᵀ + b]``.
            scale: ``(n, L)`` per-pixel scalar of ``Y``.
        """
        heads = shared.shape[0]
        length = low.shape[-1]
        parts = shared.view(heads, n, t, 2, length).transpose(0, 1)
        out = low.view(n, heads, t, length)
        out.addcmul_(parts[:, :, :, 0], scale.view(n, 1, 1, length))
        out.add_(parts[:, :, :, 1])
        return out

    @staticmethod
    def _attend_values(
        attn: Any,
        weights: torch.Tensor,
        scale: torch.Tensor,
        coef: torch.Tensor,
        basis: torch.Tensor,
        y_v: torch.Tensor,
        n: int,
        t: int,
    ) -> torch.Tensor:
        """``o_proj(A_h · v_proj(keys))`` for ``keys[p] = scale[p]·Y[p] + coef[:, p]ᵀ basis``.

        Args:
            weights: ``(n, H·t, L)`` softmax weights (each row sums to 1).
            y_v: ``(H, L, d)`` ``Y W_vᵀ`` (shared).

        Returns:
            ``(n, t, C)``.
        """
        heads, length, dim = y_v.shape
        channels = basis.shape[-1]
        shared = torch.einsum(
            "nhtl,hld->nhtd", (weights * scale[:, None]).view(n, heads, t, length), y_v
        )
        mixed = torch.bmm(torch.bmm(weights, coef.transpose(1, 2)), basis)  # (n, H·t, C)
        w_v = attn.v_proj.weight.view(heads, dim, channels)
        out = shared + torch.einsum("nhtc,hdc->nhtd", mixed.view(n, heads, t, channels), w_v)
        out = out + attn.v_proj.bias.view(heads, 1, dim)
        return attn.o_proj(out.transpose(1, 2).reshape(n, t, heads * dim))

    def _final_attention(  # type: ignore[override]
        self, queries: torch.Tensor, tokens: torch.Tensor, keys: Any, terms: ImageTerms
    ) -> torch.Tensor:
        if not isinstance(keys, LowRankKeys):
            return super()._final_attention(queries, tokens, keys, terms)
        transformer = self.decoder.transformer
        final = transformer.final_attn_token_to_image
        heads, dim, scale = attention_heads(final)
        n, t, channels = queries.shape
        q = final.q_proj(queries + tokens).view(n, t, heads, dim) * scale
        rows = torch.einsum(
            "nthd,hdc->nhtc", q, final.k_proj.weight.view(heads, dim, channels)
        ).reshape(n, heads * t, channels)
        low = torch.bmm(torch.bmm(rows, keys.basis.transpose(1, 2)), keys.coef)
        shared = torch.bmm(q.permute(2, 0, 1, 3).reshape(heads, n * t, dim), keys.terms.fin)
        logits = self._combine(low, shared, keys.scale, n, t)
        weights = torch.softmax(logits, dim=-1).reshape(n, heads * t, -1)
        attn = self._attend_values(
            final, weights, keys.scale, keys.coef, keys.basis, keys.terms.fin_v, n, t
        )
        return transformer.layer_norm_final_attn(queries + attn)

    # ----------------------------------------------------------------------------------------
    # Upscaling
    # ----------------------------------------------------------------------------------------

    def _upscale(  # type: ignore[override]
        self, keys: Any, mask_token: torch.Tensor, chosen: torch.Tensor, plan: UpscalePlan
    ) -> torch.Tensor:
        if not isinstance(keys, LowRankKeys):
            return super()._upscale(keys, mask_token, chosen, plan)
        return low_rank_upscale(
            self.decoder, keys, mask_token, chosen, plan, self.side, self.upscale_dtype
        )
