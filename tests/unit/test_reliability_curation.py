"""Reliability of per-class thresholds, the reference audit and the review queue (issue 23):
bad settings and mismatched arrays are refused with a message naming the value and the fix;
classes that cannot get a threshold are reported with the reason, never dropped silently."""

from __future__ import annotations

import numpy as np
import pytest

from fiftyone_ntt.config import NTTConfig
from fiftyone_ntt.curation import (
    MatchedDetections,
    audit_references,
    review_order,
    thresholds_from_decisions,
    thresholds_from_matches,
)

pytestmark = pytest.mark.unit

#: (class_score_thresholds, what the message names)
BAD_CONFIG = [
    ([("red", 0.5)], "must be a dict"),
    ("red=0.5", "must be a dict"),
    ({"": 0.5}, "class name ''"),
    ({3: 0.5}, "class name 3"),
    ({"red": True}, "class_score_thresholds['red']=True"),
    ({"red": "high"}, "class_score_thresholds['red']='high'"),
    ({"red": 1.5}, "must lie in [0, 1]"),
    ({"red": -0.1}, "must lie in [0, 1]"),
    ({"red": float("nan")}, "must lie in [0, 1]"),
]


@pytest.mark.parametrize(("value", "named"), BAD_CONFIG, ids=repr)
def test_bad_class_thresholds_are_refused_naming_them(value, named):
    with pytest.raises(ValueError) as caught:
        NTTConfig(class_score_thresholds=value)
    assert named in str(caught.value)


def _matched():
    return {"a": MatchedDetections([0.9, 0.1], [True, False], 1)}


#: (call, what the message names)
BAD_LIBRARY_INPUT = [
    (lambda: MatchedDetections([0.5, 0.4], [True], 1), "2 scores but 1 is_tp"),
    (lambda: MatchedDetections([np.nan], [True], 1), "NaN"),
    (lambda: MatchedDetections([np.inf], [True], 1), "NaN or infinity"),
    (lambda: MatchedDetections([0.5], [True], -1), "num_gt=-1"),
    (lambda: thresholds_from_matches(_matched(), "recall"), "objective='recall'"),
    (lambda: thresholds_from_matches(_matched(), "precision"), "target_precision=None"),
    (lambda: thresholds_from_matches(_matched(), "precision", 0.0), "in (0, 1]"),
    (lambda: thresholds_from_matches(_matched(), "precision", 1.2), "target_precision=1.2"),
    (lambda: thresholds_from_decisions({"a": ([0.5], [True])}, "x"), "objective='x'"),
    (
        lambda: audit_references(
            np.eye(3), [0, 0, 0], ["a", "b", "c"], ["x"], np.eye(4)[:1], [0], [True]
        ),
        "dimension 4, the bank's 3",
    ),
    (
        lambda: audit_references(
            np.eye(3), [0, 0, 0], ["a", "b", "c"], ["x"], np.eye(3)[:2], [0], [True]
        ),
        "2 detection features, 1 class ids",
    ),
    (lambda: review_order([0.5, 0.4], [0.3]), "1 thresholds for 2 predictions"),
    (lambda: review_order([0.5], None, [0.1, 0.2]), "2 margins for 1 predictions"),
]


@pytest.mark.parametrize(("call", "named"), BAD_LIBRARY_INPUT, ids=lambda v: str(v)[:40])
def test_bad_library_input_is_refused_naming_it(call, named):
    with pytest.raises(ValueError) as caught:
        call()
    assert named in str(caught.value)


#: (matched detections, objective, target, the reason's words): per class, never an error
UNTHRESHOLDABLE = [
    (MatchedDetections([], [], 4), "f1", None, "no detections of this class"),
    (MatchedDetections([0.5], [False], 0), "f1", None, "no ground truth of this class"),
    (MatchedDetections([0.5, 0.2], [False, False], 3), "f1", None, "no true positive"),
    (MatchedDetections([0.9, 0.8], [False, True], 1), "precision", 0.95, "no threshold reaches"),
]


@pytest.mark.parametrize(("matched", "objective", "target", "reason"), UNTHRESHOLDABLE)
def test_classes_without_a_threshold_are_reported_with_the_reason(
    matched, objective, target, reason
):
    rows = thresholds_from_matches({"bad": matched, "ok": _matched()["a"]}, objective, target)
    by = {r.class_name: r for r in rows}
    assert by["bad"].threshold is None and reason in by["bad"].reason
    assert by["ok"].threshold == 0.9  # the other class still gets its own


def _count_cases() -> dict[str, int]:
    """How many bad-input cases this file covers."""
    return {
        "curation: bad class_score_thresholds": len(BAD_CONFIG),
        "curation: bad library input": len(BAD_LIBRARY_INPUT),
        "curation: classes without a threshold": len(UNTHRESHOLDABLE),
    }
