"""The curation loop from Python: accept / reject predictions, reference table, banks from
ground truth and predictions at once, bank versions, preview with cached models. Real
MongoDB, painted images, deterministic fake models (``painted_dataset``)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

GT = "ground_truth"
PRED = "ntt_predictions"


def _fast():
    from fiftyone_ntt.config import NTTConfig

    return NTTConfig(points_per_side=16)


@pytest.fixture
def predicted(painted_dataset):
    """The painted dataset with a bank ``colours`` and its predictions in ``PRED``."""
    import fiftyone_ntt.fiftyone as nf

    nf.build_bank(painted_dataset, GT, "colours", config=_fast())
    nf.segment(painted_dataset, "colours", PRED, skip_references=False)
    return painted_dataset


def _pred_ids(dataset, label=None, sample_index=None):
    out = []
    for i, sample in enumerate(dataset.select_fields(PRED)):
        if sample_index is not None and i != sample_index:
            continue
        for det in sample[PRED].detections if sample[PRED] else []:
            if label is None or det.label == label:
                out.append(det.id)
    return out


def _tags(dataset, field=PRED):
    return {
        det.id: sorted(det.tags)
        for sample in dataset.select_fields(field)
        for det in (sample[field].detections if sample[field] else [])
        if det.tags
    }


def test_accept_reject_untag_tag_predictions_where_they_are(predicted, field_hash):
    import fiftyone_ntt.fiftyone as nf

    dataset = predicted
    gt_before = field_hash(dataset, GT)
    ids = _pred_ids(dataset)
    assert len(ids) >= 4
    assert nf.accept_predictions(dataset, PRED, ids[:2]) == 2
    assert nf.reject_predictions(dataset, PRED, [{"label_id": ids[2], "field": PRED}]) == 1
    assert _tags(dataset) == {ids[0]: ["ntt:ref"], ids[1]: ["ntt:ref"], ids[2]: ["ntt:neg"]}
    # one or the other: rejecting an accepted label moves it
    assert nf.reject_predictions(dataset, PRED, [ids[1]]) == 1
    assert _tags(dataset)[ids[1]] == ["ntt:neg"]
    # selected-label dicts of another field are left out
    assert nf.accept_predictions(dataset, PRED, [{"label_id": ids[3], "field": GT}]) == 0
    assert nf.untag_labels(dataset, PRED, [ids[0], ids[1]]) == 2
    assert _tags(dataset) == {ids[2]: ["ntt:neg"]}
    assert nf.untag_labels(dataset, [PRED]) == 1
    assert _tags(dataset) == {}
    # all labels of the field in a view
    view = dataset.limit(2)
    n = nf.accept_predictions(view, PRED)
    assert n == view.count(f"{PRED}.detections") and n > 0
    assert field_hash(dataset, GT) == gt_before


def test_reference_table_counts_positives_negatives_and_fields(predicted):
    import fiftyone_ntt.fiftyone as nf

    dataset = predicted
    red = _pred_ids(dataset, "red")
    green = _pred_ids(dataset, "green")
    nf.accept_predictions(dataset, PRED, red[:1])
    nf.reject_predictions(dataset, PRED, green[:2])
    rows = {r["class"]: r for r in nf.reference_table(dataset)}
    # ground truth: red, green, blue tagged once each (painted_dataset)
    assert rows["red"]["positives"] == 2 and rows["red"]["negatives"] == 0
    assert rows["red"]["fields"] == {
        GT: {"positives": 1, "negatives": 0},
        PRED: {"positives": 1, "negatives": 0},
    }
    assert rows["green"]["positives"] == 1 and rows["green"]["negatives"] == 2
    assert rows["blue"]["fields"] == {GT: {"positives": 1, "negatives": 0}}
    assert not any(r["global"] for r in rows.values())
    assert nf.tagged_fields(dataset) == sorted([GT, PRED])
    # only one field
    only = nf.reference_table(dataset, [PRED])
    assert {r["class"]: (r["positives"], r["negatives"]) for r in only} == {
        "red": (1, 0),
        "green": (0, 2),
    }
    # a patches view counts its patches' labels
    patches = dataset.to_patches(PRED)
    assert {r["class"]: r["negatives"] for r in nf.reference_table(patches)}["green"] == 2


def test_bank_takes_references_from_ground_truth_and_predictions(predicted):
    """Tags on prediction labels used to be ignored silently."""
    import fiftyone_ntt.fiftyone as nf

    dataset = predicted
    accepted = _pred_ids(dataset, "red", sample_index=2)[:1]
    assert accepted
    nf.accept_predictions(dataset, PRED, accepted)
    nf.build_bank(dataset, GT, "both", config=_fast())
    bank = nf.load_bank(dataset, "both")
    assert accepted[0] in bank.reference_ids
    assert bank.shots_per_class() == {"red": 2, "green": 1, "blue": 1}
    assert bank.metadata["reference_fields"][accepted[0]] == PRED
