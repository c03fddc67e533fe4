"""Reliability of the curation loop (issue 11): accept / reject / untag, builds from
several fields with negatives, bank versions and previews, given bad input.

Each refused case must raise a ValueError whose message names the value and the fix, and
change nothing: the ground truth, the predictions, tags, unrelated fields and the bank index
are hashed before and after. The other cases are handled without error and say what they
did (a reported skip, a run that finishes on the bank it loaded).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.integration

GT = "ground_truth"
PRED = "ntt_predictions"


def _fast():
    from fiftyone_ntt.config import NTTConfig

    return NTTConfig(points_per_side=16)


@pytest.fixture
def loop_dataset(painted_dataset):
    """Painted dataset, bank ``colours`` (v1), predictions in ``PRED``, a ``notes`` field."""
    import fiftyone as fo

    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    dataset.add_sample_field("notes", fo.StringField)
    dataset.set_values("notes", [f"n{i}" for i in range(len(dataset))])
    nf.build_bank(dataset, GT, "colours", config=_fast())
    nf.segment(dataset, "colours", PRED, skip_references=False)
    return dataset


def _protected(dataset):
    """Hashes of every stored sample field (ground truth, predictions and their tags,
    unrelated fields) and the bank index."""
    import hashlib

    import bson

    import fiftyone_ntt.fiftyone as nf

    digest = hashlib.sha256()
    for doc in dataset._sample_collection.find({}).sort("_id", 1):
        doc.pop("last_modified_at", None)
        digest.update(bson.encode(doc))
    banks = [(b["key"], b["version"], b["fingerprint"]) for b in nf.list_banks(dataset)]
    return digest.hexdigest(), banks


def _pred_ids(dataset, field=PRED):
    return [i for ids in dataset.values(f"{field}.detections.id") for i in ids or []]


def _gt_ids(dataset):
    return [i for ids in dataset.values(f"{GT}.detections.id") for i in ids or []]


# ---------------------------------------------------------------- refused (nothing changes)
# Each maker prepares the dataset and returns (call, words): ``call()`` must raise a
# ValueError containing every word.


def _accept_without_masks(dataset, other):
    import fiftyone_ntt.fiftyone as nf

    _copy_without_masks(dataset)
    ids = _pred_ids(dataset, "boxes")[:2]
    return lambda: nf.accept_predictions(dataset, "boxes", ids), [
        "'boxes'",
        "no instance mask",
        "predictions with masks",
    ]


def _reject_without_masks(dataset, other):
    import fiftyone_ntt.fiftyone as nf

    _copy_without_masks(dataset)
    return lambda: nf.reject_predictions(dataset, "boxes"), ["'boxes'", "no instance mask"]


def _copy_without_masks(dataset):
    """A prediction field ``boxes``: the predictions without their masks (a box detector)."""
    import fiftyone as fo

    values = []
    for dets in dataset.values(PRED):
        values.append(
            fo.Detections(
                detections=[
                    fo.Detection(
                        label=d.label, bounding_box=d.bounding_box, confidence=d.confidence
                    )
                    for d in (dets.detections if dets else [])
                ]
            )
        )
    dataset.set_values("boxes", values)


def _labels_of_another_dataset(dataset, other):
    import fiftyone_ntt.fiftyone as nf

    foreign = _pred_ids(other)[:1]
    return lambda: nf.accept_predictions(dataset, PRED, foreign), [
        foreign[0],
        "not labels of field",
        repr(dataset.name),
        "select labels of this dataset",
    ]


def _reject_in_classification_field(dataset, other):
    import fiftyone as fo

    import fiftyone_ntt.fiftyone as nf

    sample = dataset.first()
    sample["weather"] = fo.Classification(label="sunny", confidence=0.9)
    sample.save()
    return lambda: nf.reject_predictions(dataset, "weather"), [
        "'weather'",
        "Classification",
        "not Detections",
        PRED,
    ]


def _accept_in_unknown_field(dataset, other):
    import fiftyone_ntt.fiftyone as nf

    return lambda: nf.accept_predictions(dataset, "predictionz"), [
        "'predictionz'",
        "does not exist",
        PRED,
    ]


def _reject_ground_truth(dataset, other):
    import fiftyone_ntt.fiftyone as nf

    ids = _gt_ids(dataset)[:1]
    return lambda: nf.reject_predictions(dataset, GT, ids), [
        f"{GT!r}",
        "ground truth",
        "never modifies",
        "tag_references",
    ]


def _accept_unscored_labels(dataset, other):
    """No bank or run names the ground truth yet: its labels have no confidence."""
    import fiftyone_ntt.fiftyone as nf

    nf.delete_bank(dataset, "colours")
    dataset.delete_run(PRED)
    return lambda: nf.accept_predictions(dataset, GT), [
        f"{GT!r}",
        "no confidence",
        "ground truth",
        "tag_references",
    ]


def _untag_classification_field(dataset, other):
    import fiftyone as fo

    import fiftyone_ntt.fiftyone as nf

    sample = dataset.first()
    sample["weather"] = fo.Classification(label="sunny", tags=["ntt:ref"])
    sample.save()
    return lambda: nf.untag_labels(dataset, "weather"), ["'weather'", "not Detections"]


def _labels_both_reference_and_negative(dataset, other):
    import fiftyone_ntt.fiftyone as nf

    # tagged by hand in the App: both tags on one prediction
    (label_id,) = _pred_ids(dataset)[:1]
    view = dataset.select_labels(ids=[label_id], fields=PRED)
    view.tag_labels("ntt:ref", label_fields=[PRED])
    view.tag_labels("ntt:neg", label_fields=[PRED])
    return lambda: nf.build_bank(dataset, GT, "colours", config=_fast()), [
        label_id,
        "tagged both",
        "untag one",
    ]


def _version_that_exists(dataset, other):
    import fiftyone_ntt.fiftyone as nf

    return lambda: nf.build_bank(dataset, GT, "colours", config=_fast(), version=1), [
        "version 1",
        "'colours'",
        "exists already",
        "leave version out",
    ]


def _preview_into_ground_truth(dataset, other):
    import fiftyone_ntt.fiftyone as nf

    return lambda: nf.preview(dataset, "colours", field=GT), [f"{GT!r}", "ntt_preview"]


def _preview_into_run_field(dataset, other):
    import fiftyone_ntt.fiftyone as nf

    return lambda: nf.preview(dataset, "colours", field=PRED), [
        f"{PRED!r}",
        "segmentation run",
        "never overwrites",
    ]


def _preview_into_foreign_labels(dataset, other):
    import fiftyone_ntt.fiftyone as nf

    _copy_without_masks(dataset)
    return lambda: nf.preview(dataset, "colours", field="boxes"), [
        "'boxes'",
        "no preview wrote",
    ]


def _preview_samples_of_another_dataset(dataset, other):
    import fiftyone_ntt.fiftyone as nf

    foreign = other.first().id
    return lambda: nf.preview(dataset, "colours", sample_ids=[foreign]), [
        foreign,
        "not in dataset",
    ]


def _preview_zero_samples(dataset, other):
    import fiftyone_ntt.fiftyone as nf

    return lambda: nf.preview(dataset, "colours", n=0), ["n=0", "positive"]


def _preview_unknown_version(dataset, other):
    import fiftyone_ntt.fiftyone as nf

    return lambda: nf.preview(dataset, "colours", version=7), ["no version 7", "versions: [1]"]


REFUSED_CASES = {
    "accept labels without masks": _accept_without_masks,
    "reject labels without masks": _reject_without_masks,
    "labels of another dataset": _labels_of_another_dataset,
    "reject in a non-Detections field": _reject_in_classification_field,
    "accept in an unknown field": _accept_in_unknown_field,
    "reject ground-truth labels": _reject_ground_truth,
    "accept unscored (ground-truth-like) labels": _accept_unscored_labels,
    "untag a non-Detections field": _untag_classification_field,
    "label tagged both reference and negative": _labels_both_reference_and_negative,
    "build a version that exists": _version_that_exists,
    "preview into the ground truth": _preview_into_ground_truth,
    "preview into a segmentation run's field": _preview_into_run_field,
    "preview into a field of other labels": _preview_into_foreign_labels,
    "preview samples of another dataset": _preview_samples_of_another_dataset,
    "preview zero samples": _preview_zero_samples,
    "preview an unknown bank version": _preview_unknown_version,
}


@pytest.fixture
def other_dataset(make_dataset, tmp_path):
    """Another painted dataset with predictions (labels and samples of another dataset)."""
    from ntt_painted import fill_painted_dataset

    import fiftyone_ntt.fiftyone as nf

    other = fill_painted_dataset(make_dataset("ntt-other"), tmp_path / "other")
    nf.build_bank(other, GT, "colours", config=_fast())
    nf.segment(other, "colours", PRED, skip_references=False)
    return other


@pytest.mark.parametrize("case", list(REFUSED_CASES))
def test_refused_and_nothing_changes(loop_dataset, other_dataset, case):
    call, words = REFUSED_CASES[case](loop_dataset, other_dataset)
    before = _protected(loop_dataset)
    with pytest.raises((ValueError, KeyError)) as info:
        call()
    message = str(info.value)
    for word in words:
        assert word in message, (word, message)
    assert _protected(loop_dataset) == before


# ------------------------------------------------------------ handled, and said what it did


def test_negative_with_no_positive_of_its_class_is_a_reported_skip(loop_dataset):
    import fiftyone_ntt.fiftyone as nf

    dataset = loop_dataset
    # the only green reference is untagged; a green prediction is rejected
    green_gt = [d.id for d in dataset.first()[GT].detections if d.label == "green"]
    nf.untag_labels(dataset, GT, green_gt)
    green_pred = [
        d.id for dets in dataset.values(PRED) for d in dets.detections if d.label == "green"
    ][:1]
    nf.reject_predictions(dataset, PRED, green_pred)
    gt_before = _protected(dataset)[0]
    with pytest.warns(UserWarning, match=r"negatives of classes \['green'\] were skipped"):
        info = nf.build_bank(dataset, GT, "colours", config=_fast())
    assert info["skipped_negatives"] == {"green": 1}
    assert info["classes"] == ["red", "blue"] and info["num_negatives"] == 0
    assert nf.load_bank(dataset, "colours").num_negatives == 0
    assert info["diff"]["text"] == "−1 reference"
    assert _protected(dataset)[0] == gt_before  # the build writes nothing to samples


def test_bank_version_deleted_while_a_run_uses_it(loop_dataset):
    """The run keeps the bank it loaded, finishes, and records the version; the deleted
    version is gone from the index and loading it says so."""
    import fiftyone_ntt.fiftyone as nf

    dataset = loop_dataset
    v2 = nf.build_bank(dataset, GT, "colours", config=_fast())
    deleted = []

    def progress(done, total):
        if done == 1 and not deleted:
            deleted.append(nf.delete_bank(dataset, "colours", version=2))

    summary = nf.segment(dataset, "colours", "during", skip_references=False, progress=progress)
    assert deleted == [True]
    assert summary["status"] == "completed" and summary["processed"] == len(dataset)
    assert summary["bank_version"] == 2
    assert dataset.get_run_info("during").config.bank_version == 2
    assert dataset.get_run_info("during").config.bank_fingerprint == v2["fingerprint"]
    assert [v["version"] for v in nf.bank_versions(dataset, "colours")] == [1]
    with pytest.raises(KeyError, match=r"no version 2 \(deleted, or never built\)"):
        nf.load_bank(dataset, "colours", version=2)
    # the same predictions as a run on the version 1 bank (same references)
    first = [[(d.label, d.confidence) for d in dets.detections] for dets in dataset.values(PRED)]
    during = [
        [(d.label, d.confidence) for d in dets.detections] for dets in dataset.values("during")
    ]
    assert first == during


def test_accept_on_a_patches_view_and_selected_label_dicts(loop_dataset):
    """The App's selections: a patches view of predictions, dicts of other fields."""
    import fiftyone_ntt.fiftyone as nf

    dataset = loop_dataset
    patches = dataset.to_patches(PRED)
    patch_ids = patches.limit(2).values(f"{PRED}.id")
    selected = [{"label_id": i, "field": PRED, "sample_id": "a-patch-id"} for i in patch_ids]
    selected.append({"label_id": _gt_ids(dataset)[0], "field": GT})  # another field: left out
    gt_before = dataset.values(f"{GT}.detections.tags")
    assert nf.accept_predictions(patches, PRED, selected) == 2
    assert nf.accept_predictions(patches.limit(3), PRED) == 3  # all labels of that view
    tagged = dataset.filter_labels(PRED, __import__("fiftyone").ViewField("tags") != [])
    assert tagged.count(f"{PRED}.detections") == 3
    assert dataset.values(f"{GT}.detections.tags") == gt_before


def test_bank_with_negatives_resumes_and_is_distinct(loop_dataset):
    """Negatives change the bank fingerprint, so a run over the old bank is not silently
    resumed with the new one."""
    import fiftyone_ntt.fiftyone as nf

    dataset = loop_dataset
    nf.reject_predictions(dataset, PRED, _pred_ids(dataset)[-1:])
    v2 = nf.build_bank(dataset, GT, "colours", config=_fast())
    assert v2["num_negatives"] == 1
    with pytest.raises(ValueError, match="another run"):
        nf.segment(dataset, "colours", PRED, skip_references=False)
    assert np.isfinite(nf.load_bank(dataset, "colours").negative_features).all()


def _count_cases() -> dict[str, int]:
    """How many bad-input cases this file covers (reported in the issue)."""
    return {
        "accept / reject / untag / build / preview refused": len(REFUSED_CASES),
        "negative without positive (reported skip)": 1,
        "bank version deleted during a run": 1,
        "App selections (patches view, other fields)": 1,
        "bank with negatives vs a run of the old bank": 1,
    }


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(_count_cases()))
