"""What :class:`~fiftyone_ntt.models.sam2.lowrank.LowRankMaskDecoder` keeps per image
(:class:`LowRankTerms`, the shared projections) and per batch of prompts (:class:`LowRankKeys`,
the image tokens after the two-way blocks in low-rank form); the maths is in the module doc
of :mod:`fiftyone_ntt.models.sam2.lowrank`."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from fiftyone_ntt.models.sam2.decoder import ImageTerms

__all__ = ["LowRankKeys", "LowRankTerms"]


@dataclass(frozen=True)
class LowRankTerms(ImageTerms):
    """:class:`ImageTerms` plus the shared projections of the low-rank path.

    Attributes (``Y1 = X0c ⊙ γ1``, ``Y2 = X0c ⊙ γ1 ⊙ γ2``, ``X0c`` the image centred per
    pixel; every ``(H, d, ·)`` is a per-head projection without bias):
        o1: ``(H, d, 2L)`` ``[X0c W_o1 | (X0c ⊙ γ1²) W_o1]`` (block 1 ``o_proj``).
        pix: ``(L,)`` float64 vectors: ``x0sq = |X0c|²``, ``bo1 = X0c·b_o1``,
            ``bo1g = (X0c⊙γ1²)·b_o1``, ``y1g = X0c·γ1²``, ``y1b = X0c·(γ1β1)``,
            ``y1sq = |Y1|²``, ``y1mean = mean_c Y1``, ``yb2 = Y1·b_o2``.
        t2i: ``(H, d, 2L)`` ``[Y1 W_k2ᵀ | pe W_k2ᵀ + b_k2]``; ``t2i_v``: ``(H, L, d)`` ``Y1 W_v2ᵀ``.
        i2t: ``(H, d, 2L)`` ``[Y1 W_q2ᵀ | pe W_q2ᵀ + b_q2]``; ``o2``: ``(H, d, L)`` ``Y1 W_o2``.
        fin: ``(H, d, 2L)`` ``[Y2 W_kfᵀ | pe W_kfᵀ + b_kf]``; ``fin_v``: ``(H, L, d)`` ``Y2 W_vfᵀ``.
        y2: ``(L, C)`` ``Y2`` (its ``upscale_conv1`` product is cached in ``cache``).
    """

    o1: torch.Tensor = None  # type: ignore[assignment]
    pix: dict[str, torch.Tensor] = field(default_factory=dict)
    t2i: torch.Tensor = None  # type: ignore[assignment]
    t2i_v: torch.Tensor = None  # type: ignore[assignment]
    i2t: torch.Tensor = None  # type: ignore[assignment]
    o2: torch.Tensor = None  # type: ignore[assignment]
    fin: torch.Tensor = None  # type: ignore[assignment]
    fin_v: torch.Tensor = None  # type: ignore[assignment]
    y2: torch.Tensor = None  # type: ignore[assignment]
    cache: dict[int, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class LowRankKeys:
    """Image tokens after the two-way blocks, ``keys[n, p] = s[n, p]·Y2[p] + coef[n, :, p]ᵀ
    basis[n]``, for ``n`` prompts (see the module doc).

    Attributes:
        scale: ``(n, L)`` ``s = 1/(σ1 σ2)``.
        coef: ``(n, 2K+4, L)``; basis: ``(n, 2K+4, C)``.
        terms: the image's shared terms (``Y2``).
    """

    scale: torch.Tensor
    coef: torch.Tensor
    basis: torch.Tensor
    terms: LowRankTerms

    def index_select(self, dim: int, index: torch.Tensor) -> LowRankKeys:
        """Rows of the kept prompts (``dim`` must be 0), as ``Tensor.index_select``."""
        if dim != 0:
            raise ValueError(f"dim={dim}: only prompts (dim 0) can be selected")
        return LowRankKeys(
            self.scale.index_select(0, index),
            self.coef.index_select(0, index),
            self.basis.index_select(0, index),
            self.terms,
        )
