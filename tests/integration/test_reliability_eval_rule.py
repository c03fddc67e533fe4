"""Reliability of evaluation's reference rule (issue 20 items 2 and 7), table-driven.

A sample is a reference sample (left out of evaluation, skipped by segment) only if its
ground-truth field holds a reference. Each case prepares a copy of a painted dataset with
predictions and evaluates a view of it; the evaluated samples, the left-out ones (named in the
message, with the reason), the message (never "mAP -1") and the Results patches are checked.
Bad views (empty, or only reference samples) are refused with the value and the fix.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

GT = "ground_truth"
PRED = "ntt_predictions"
NEGATIVE = 7  # the background-only sample (empty ground truth)


@pytest.fixture(scope="module")
def base(fo_session, tmp_path_factory):
    """A painted dataset, bank ``colours`` from its ground-truth references (samples 0 and
    1), predictions ``PRED`` on every sample."""
    import uuid

    from ntt_painted import fill_painted_dataset

    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.config import NTTConfig

    folder = tmp_path_factory.mktemp("eval_rule")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FIFTYONE_NTT_TEST_MODELS", "fake")
        patch.setenv("FIFTYONE_NTT_BANKS_DIR", str(folder / "banks"))
        dataset = fill_painted_dataset(
            fo_session.Dataset(f"ntt-eval-rule-{uuid.uuid4().hex[:8]}"), folder
        )
        nf.build_bank(dataset, GT, "colours", config=NTTConfig(points_per_side=16))
        nf.segment(dataset, "colours", PRED, skip_references=False)
        yield dataset
    dataset.delete()


@pytest.fixture
def dataset(base):
    copy = base.clone()
    yield copy
    copy.delete()


def _pred_ids(dataset, position):
    return dataset.values(f"{PRED}.detections.id")[position] or []


# --------------------------------------------------------------------- the table
# Each maker prepares ``dataset`` and returns (collection, evaluate kwargs, evaluated
# positions, left-out positions, words of the message).


def _accepted_prediction_in_curated(dataset):
    """An accepted prediction copied to ntt_curated on a target image: still evaluated."""
    import fiftyone as fo

    sample = dataset.skip(2).first()
    det = sample[PRED].detections[0].copy()
    det.tags = ["ntt:ref"]
    sample["ntt_curated"] = fo.Detections(detections=[det])
    sample.save()
    return dataset, {}, set(range(2, 8)), {0, 1}, ["left out 2 reference sample(s)"]


def _accepted_prediction_in_evaluated_field(dataset):
    import fiftyone_ntt.fiftyone as nf

    nf.accept_predictions(dataset, PRED, _pred_ids(dataset, 3)[:1])
    return dataset, {}, set(range(2, 8)), {0, 1}, ["left out 2 reference sample(s)"]


def _ground_truth_reference_image(dataset):
    """A target image whose ground truth gets a reference: it becomes a reference sample."""
    ids = dataset.values(f"{GT}.detections.id")[4][:1]
    dataset.select_labels(ids=ids, fields=GT).tag_labels("ntt:ref", label_fields=[GT])
    names = [Path(p).name for p in dataset.values("filepath")]
    return (
        dataset,
        {},
        {2, 3, 5, 6, 7},
        {0, 1, 4},
        ["left out 3 reference sample(s)", names[4], "'ground_truth'"],
    )


def _negative_only(dataset):
    """A rejected prediction (ntt:neg) makes nothing a reference sample."""
    import fiftyone_ntt.fiftyone as nf

    nf.reject_predictions(dataset, PRED, _pred_ids(dataset, 5)[:1])
    return dataset, {}, set(range(2, 8)), {0, 1}, ["left out 2 reference sample(s)"]


def _no_ground_truth_in_view(dataset):
    view = dataset.skip(NEGATIVE).limit(1)
    return view, {}, {NEGATIVE}, set(), ["no ground truth in the evaluated samples"]


def _references_not_excluded(dataset):
    return dataset, {"exclude_references": False}, set(range(8)), set(), ["mAP"]


def _custom_reference_tag(dataset):
    ids = dataset.values(f"{GT}.detections.id")[6][:1]
    dataset.select_labels(ids=ids, fields=GT).tag_labels("mine", label_fields=[GT])
    return dataset, {"reference_tag": "mine"}, set(range(6)) | {7}, {6}, ["left out 1"]


def _reference_only_in_other_view_sample(dataset):
    """The view holds no reference sample: nothing left out, nothing said about it."""
    view = dataset.skip(2)
    return view, {}, set(range(2, 8)), set(), ["mAP"]


EVALUATED_CASES = {
    "accepted prediction in ntt_curated on a GT image": _accepted_prediction_in_curated,
    "accepted prediction in the evaluated field": _accepted_prediction_in_evaluated_field,
    "ground-truth reference on a target image": _ground_truth_reference_image,
    "negative (rejected prediction) only": _negative_only,
    "no ground truth in the view": _no_ground_truth_in_view,
    "references not excluded": _references_not_excluded,
    "custom reference tag": _custom_reference_tag,
    "view without reference samples": _reference_only_in_other_view_sample,
}


@pytest.mark.parametrize("case", sorted(EVALUATED_CASES))
def test_evaluated_and_left_out_samples(dataset, case):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.app.run_actions import open_evaluation

    collection, kwargs, evaluated, left_out, words = EVALUATED_CASES[case](dataset)
    ids = dataset.values("id")
    kwargs = {"exclude_references": True, "gt_field": GT, **kwargs}
    summary = nf.evaluate(collection, PRED, "ev", **kwargs)

    assert set(dataset.load_evaluation_view("ev").values("id")) == {ids[i] for i in evaluated}
    assert summary["num_samples"] == len(evaluated)
    assert sorted(s["id"] for s in summary["left_out"]) == sorted(ids[i] for i in left_out)
    message = summary["message"]
    for word in words:
        assert word in message, (word, message)
    assert "-1" not in message, message
    assert (summary["mAP"] is None) == ("no ground truth" in message)
    if not left_out:
        assert "left out" not in message, message

    patches = open_evaluation(dataset, {"evaluation": "ev", "field": PRED}).view
    assert set(patches.values("sample_id")) <= {ids[i] for i in evaluated}
    assert set(patches.values("type")) <= {"tp", "fp", "fn"}
    assert len(patches) == summary["tp"] + summary["fp"] + summary["fn"]


# ---------------------------------------------------------------- refused views


def _empty_view(dataset):
    return dataset.limit(0), ["empty", "choose"]


def _only_reference_samples(dataset):
    names = [Path(p).name for p in dataset.values("filepath")]
    return dataset.limit(2), ["reference sample", names[0], names[1], "exclude_references"]


REFUSED_CASES = {
    "empty view": _empty_view,
    "only reference samples in the view": _only_reference_samples,
}


@pytest.mark.parametrize("case", sorted(REFUSED_CASES))
def test_views_with_nothing_to_evaluate_are_refused(dataset, case):
    import fiftyone_ntt.fiftyone as nf

    collection, words = REFUSED_CASES[case](dataset)
    with pytest.raises(ValueError) as error:
        nf.evaluate(collection, PRED, "ev", gt_field=GT, exclude_references=True)
    for word in words:
        assert word in str(error.value), (word, str(error.value))
    assert "ev" not in dataset.list_evaluations()


# ---------------------------------------------------------------- segment: the same rule


def test_segment_skips_only_ground_truth_reference_samples(dataset, monkeypatch, tmp_path):
    """Bank v2 with an accepted prediction on sample 2: the form's count and the run skip
    samples 0 and 1 only, exactly those evaluation leaves out."""
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.config import NTTConfig
    from fiftyone_ntt.fiftyone.app.preflight import segment_counts

    monkeypatch.setenv("FIFTYONE_NTT_TEST_MODELS", "fake")
    monkeypatch.setenv("FIFTYONE_NTT_BANKS_DIR", str(tmp_path / "banks"))
    nf.accept_predictions(dataset, PRED, _pred_ids(dataset, 2)[:1])
    nf.build_bank(dataset, GT, "both", config=NTTConfig(points_per_side=16))
    ids = dataset.values("id")
    counts = segment_counts(dataset, "both")
    assert (counts["references"], counts["to_segment"]) == (2, 6)
    nf.segment(dataset, "both", "next_run", points_per_side=16)
    assert set(dataset.exists("next_run").values("id")) == set(ids[2:])
    summary = nf.evaluate(dataset, "next_run", "ev_next", exclude_references=True)
    assert sorted(s["id"] for s in summary["left_out"]) == sorted(ids[:2])


def _count_cases() -> dict[str, int]:
    """How many cases this file covers (reported in the issue)."""
    return {
        "evaluation: which samples are evaluated / left out": len(EVALUATED_CASES),
        "evaluation: views with nothing to evaluate refused": len(REFUSED_CASES),
        "segment skips the samples evaluation leaves out": 1,
    }


if __name__ == "__main__":
    print(json.dumps(_count_cases()))
