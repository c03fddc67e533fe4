"""Matching proposals to class prototypes, and semantic-aware soft merging (docs/method.md §5).

Everything here is deterministic tensor math with no model calls, tested with hand-made
features.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from fiftyone_ntt.masks import pairwise_intersections

__all__ = [
    "assign_classes",
    "best_negative_similarity",
    "class_threshold_vector",
    "pool_mask_features",
    "soft_merge_decay",
    "suppressed_by_negatives",
]


@functools.lru_cache(maxsize=8)
def _linear_upsample_weights(src: int, dst: int) -> torch.Tensor:
    """``(dst, src)`` matrix of torch's 1-D linear interpolation (align_corners=False).

    Bilinear upsampling is separable, so ``upsample(D) = Wy @ D @ Wx.T`` per channel. The
    weights are obtained by interpolating the identity, so they are exactly torch's.
    """
    eye = torch.eye(src, dtype=torch.float64)[:, None, :]  # (src, 1, src)
    weights = F.interpolate(eye, size=dst, mode="linear", align_corners=False)  # (src, 1, dst)
    return weights[:, 0, :].T.contiguous()  # (dst, src)


def pool_mask_features(features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mean of bilinearly upsampled patch features under each low-res mask (docs/method.md §5).

    The reference upsamples the ``(g, g, D)`` feature grid to the mask size ``(m, m)``
    (bilinear, align_corners=False) and averages the ``m*m x D`` map under each mask. This
    computes the same quantity without materialising the upsampled map: pooling
    ``Wy D Wx^T`` under ``B`` equals applying ``Wy^T B Wx`` (a ``g x g`` weight map) to ``D``.
    Only float rounding differs from the reference.

    Args:
        features: ``(g, g, D)`` float32 patch features (not normalised).
        masks: ``(K, m, m)`` bool low-res masks.

    Returns:
        ``(K, D)`` float32 L2-normalised pooled features; NaN rows for empty masks (0/0, as
        in the reference).
    """
    grid = features.shape[0]
    size = masks.shape[-1]
    if masks.shape[-2] != size or features.shape[1] != grid:
        raise ValueError(
            f"expected square grids, got features {tuple(features.shape)} and masks "
            f"{tuple(masks.shape)}"
        )
    if masks.shape[0] == 0:
        return torch.zeros((0, features.shape[2]), dtype=torch.float32, device=features.device)
    weights = _linear_upsample_weights(grid, size).to(features.device)  # (m, g)
    flat_features = features.reshape(grid * grid, -1).double()
    out = []
    # Chunks bound the float64 copy of the masks (chunk x m x m x 8 bytes).
    for start in range(0, len(masks), _POOL_CHUNK):
        m = masks[start : start + _POOL_CHUNK].double()
        counts = m.sum(dim=(1, 2))  # (k,)
        # (k, g, g) = Wy^T @ B @ Wx, in float64 so that the reorganised sum stays close to
        # the reference's direct one.
        patch_weights = weights.T @ m @ weights
        pooled = patch_weights.reshape(len(m), -1) @ flat_features
        out.append(F.normalize(pooled / counts[:, None], dim=1).float())
    return torch.cat(out)


_POOL_CHUNK = 128


