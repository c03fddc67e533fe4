"""Per-class score thresholds from matched detections (docs/method.md §16.1).

A detection is *kept* at threshold ``t`` when its score is ``>= t`` (the rule of
:attr:`fiftyone_ntt.config.NTTConfig.class_score_thresholds`). For one class with ``G``
ground-truth instances and detections matched to them (``is_tp``), keeping those scoring
``>= t`` gives ``TP(t)``, ``kept(t)``, precision ``TP / kept``, recall ``TP / G`` and
``F1 = 2 TP / (kept + G)``. Only the distinct detection scores are candidate thresholds (any
other ``t`` keeps the same set as the next score above it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

__all__ = [
    "MIN_DECISIONS_PER_CLASS",
    "ClassThreshold",
    "MatchedDetections",
    "pr_curve",
    "thresholds_from_decisions",
    "thresholds_from_matches",
]

Objective = Literal["f1", "precision"]

#: Decisions (accepts + rejects) a class needs before thresholds from decisions are trusted:
#: the standard error of a precision estimated from ``n`` decisions is at most
#: ``0.5 / sqrt(n)``, 0.16 at 10; and at least one accept and one reject, or there is no
#: boundary to place.
MIN_DECISIONS_PER_CLASS = 10


@dataclass(frozen=True)
class MatchedDetections:
    """The detections of one class, judged.

    Attributes:
        scores: ``(n,)`` float detection scores (confidences, in ``[0, 1]``).
        is_tp: ``(n,)`` bool, True where the detection matched a ground-truth instance (or
            was accepted).
        num_gt: ground-truth instances of the class (for decisions: the accepted ones).
    """

    scores: np.ndarray
    is_tp: np.ndarray
    num_gt: int

    def __post_init__(self) -> None:
        scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        is_tp = np.asarray(self.is_tp, dtype=bool).reshape(-1)
        if len(scores) != len(is_tp):
            raise ValueError(f"{len(scores)} scores but {len(is_tp)} is_tp flags")
        if not np.isfinite(scores).all():
            raise ValueError("detection scores contain NaN or infinity")
        if int(self.num_gt) < 0:
            raise ValueError(f"num_gt={self.num_gt!r} must be >= 0")
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "is_tp", is_tp)
        object.__setattr__(self, "num_gt", int(self.num_gt))


@dataclass(frozen=True)
class ClassThreshold:
    """One row of the thresholds table.

    ``threshold`` is None when none is chosen; ``reason`` then says why (and may also hold a
    warning next to a chosen threshold). ``precision``/``recall``/``f1`` are at the chosen
    threshold (None where undefined); ``kept`` of ``total`` detections pass it.
    """

    class_name: str
    threshold: float | None
    precision: float | None
    recall: float | None
    f1: float | None
    kept: int
    total: int
    num_gt: int
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pr_curve(matched: MatchedDetections) -> dict[str, np.ndarray]:
    """Precision, recall and F1 at every distinct score, highest first.

    Returns:
        ``thresholds``, ``precision``, ``recall`` (NaN when ``num_gt`` is 0), ``f1``,
        ``kept`` and ``tp``: ``(m,)`` arrays, one entry per distinct score ``t`` (keeping the
        detections scoring ``>= t``), in descending ``t``.
    """
    order = np.argsort(-matched.scores, kind="stable")
    scores = matched.scores[order]
    tp = np.cumsum(matched.is_tp[order])
    kept = np.arange(1, len(scores) + 1)
    # the last index of each run of equal scores: everything >= that score is kept
    last = np.flatnonzero(np.append(scores[1:] != scores[:-1], True))
    tp, kept = tp[last], kept[last]
    precision = tp / kept
    g = matched.num_gt
    recall = tp / g if g else np.full(len(tp), np.nan)
    f1 = 2 * tp / (kept + g)
    return {
        "thresholds": scores[last],
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "kept": kept,
        "tp": tp,
    }


def _row(name: str, m: MatchedDetections, curve: dict[str, np.ndarray], i: int | None, reason=""):
    n = len(m.scores)
    if i is None:
        return ClassThreshold(name, None, None, None, None, n, n, m.num_gt, reason)
    recall = float(curve["recall"][i]) if m.num_gt else None
    return ClassThreshold(
        class_name=name,
        threshold=float(curve["thresholds"][i]),
        precision=float(curve["precision"][i]),
        recall=recall,
        f1=float(curve["f1"][i]),
        kept=int(curve["kept"][i]),
        total=len(m.scores),
        num_gt=m.num_gt,
        reason=reason,
    )


def choose_threshold(
    name: str,
    matched: MatchedDetections,
    objective: Objective = "f1",
    target_precision: float | None = None,
) -> ClassThreshold:
    """The threshold of one class (see :func:`thresholds_from_matches`)."""
    if not len(matched.scores):
        return _row(name, matched, {}, None, "no detections of this class: nothing to cut")
    if matched.num_gt == 0:
        return _row(
            name,
            matched,
            {},
            None,
            f"no ground truth of this class: all {len(matched.scores)} detection(s) are "
            "false positives and precision/recall are undefined; add ground truth of it, or "
            "leave the class without threshold",
        )
    curve = pr_curve(matched)
    if not curve["tp"][-1]:
        return _row(name, matched, curve, None, "no true positive among the detections")
    if objective == "f1":
        # the lowest threshold among equal best F1 (the most recall)
        best = np.flatnonzero(curve["f1"] == curve["f1"].max())
        return _row(name, matched, curve, int(best[-1]))
    reach = np.flatnonzero(curve["precision"] >= target_precision)
    if not len(reach):
        return _row(
            name,
            matched,
            curve,
            None,
            f"no threshold reaches precision {target_precision:g} (best "
            f"{curve['precision'].max():.3f}); lower the target",
        )
    return _row(name, matched, curve, int(reach[-1]))


def _check_objective(objective: str, target_precision: float | None) -> None:
    if objective not in ("f1", "precision"):
        raise ValueError(f"objective={objective!r}; use 'f1' or 'precision'")
    if objective == "precision" and (
        target_precision is None or not 0.0 < float(target_precision) <= 1.0
    ):
        raise ValueError(
            f"target_precision={target_precision!r} must lie in (0, 1] with "
            "objective='precision', e.g. 0.9"
        )


def thresholds_from_matches(
    matches: Mapping[str, MatchedDetections],
    objective: Objective = "f1",
    target_precision: float | None = None,
) -> list[ClassThreshold]:
    """One threshold per class from detections matched to ground truth.

    Args:
        matches: ``{class name: MatchedDetections}``; a class with ground truth but no
            detection, or detections but no ground truth, gets a row with the reason.
        objective: ``"f1"``: the threshold maximising F1 (the lowest of equal F1, i.e. the
            most recall); ``"precision"``: the lowest threshold whose precision is
            ``>= target_precision`` (the most recall at that precision).
        target_precision: in ``(0, 1]``, for ``objective="precision"``.

    Returns:
        Rows in the order of ``matches``.
    """
    _check_objective(objective, target_precision)
    return [choose_threshold(n, m, objective, target_precision) for n, m in matches.items()]


def thresholds_from_decisions(
    decisions: Mapping[str, tuple[Sequence[float], Sequence[bool]]],
    objective: Objective = "f1",
    target_precision: float | None = None,
    min_decisions: int = MIN_DECISIONS_PER_CLASS,
) -> list[ClassThreshold]:
    """Thresholds from a curator's accept/reject decisions (no ground truth).

    An accepted prediction counts as a true positive, a rejected one as a false positive, and
    the accepted ones stand for the ground truth (recall is over the accepted decisions).
    Classes with fewer than ``min_decisions`` decisions, or without an accept or without a
    reject, still get a threshold where one exists, with a warning in ``reason``.

    Args:
        decisions: ``{class name: (scores, accepted)}``.
        objective, target_precision: as :func:`thresholds_from_matches`.
        min_decisions: decisions per class below which a row is warned about.
    """
    _check_objective(objective, target_precision)
    rows = []
    for name, (scores, accepted) in decisions.items():
        accepted = np.asarray(accepted, dtype=bool)
        matched = MatchedDetections(np.asarray(scores), accepted, int(accepted.sum()))
        row = choose_threshold(name, matched, objective, target_precision)
        n, accepts = len(accepted), int(accepted.sum())
        warning = ""
        if n < min_decisions:
            warning = (
                f"only {n} decision(s), {min_decisions} needed per class: accept or reject "
                f"{min_decisions - n} more prediction(s) of this class"
            )
        elif accepts == 0 or accepts == n:
            warning = "only accepts or only rejects: decide on both kinds for a boundary"
        if warning:
            reason = f"{row.reason}; {warning}" if row.reason else warning
            row = ClassThreshold(**{**row.to_dict(), "reason": reason})
        rows.append(row)
    return rows
