"""Which references hurt their class (docs/method.md §16.2).

Everything is recomputed from stored vectors, with no model run: the bank's per-reference
features ``ins_avg`` (§4.1) and the pooled features of judged detections (true or false
positives per an evaluation, or accepted / rejected by a curator). For each reference ``r``
of class ``c``:

* ``nearest_tp`` / ``nearest_fp``: judged detections of class ``c`` whose nearest reference
  of ``c`` (cosine to each reference's L2-normalised vector) is ``r``;
* ``precision`` / ``precision_without``: the *ranked precision* of class ``c`` with the
  bank's prototype ``P_c`` and with the leave-one-out prototype ``P_c^{-r} =
  normalize(mean of the other references of c)`` (§4.2 without ``r``). A detection is scored
  by its cosine to the prototypes (clamped at 0, §5.3); one whose cosine to ``c`` is 0, or
  whose best class is then another, leaves the class. Ranked precision is the mean, over the
  class's true positives, of the precision at the score of each true positive still in the
  class (0 for one that left), tied scores counting together: the average precision of the
  judged detections, which rises when false positives fall below true positives or leave
  the class. With a class threshold, ``precision_at_threshold`` and
  ``precision_at_threshold_without`` are the precision of the detections scoring ``>=`` it.
* ``harm = precision_without - precision``: how much the class gains without ``r``. Rows are
  sorted by harm (highest first), then by ``nearest_fp - nearest_tp``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from fiftyone_ntt.curation.thresholds import MatchedDetections, pr_curve

__all__ = ["ReferenceAuditRow", "audit_references", "ranked_precision", "suggest_replacement"]


@dataclass(frozen=True)
class ReferenceAuditRow:
    """The audit of one reference (see the module docstring); ``note`` says why a value is
    None (e.g. the only reference of its class has no leave-one-out prototype)."""

    reference_id: str
    class_name: str
    nearest_tp: int
    nearest_fp: int
    precision: float | None
    precision_without: float | None
    harm: float | None
    precision_at_threshold: float | None = None
    precision_at_threshold_without: float | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def ranked_precision(scores: np.ndarray, is_tp: np.ndarray, in_class: np.ndarray) -> float | None:
    """Average precision of judged detections ranked by ``scores``.

    ``sum_t (TP(t) - TP(t_prev)) / n_tp * precision(t)`` over the distinct scores ``t``
    (descending) of the detections still in the class (:func:`~fiftyone_ntt.curation.
    thresholds.pr_curve`): tied scores count together (a false positive tied with a true
    positive lowers it), and a true positive that left the class adds nothing.

    Args:
        scores: ``(n,)`` scores.
        is_tp: ``(n,)`` bool.
        in_class: ``(n,)`` bool, False for detections that left the class.

    Returns:
        In ``[0, 1]``; None with no true positive.
    """
    total = int(is_tp.sum())
    if not total:
        return None
    if not in_class.any():
        return 0.0
    curve = pr_curve(MatchedDetections(scores[in_class], is_tp[in_class], total))
    gained = np.diff(curve["tp"], prepend=0)
    return float((gained / total * curve["precision"]).sum())


def _precision_at(scores, is_tp, in_class, threshold) -> float | None:
    kept = in_class & (scores >= threshold)
    return float(is_tp[kept].mean()) if kept.any() else None


def audit_references(
    reference_features: np.ndarray,
    reference_class_ids: np.ndarray,
    reference_ids: Sequence[str],
    class_names: Sequence[str],
    detection_features: np.ndarray,
    detection_class_ids: np.ndarray,
    is_tp: np.ndarray,
    class_thresholds: Mapping[str, float] | None = None,
) -> list[ReferenceAuditRow]:
    """Audit every reference of a bank against judged detections.

    Args:
        reference_features: ``(R, D)`` the bank's per-reference features (not normalised,
            :attr:`fiftyone_ntt.memory_bank.MemoryBank.features`).
        reference_class_ids: ``(R,)`` indices into ``class_names``.
        reference_ids: ``R`` ids.
        class_names: ``C`` classes.
        detection_features: ``(K, D)`` pooled features of the judged detections (any norm).
        detection_class_ids: ``(K,)`` the class each was predicted as.
        is_tp: ``(K,)`` bool: true positive (or accepted) vs false positive (or rejected).
        class_thresholds: optional ``{class: threshold}`` for the precision at threshold.

    Returns:
        One row per reference, most harmful first.
    """
    refs = _unit(reference_features)
    ref_cls = np.asarray(reference_class_ids, dtype=np.int64).reshape(-1)
    dets = _unit(detection_features) if len(detection_features) else np.zeros((0, refs.shape[1]))
    det_cls = np.asarray(detection_class_ids, dtype=np.int64).reshape(-1)
    is_tp = np.asarray(is_tp, dtype=bool).reshape(-1)
    if not (len(dets) == len(det_cls) == len(is_tp)):
        raise ValueError(
            f"{len(dets)} detection features, {len(det_cls)} class ids, {len(is_tp)} flags"
        )
    if len(refs) != len(ref_cls) or len(refs) != len(reference_ids):
        raise ValueError(f"{len(refs)} reference features but {len(ref_cls)} class ids")
    if dets.shape[1] != refs.shape[1]:
        raise ValueError(
            f"detection features have dimension {dets.shape[1]}, the bank's {refs.shape[1]}: "
            "they come from another encoder; segment again with this bank"
        )
    thresholds = dict(class_thresholds or {})
    raw = np.asarray(reference_features, dtype=np.float64)
    num = len(class_names)
    sums = np.zeros((num, raw.shape[1]))
    np.add.at(sums, ref_cls, raw)
    counts = np.bincount(ref_cls, minlength=num)
    prototypes = _unit(sums / np.maximum(counts, 1)[:, None])
    sim = np.clip(dets @ prototypes.T, 0, None)  # (K, C)
    ref_sim = dets @ refs.T  # (K, R)

    rows = []
    for r, ref_id in enumerate(reference_ids):
        c = int(ref_cls[r])
        name = str(class_names[c])
        members = det_cls == c
        same = np.flatnonzero(ref_cls == c)
        nearest = same[np.argmax(ref_sim[np.ix_(members, same)], axis=1)] if members.any() else []
        mine = np.asarray(nearest) == r
        n_tp = int((mine & is_tp[members]).sum())
        n_fp = int((mine & ~is_tp[members]).sum())
        scores, tp = sim[members, c], is_tp[members]
        in_class = np.ones(len(scores), dtype=bool)  # the pipeline assigned them to c
        base = ranked_precision(scores, tp, in_class)
        t = thresholds.get(name)
        at = _precision_at(scores, tp, in_class, t) if t is not None else None
        if counts[c] < 2:
            note = "the only reference of its class: no leave-one-out prototype"
            rows.append(
                ReferenceAuditRow(ref_id, name, n_tp, n_fp, base, None, None, at, note=note)
            )
            continue
        loo = _unit(((sums[c] - raw[r]) / (counts[c] - 1))[None])[0]
        loo_sim = sim[members].copy()
        loo_sim[:, c] = np.clip(dets[members] @ loo, 0, None)
        # it stays while its cosine to c is positive and no other class beats it
        stays = (loo_sim[:, c] > 0) & (loo_sim[:, c] >= loo_sim.max(axis=1, initial=0.0))
        without = ranked_precision(loo_sim[:, c], tp, stays)
        at_without = _precision_at(loo_sim[:, c], tp, stays, t) if t is not None else None
        harm = None if base is None or without is None else without - base
        note = "" if base is not None else "no true positive of its class: precision undefined"
        rows.append(
            ReferenceAuditRow(ref_id, name, n_tp, n_fp, base, without, harm, at, at_without, note)
        )

    def key(item: tuple[int, ReferenceAuditRow]) -> tuple:
        i, row = item
        harm = row.harm if row.harm is not None else -np.inf
        return (-harm, -(row.nearest_fp - row.nearest_tp), i)

    return [row for _, row in sorted(enumerate(rows), key=key)]


def suggest_replacement(
    reference_features: np.ndarray,
    reference_class_ids: np.ndarray,
    num_classes: int,
    reference_index: int,
    candidate_features: np.ndarray,
    detection_features: np.ndarray,
    detection_class_ids: np.ndarray,
    is_tp: np.ndarray,
) -> tuple[int | None, float | None]:
    """The candidate that would help most in place of reference ``reference_index``.

    For each candidate vector (e.g. accepted or true-positive predictions of the reference's
    class ``c``), the prototype of ``c`` becomes ``normalize(mean of the other references of c
    and the candidate)`` and the ranked precision of ``c``'s judged detections is recomputed
    as in :func:`audit_references`.

    Args:
        reference_features: ``(R, D)`` bank features (not normalised).
        reference_class_ids: ``(R,)``.
        num_classes: ``C``.
        reference_index: the reference to replace.
        candidate_features: ``(M, D)`` candidate vectors (any norm), of class ``c``.
        detection_features, detection_class_ids, is_tp: the judged detections.

    Returns:
        ``(index of the best candidate, its ranked precision)``; ``(None, None)`` with no
        candidate or no true positive of ``c``. Ties keep the first candidate.
    """
    raw = np.asarray(reference_features, dtype=np.float64)
    ref_cls = np.asarray(reference_class_ids, dtype=np.int64).reshape(-1)
    c = int(ref_cls[reference_index])
    det_cls = np.asarray(detection_class_ids, dtype=np.int64).reshape(-1)
    members = det_cls == c
    tp = np.asarray(is_tp, dtype=bool).reshape(-1)[members]
    if not len(candidate_features) or not tp.any():
        return None, None
    dets = _unit(np.asarray(detection_features)[members])
    sums = np.zeros((num_classes, raw.shape[1]))
    np.add.at(sums, ref_cls, raw)
    counts = np.bincount(ref_cls, minlength=num_classes)
    sim = np.clip(dets @ _unit(sums / np.maximum(counts, 1)[:, None]).T, 0, None)
    best, best_value = None, None
    for m, candidate in enumerate(np.asarray(candidate_features, dtype=np.float64)):
        # a candidate stands in like a reference: its vector at the bank features' scale
        scale = np.linalg.norm(raw[reference_index]) / max(np.linalg.norm(candidate), 1e-12)
        proto = _unit(((sums[c] - raw[reference_index] + candidate * scale) / counts[c])[None])[0]
        scores = sim.copy()
        scores[:, c] = np.clip(dets @ proto, 0, None)
        stays = (scores[:, c] > 0) & (scores[:, c] >= scores.max(axis=1, initial=0.0))
        value = ranked_precision(scores[:, c], tp, stays)
        if value is not None and (best_value is None or value > best_value):
            best, best_value = m, value
    return best, best_value
