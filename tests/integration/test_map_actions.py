"""Issue 22 §3-4, the panel's map actions as library functions, without the App: "More like
this" and accept / reject / untag of a lasso selection of map labels, with counts; a rebuilt
bank gets the rejected ones as negatives. Real MongoDB, painted images, the fake models."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

GT = "ground_truth"
PRED = "ntt_predictions"


@pytest.fixture
def mapped(painted_dataset):
    """Predictions with features, evaluated, on a map with a similarity index."""
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.config import NTTConfig
    from fiftyone_ntt.fiftyone.analysis.maps import map_predictions, similar_predictions

    dataset = painted_dataset
    config = NTTConfig(points_per_side=16)
    nf.build_bank(dataset, GT, "colours", config=config)
    nf.segment(dataset, "colours", PRED, config=config.replace(keep_features=True), progress=False)
    nf.evaluate(dataset, PRED, "ev", gt_field=GT)
    field = map_predictions(dataset, PRED, "colours")["brain_key"]
    similar_predictions(dataset, PRED, "colours")
    return dataset, field


def _lasso(dataset, field, roles):
    """The App's selected labels for every map label of ``roles`` (what a lasso gives)."""
    from fiftyone_ntt.fiftyone.analysis.maps import ROLE_ATTRIBUTE

    ids, got = dataset.values(
        [f"{field}.detections.id", f"{field}.detections.{ROLE_ATTRIBUTE}"], unwind=True
    )
    return [{"label_id": i, "field": field} for i, r in zip(ids, got) if r in roles]


def test_reject_a_lasso_of_false_positives_then_undo(mapped):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.app.map_actions import curate_selection

    dataset, field = mapped
    selection = _lasso(dataset, field, {"fp"})
    fp_ids = [
        i
        for i, o in zip(
            *dataset.values([f"{PRED}.detections.id", f"{PRED}.detections.ev"], unwind=True)
        )
        if o == "fp"
    ]
    assert len(selection) == len(fp_ids) >= 2
    result = curate_selection(dataset, selection, "reject")
    assert result["count"] == len(fp_ids) and result["fields"] == {PRED: len(fp_ids)}
    assert "rebuild" in result["message"]
    tagged = dataset.select_labels(tags="ntt:neg").values(f"{PRED}.detections.id", unwind=True)
    assert sorted(tagged) == sorted(fp_ids)
    # rebuilding gives a bank version with those negatives
    rebuilt = nf.build_bank(dataset, GT, "colours", fields=[GT, PRED])
    assert rebuilt["version"] == 2 and rebuilt["num_negatives"] == len(fp_ids)
    # undo
    undone = curate_selection(dataset, selection, "untag")
    assert undone["count"] == len(fp_ids)
    assert not dataset.count_label_tags().get("ntt:neg")


def test_accept_skips_the_ground_truth_and_counts_it(mapped, field_hash):
    from fiftyone_ntt.fiftyone.app.map_actions import curate_selection

    dataset, field = mapped
    gt_before = field_hash(dataset, GT)
    selection = _lasso(dataset, field, {"reference", "tp"})
    tps = len(_lasso(dataset, field, {"tp"}))
    result = curate_selection(dataset, selection, "accept")
    assert result["count"] == tps > 0 and result["skipped"] == 3
    assert "3 ground-truth label(s) left as they are" in result["message"]
    assert field_hash(dataset, GT) == gt_before


def test_more_like_this_from_a_reference_ranks_its_class_first(mapped):
    from fiftyone_ntt.fiftyone.analysis.maps import ROLE_ATTRIBUTE
    from fiftyone_ntt.fiftyone.app.map_actions import more_like_this

    dataset, field = mapped
    ids, labels, roles = dataset.values(
        [
            f"{field}.detections.id",
            f"{field}.detections.label",
            f"{field}.detections.{ROLE_ATTRIBUTE}",
        ],
        unwind=True,
    )
    green = next(i for i, lab, r in zip(ids, labels, roles) if lab == "green" and r == "reference")
    view = more_like_this(dataset, [{"label_id": green, "field": field}], k=3)
    got = view.values(f"{field}.label")
    assert got[0] == "green" and green not in view.values("id")
    assert set(view.values(f"{field}.{ROLE_ATTRIBUTE}")) <= {"prediction", "tp", "fp"}


def test_more_like_this_from_a_false_positive_gives_the_same_mistake(mapped):
    from fiftyone_ntt.fiftyone.analysis.maps import ROLE_ATTRIBUTE
    from fiftyone_ntt.fiftyone.app.map_actions import more_like_this

    dataset, field = mapped
    ids, labels, roles = dataset.values(
        [
            f"{field}.detections.id",
            f"{field}.detections.label",
            f"{field}.detections.{ROLE_ATTRIBUTE}",
        ],
        unwind=True,
    )
    fp, label = next((i, lab) for i, lab, r in zip(ids, labels, roles) if r == "fp")
    view = more_like_this(dataset, [fp], k=10)
    assert len(view) >= 1 and fp not in view.values("id")
    assert set(view.values(f"{field}.{ROLE_ATTRIBUTE}")) <= {"fp", "prediction"}
    assert set(view.values(f"{field}.label")) <= {label}


def test_more_like_this_without_an_index_says_how_to_make_one(mapped):
    from fiftyone_ntt.fiftyone.analysis.maps import similarity_key
    from fiftyone_ntt.fiftyone.app.map_actions import more_like_this

    dataset, field = mapped
    dataset.delete_brain_run(similarity_key(field))
    some = dataset.values(f"{field}.detections.id", unwind=True)[0]
    with pytest.raises(ValueError, match="Similarity index of predictions"):
        more_like_this(dataset, [some])
