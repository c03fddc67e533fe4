"""The order of a review queue: undecided predictions, the most informative first
(docs/method.md §16.3).

A decision teaches the bank most where the pipeline is least sure. Three signals, each in
``[0, 1]`` and each higher when a decision is more informative, are summed with equal weight:

* ``closeness = 1 - |s - t|``: the score ``s`` is near its class threshold ``t`` (0 where the
  class has no threshold);
* ``ambiguity = 1 - margin``, ``margin`` being the detection's cosine to its best class
  prototype minus that to the second best (both clamped at 0, §5.3; 0 with one class, i.e.
  ambiguity 1 for all, which orders nothing);
* ``negative``: its best cosine to a negative of its class or a global negative (the ``n`` of
  :func:`fiftyone_ntt.matching.best_negative_similarity`; 0 without negatives).

Ties keep the input order. Signals that are unknown (no stored feature) count 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["informativeness", "queue_signals", "review_order"]


def _signal(values: np.ndarray | Sequence[float] | None, n: int, name: str) -> np.ndarray:
    if values is None:
        return np.full(n, np.nan)
    out = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(out) != n:
        raise ValueError(f"{len(out)} {name} for {n} predictions")
    return out


def informativeness(
    scores: np.ndarray | Sequence[float],
    thresholds: np.ndarray | Sequence[float] | None = None,
    margins: np.ndarray | Sequence[float] | None = None,
    negative_similarity: np.ndarray | Sequence[float] | None = None,
) -> np.ndarray:
    """``closeness + ambiguity + negative`` of each prediction (module docstring).

    Args:
        scores: ``(n,)`` detection scores ``s``.
        thresholds: ``(n,)`` the threshold of each prediction's class, NaN where none.
        margins: ``(n,)`` best minus second-best class cosine, NaN where unknown.
        negative_similarity: ``(n,)`` best cosine to a negative, NaN where unknown.

    Returns:
        ``(n,)`` float64 in ``[0, 3]``; higher: review sooner.
    """
    s = _signal(scores, len(np.asarray(scores).reshape(-1)), "scores")
    n = len(s)
    t = _signal(thresholds, n, "thresholds")
    closeness = np.where(np.isnan(t), 0.0, 1.0 - np.abs(s - t))
    m = _signal(margins, n, "margins")
    ambiguity = np.where(np.isnan(m), 0.0, 1.0 - m)
    neg = np.nan_to_num(_signal(negative_similarity, n, "negative similarities"), nan=0.0)
    return np.clip(closeness, 0, 1) + np.clip(ambiguity, 0, 1) + np.clip(neg, 0, 1)


def review_order(
    scores: np.ndarray | Sequence[float],
    thresholds: np.ndarray | Sequence[float] | None = None,
    margins: np.ndarray | Sequence[float] | None = None,
    negative_similarity: np.ndarray | Sequence[float] | None = None,
) -> np.ndarray:
    """Indices of the predictions, most informative first (stable: ties keep input order).

    Arguments as :func:`informativeness`.
    """
    value = informativeness(scores, thresholds, margins, negative_similarity)
    return np.argsort(-value, kind="stable")


def queue_signals(
    features: np.ndarray,
    class_ids: np.ndarray,
    prototypes: np.ndarray,
    negatives: np.ndarray | None = None,
    negative_class_ids: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``margins`` and ``negative_similarity`` of predictions from their stored features.

    Args:
        features: ``(n, D)`` L2-normalised pooled features of the predictions.
        class_ids: ``(n,)`` the class each was predicted as.
        prototypes: ``(C, D)`` L2-normalised class prototypes of the bank.
        negatives: ``(N, D)`` L2-normalised negatives, or None.
        negative_class_ids: ``(N,)`` their classes (-1: global).

    Returns:
        ``(margins, negative_similarity)``, ``(n,)`` each.
    """
    # deferred: torch loads only when this runs (the plugin imports this package)
    import torch

    from fiftyone_ntt.matching import best_negative_similarity

    pooled = torch.as_tensor(np.asarray(features, dtype=np.float32))
    protos = torch.as_tensor(np.asarray(prototypes, dtype=np.float32))
    sim = (pooled @ protos.T).clamp(min=0)
    if sim.shape[1] > 1:
        top = torch.topk(sim, k=2, dim=1).values
        margins = (top[:, 0] - top[:, 1]).numpy()
    else:
        margins = np.zeros(len(pooled))
    ids = torch.as_tensor(np.asarray(class_ids, dtype=np.int64))
    if negatives is None or not len(negatives):
        return margins.astype(np.float64), np.zeros(len(pooled))
    neg = torch.as_tensor(np.asarray(negatives, dtype=np.float32))
    neg_ids = torch.as_tensor(np.asarray(negative_class_ids, dtype=np.int64))
    best = best_negative_similarity(pooled, ids, neg, neg_ids).numpy()
    return margins.astype(np.float64), best.astype(np.float64)