def assign_classes(
    pooled: torch.Tensor, prototypes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine to each class prototype clamped at 0; arg-max class (docs/method.md §5).

    Args:
        pooled: ``(K, D)`` L2-normalised proposal features.
        prototypes: ``(C, D)`` L2-normalised class prototypes.

    Returns:
        ``(class_ids, scores)``: ``(K,)`` int64 and ``(K,)`` float32.
    """
    sim = (pooled @ prototypes.T).clamp(min=0)
    # topk(k=1) as the reference does (cls_num_per_mask = 1), so that ties (e.g. rows clamped
    # to all zeros, whose label still matters for class-wise NMS) resolve identically.
    scores, class_ids = torch.topk(sim, k=1, dim=1)
    return class_ids[:, 0], scores[:, 0]


def suppressed_by_negatives(
    pooled: torch.Tensor,
    class_ids: torch.Tensor,
    scores: torch.Tensor,
    negatives: torch.Tensor,
    negative_class_ids: torch.Tensor,
    margin: float = 0.0,
) -> torch.Tensor:
    """Which proposals a bank's negatives reject (a method extension; see
    :attr:`fiftyone_ntt.config.NTTConfig.negative_margin`).

    A proposal of class ``c`` with class score ``s`` (the output of :func:`assign_classes`:
    the cosine of its L2-normalised pooled feature to the L2-normalised prototype of ``c``,
    clamped at 0) is rejected when ``n >= s + margin`` and ``n > 0``, where ``n`` is the best
    cosine, clamped at 0 like ``s``, of the same pooled feature to the L2-normalised
    negatives of class ``c`` and the global negatives. Both sides are cosines of unit
    vectors of the same encoder, pooled the same way: like is compared with like. Each
    negative counts on its own (negatives are not averaged into a prototype). A proposal
    with no similarity to any negative (``n == 0``) is never rejected here; a proposal
    whose pooled feature is NaN (empty mask) is never rejected either.

    Args:
        pooled: ``(K, D)`` L2-normalised proposal features.
        class_ids: ``(K,)`` int64 assigned classes.
        scores: ``(K,)`` class scores ``s``.
        negatives: ``(N, D)`` L2-normalised negative features.
        negative_class_ids: ``(N,)`` int64 class of each negative, -1 for global.
        margin: ``negative_margin``.

    Returns:
        ``(K,)`` bool, True for the proposals to drop.
    """
    if len(negatives) == 0 or len(pooled) == 0:
        return torch.zeros(len(pooled), dtype=torch.bool, device=pooled.device)
    best = best_negative_similarity(pooled, class_ids, negatives, negative_class_ids)
    return (best > 0) & (best >= scores + margin)


def best_negative_similarity(
    pooled: torch.Tensor,
    class_ids: torch.Tensor,
    negatives: torch.Tensor,
    negative_class_ids: torch.Tensor,
) -> torch.Tensor:
    """The ``n`` of :func:`suppressed_by_negatives`: each proposal's best cosine, clamped at
    0, to the negatives of its class and the global negatives (0 where there is none).

    Args:
        pooled: ``(K, D)`` L2-normalised proposal features.
        class_ids: ``(K,)`` int64 assigned classes.
        negatives: ``(N, D)`` L2-normalised negative features.
        negative_class_ids: ``(N,)`` int64, -1 for global.

    Returns:
        ``(K,)`` float32 in ``[0, 1]``.
    """
    if len(negatives) == 0 or len(pooled) == 0:
        return torch.zeros(len(pooled), dtype=torch.float32, device=pooled.device)
    sim = (pooled @ negatives.T).clamp(min=0)  # (K, N)
    applies = (negative_class_ids[None, :] == class_ids[:, None]) | (
        negative_class_ids[None, :] < 0
    )
    return torch.where(applies, sim, torch.zeros_like(sim)).max(dim=1).values


def soft_merge_decay(
    masks: torch.Tensor,
    pooled: torch.Tensor,
    class_ids: torch.Tensor,
    exponent: float = 0.5,
) -> torch.Tensor:
    """Semantic-aware soft merging factors (docs/method.md §5, "de-duplication").

    Masks are given in rank order (the NMS order: descending SAM IoU). For each mask ``i``,
    over the higher-ranked masks ``j < i`` of the same class:
    ``ios_i = max_j |M_i & M_j| / |M_i| * max(0, q_i . q_j)`` (0 if there is none), and the
    factor is ``(1 - ios_i) ** exponent``.

    Args:
        masks: ``(N, H, W)`` bool full-resolution masks, none empty.
        pooled: ``(N, D)`` L2-normalised features of the masks.
        class_ids: ``(N,)`` int64.
        exponent: 0.5 in the reference (a hard-coded square root).

    Returns:
        ``(N,)`` float32 factors in ``[0, 1]``.
    """
    n = masks.shape[0]
    ios = torch.zeros(n, dtype=torch.float32, device=masks.device)
    for class_id in torch.unique(class_ids).tolist():
        members = (class_ids == class_id).nonzero()[:, 0]  # ascending = rank order
        if len(members) < 2:
            continue
        # float32 like the reference: for nested masks ios is ~0.99999994 and the factor
        # ~2.4e-4, a value that only float32 arithmetic reproduces closely (docs/method.md §11.1).
        inter = pairwise_intersections(masks[members]).float()  # (n_c, n_c), exact counts
        areas = inter.diagonal().clone()
        cos = (pooled[members] @ pooled[members].T).clamp(min=0)
        weighted = inter / areas[:, None] * cos
        # Only higher-ranked masks (j < i) count: strictly lower triangle.
        weighted = torch.tril(weighted, diagonal=-1)
        ios[members] = weighted.max(dim=1).values
    return (1.0 - ios).clamp(min=0).pow(exponent)


def class_threshold_vector(
    class_names: tuple[str, ...] | list[str], thresholds: dict[str, float]
) -> torch.Tensor:
    """Per-class score cuts (:attr:`fiftyone_ntt.config.NTTConfig.class_score_thresholds`) in
    label order: a final detection of class ``c`` is kept when its score is ``>= out[c]``
    (docs/method.md §16.1); a class not named gets 0 (keeps all).

    Returns:
        ``(C,)`` float32.

    Raises:
        ValueError: a threshold names a class the bank does not have.
    """
    unknown = sorted(set(thresholds) - set(class_names))
    if unknown:
        raise ValueError(
            f"class_score_thresholds name {unknown}, not classes of the bank "
            f"{list(class_names)}; choose thresholds for this bank (a bank version saved "
            "with its thresholds), or drop those entries"
        )
    return torch.tensor([float(thresholds.get(n, 0.0)) for n in class_names], dtype=torch.float32)
