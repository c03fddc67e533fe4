"""Per-class thresholds, the reference audit and the review queue (issue 23,
docs/method.md §16) on constructed data whose right answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from fiftyone_ntt.curation import (
    MatchedDetections,
    audit_references,
    pr_curve,
    review_order,
    thresholds_from_decisions,
    thresholds_from_matches,
)
from fiftyone_ntt.curation.reference_audit import suggest_replacement
from fiftyone_ntt.curation.review_queue import queue_signals


def _brute_force(scores, is_tp, num_gt, target=None):
    """Every distinct score as threshold, kept = score >= t; the best by F1 (lowest t among
    ties) or the lowest t reaching ``target`` precision."""
    best = None
    for t in sorted(set(scores.tolist())):  # ascending: the first best is the lowest
        kept = scores >= t
        tp = int((kept & is_tp).sum())
        precision = tp / kept.sum()
        f1 = 2 * tp / (kept.sum() + num_gt)
        if target is None:
            if tp and (best is None or f1 > best[1] + 1e-12):
                best = (t, f1, precision)
        elif precision >= target:
            return (t, f1, precision)
    return best


@pytest.mark.parametrize("seed", range(20))
def test_f1_thresholds_equal_a_brute_force_search(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    # coarse scores so that ties occur
    scores = np.round(rng.random(n), 1 if seed % 2 else 3)
    is_tp = rng.random(n) < np.clip(scores, 0.1, 0.9)
    num_gt = int(is_tp.sum() + rng.integers(0, 5))
    if not is_tp.any():
        is_tp[0], num_gt = True, max(num_gt, 1)
    (row,) = thresholds_from_matches({"a": MatchedDetections(scores, is_tp, num_gt)})
    t, f1, precision = _brute_force(scores, is_tp, num_gt)
    assert row.threshold == t and row.f1 == pytest.approx(f1)
    assert row.precision == pytest.approx(precision)
    assert row.kept == int((scores >= t).sum()) and row.total == n


@pytest.mark.parametrize("seed", range(10))
def test_target_precision_threshold_equals_a_brute_force_search(seed):
    rng = np.random.default_rng(100 + seed)
    scores = np.round(rng.random(40), 2)
    is_tp = rng.random(40) < scores
    is_tp[np.argmax(scores)] = True  # the top detection is right: 1.0 is reachable
    (row,) = thresholds_from_matches(
        {"a": MatchedDetections(scores, is_tp, int(is_tp.sum()))}, "precision", 0.8
    )
    t, _, precision = _brute_force(scores, is_tp, int(is_tp.sum()), target=0.8)
    assert row.threshold == t and row.precision == pytest.approx(precision)
    assert row.precision >= 0.8


def test_pr_curve_is_per_distinct_score_descending():
    curve = pr_curve(MatchedDetections([0.9, 0.5, 0.5, 0.1], [True, False, True, False], 4))
    assert curve["thresholds"].tolist() == [0.9, 0.5, 0.1]
    assert curve["kept"].tolist() == [1, 3, 4] and curve["tp"].tolist() == [1, 2, 2]
    assert curve["recall"].tolist() == [0.25, 0.5, 0.5]


def test_classes_without_ground_truth_or_detections_are_reported_with_the_reason():
    rows = thresholds_from_matches(
        {
            "no_gt": MatchedDetections([0.5, 0.4], [False, False], 0),
            "no_dets": MatchedDetections([], [], 3),
            "no_tp": MatchedDetections([0.5], [False], 2),
            "ok": MatchedDetections([0.9, 0.2], [True, False], 1),
        }
    )
    by = {r.class_name: r for r in rows}
    assert by["no_gt"].threshold is None and "no ground truth" in by["no_gt"].reason
    assert by["no_dets"].threshold is None and "no detections" in by["no_dets"].reason
    assert by["no_tp"].threshold is None and "no true positive" in by["no_tp"].reason
    assert by["ok"].threshold == 0.9 and by["ok"].reason == "" and by["ok"].f1 == 1.0


def test_unreachable_precision_names_the_best_one():
    (row,) = thresholds_from_matches(
        {"a": MatchedDetections([0.9, 0.8], [False, True], 1)}, "precision", 0.9
    )
    assert row.threshold is None and "0.9" in row.reason and "0.500" in row.reason


def test_thresholds_from_decisions_warn_below_the_needed_count():
    many = (np.linspace(0.1, 0.9, 12), np.linspace(0.1, 0.9, 12) > 0.5)
    rows = thresholds_from_decisions(
        {"many": many, "few": ([0.8, 0.3], [True, False]), "one_kind": ([0.5] * 12, [True] * 12)}
    )
    by = {r.class_name: r for r in rows}
    assert by["many"].reason == "" and by["many"].threshold == pytest.approx(many[0][6])
    assert by["few"].threshold == 0.8 and "only 2 decision(s), 10 needed" in by["few"].reason
    assert "only accepts or only rejects" in by["one_kind"].reason


def _planted_bank(rng, dim=16):
    """Class 0 ("cat"): three references along e0 and a bad one mostly along e5, where the
    false positives (between e0 and e5) live; its true positives are spread (some half
    along e2: hard ones); class 1 ("dog") along e1. The bad reference pulls the cat
    prototype towards the false positives, above the hard true positives."""
    e = np.eye(dim)

    def noisy(v):
        return v + 0.05 * rng.standard_normal(dim)

    refs = [noisy(e[0]) for _ in range(3)] + [noisy(e[5] + 0.3 * e[0])]
    refs += [noisy(e[1]) for _ in range(2)]
    class_ids = np.array([0, 0, 0, 0, 1, 1])
    ids = ["good1", "good2", "good3", "bad", "dog1", "dog2"]
    tps = [noisy(e[0]) for _ in range(6)] + [noisy(e[0] + 0.8 * e[2]) for _ in range(6)]
    fps = [noisy(e[0] + e[5]) for _ in range(8)]
    dets = np.array(tps + fps)
    return np.array(refs), class_ids, ids, dets, np.array([True] * 12 + [False] * 8)


@pytest.mark.parametrize("seed", range(5))
def test_the_audit_ranks_a_planted_bad_reference_first(seed):
    refs, class_ids, ids, dets, is_tp = _planted_bank(np.random.default_rng(seed))
    rows = audit_references(
        refs, class_ids, ids, ["cat", "dog"], dets, np.zeros(len(dets), int), is_tp
    )
    first = rows[0]
    assert first.reference_id == "bad"
    assert first.nearest_fp == 8 and first.nearest_tp == 0
    assert first.harm > 0 and first.precision_without > first.precision
    goods = [r for r in rows if r.reference_id.startswith("good")]
    assert all(r.harm < first.harm for r in goods)
    dogs = [r for r in rows if r.class_name == "dog"]
    assert all(r.nearest_tp == r.nearest_fp == 0 and r.precision is None for r in dogs)


def test_the_only_reference_of_a_class_has_no_leave_one_out():
    rows = audit_references(
        np.eye(3)[:2], [0, 1], ["a", "b"], ["x", "y"], np.eye(3)[:1], [0], [True], {"x": 0.5}
    )
    by = {r.reference_id: r for r in rows}
    assert by["a"].nearest_tp == 1 and by["a"].precision == 1.0
    assert by["a"].precision_at_threshold == 1.0
    assert by["a"].harm is None and "only reference" in by["a"].note


def test_the_review_queue_puts_a_planted_ambiguous_prediction_first():
    rng = np.random.default_rng(0)
    n = 30
    scores = rng.uniform(0.6, 0.95, n)  # confident: far above the threshold 0.3
    thresholds = np.full(n, 0.3)
    margins = rng.uniform(0.3, 0.6, n)
    negatives = rng.uniform(0.0, 0.2, n)
    planted = 17
    scores[planted], margins[planted], negatives[planted] = 0.31, 0.02, 0.5
    order = review_order(scores, thresholds, margins, negatives)
    assert order[0] == planted and sorted(order.tolist()) == list(range(n))
    # each signal alone moves a prediction up
    assert review_order([0.9, 0.31], [0.3, 0.3])[0] == 1
    assert review_order([0.5, 0.5], None, [0.5, 0.01])[0] == 1
    assert review_order([0.5, 0.5], None, None, [0.1, 0.9])[0] == 1
    assert review_order([0.5, 0.5, 0.5]).tolist() == [0, 1, 2]  # ties: input order


def test_queue_signals_from_features():
    protos = np.eye(3)[:2]
    feats = np.array([[1.0, 0, 0], [0.7071, 0.7071, 0]])
    margins, neg = queue_signals(feats, [0, 0], protos, np.array([[0, 1.0, 0]]), [-1])
    assert margins == pytest.approx([1.0, 0.0], abs=1e-4)
    assert neg == pytest.approx([0.0, 0.7071], abs=1e-4)


def test_the_suggested_replacement_is_the_candidate_that_helps_most():
    rng = np.random.default_rng(3)
    refs, class_ids, ids, dets, is_tp = _planted_bank(rng)
    e = np.eye(refs.shape[1])
    candidates = np.array([e[5] + e[0], e[0] + 0.05 * rng.standard_normal(len(e)), e[1]])
    best, value = suggest_replacement(
        refs, class_ids, 2, ids.index("bad"), candidates, dets, np.zeros(len(dets), int), is_tp
    )
    assert best == 1  # the one along e0, like the good references
    rows = audit_references(
        refs, class_ids, ids, ["cat", "dog"], dets, np.zeros(len(dets), int), is_tp
    )
    assert value >= rows[0].precision_without > rows[0].precision
    assert suggest_replacement(refs, class_ids, 2, 3, candidates[:0], dets, [0] * 20, is_tp) == (
        None,
        None,
    )
