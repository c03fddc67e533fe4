"""Reliability of thresholds from an evaluation and of saving them (issue 23 §1): an
evaluation of another field, bank or version, a stale one, one with no evaluated prediction,
and bad thresholds are refused, each with a message naming the value and the fix; the bank
is left as it was. One dataset for the whole table (real MongoDB, fake models)."""

from __future__ import annotations

import math

import pytest

pytestmark = pytest.mark.integration

GT = "ground_truth"

#: (case, keyword arguments of class_thresholds_table, words of the message)
BAD_EVALUATIONS = [
    ("unknown key", {"eval_key": "nope"}, "has no evaluation 'nope'"),
    ("not a run's field", {"eval_key": "ev_copy"}, "which no No Time to Train run wrote"),
    ("another bank", {"eval_key": "ev", "bank_key": "reds"}, "segmented with bank 'colours'"),
    (
        "another version",
        {"eval_key": "ev", "version": 1},
        "version 2 of bank 'colours', not version 1",
    ),
    ("no evaluated prediction", {"eval_key": "ev_none"}, "holds no evaluated prediction"),
    ("stale", {"eval_key": "ev"}, "segmented again after evaluation 'ev'"),
]

#: (thresholds, words of the message)
BAD_THRESHOLDS = [
    ({}, "no threshold to save"),
    ({"cat": 0.5}, "thresholds for ['cat'], not classes of bank 'colours'"),
    ({"red": 1.5}, "class_score_thresholds['red']=1.5 must lie in [0, 1]"),
    ({"red": -0.2}, "must lie in [0, 1]"),
    ({"red": math.nan}, "must lie in [0, 1]"),
]


def test_bad_evaluations_and_thresholds_are_refused(painted_dataset):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.config import NTTConfig
    from fiftyone_ntt.fiftyone.banks.index import bank_versions
    from fiftyone_ntt.fiftyone.banks.thresholds import class_thresholds_table, save_thresholds
    from fiftyone_ntt.fiftyone.evaluation.evaluate import evaluate

    dataset = painted_dataset
    config = NTTConfig(points_per_side=16)
    nf.build_bank(dataset, GT, "colours", config=config)
    nf.build_bank(dataset, GT, "reds", classes=["red"], config=config)
    nf.segment(dataset, "colours", "ntt")
    evaluate(dataset, "ntt", "ev", gt_field=GT)
    dataset.clone_sample_field("ntt", "ntt_copy")
    evaluate(dataset, "ntt_copy", "ev_copy", gt_field=GT)
    nf.build_bank(dataset, GT, "colours", config=config)  # version 2
    nf.segment(dataset, "colours", "ntt", overwrite=True)  # with v2, after "ev"
    # samples without predictions (the reference samples are skipped, the last is empty)
    empty = dataset.select(
        [s.id for s in dataset.select_fields("ntt") if not (s.ntt and s.ntt.detections)]
    )
    evaluate(empty, "ntt", "ev_none", gt_field=GT)

    for case, kwargs, words in BAD_EVALUATIONS:
        kwargs = {"bank_key": "colours", **kwargs}
        with pytest.raises(ValueError) as caught:
            class_thresholds_table(
                dataset, kwargs.pop("eval_key"), kwargs.pop("bank_key"), **kwargs
            )
        assert words in str(caught.value), (case, str(caught.value))

    before = bank_versions(dataset, "colours")
    for thresholds, words in BAD_THRESHOLDS:
        with pytest.raises(ValueError) as caught:
            save_thresholds(dataset, "colours", thresholds, source="test")
        assert words in str(caught.value), (thresholds, str(caught.value))
    assert bank_versions(dataset, "colours") == before  # no version was added


def _count_cases() -> dict[str, int]:
    """How many bad-input cases this file covers."""
    return {
        "thresholds: bad evaluations": len(BAD_EVALUATIONS),
        "thresholds: bad thresholds to save": len(BAD_THRESHOLDS),
    }
