"""The curation loop from Python: accept / reject predictions, reference table, banks from
ground truth and predictions at once, bank versions, preview with cached models. Real
MongoDB, painted images, deterministic fake models (``painted_dataset``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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


def test_versions_diff_and_delete(predicted):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.memory_bank import BankFormatError

    dataset = predicted  # "colours" v1 built from the 3 tagged ground-truth instances
    red = _pred_ids(dataset, "red", sample_index=2)
    green = _pred_ids(dataset, "green", sample_index=3)
    nf.accept_predictions(dataset, PRED, red[:1])
    nf.reject_predictions(dataset, PRED, green[:1])
    v2 = nf.build_bank(dataset, GT, "colours", config=_fast())
    assert v2["version"] == 2
    assert v2["diff"]["text"] == "+1 reference, +1 negative"
    assert v2["num_negatives"] == 1 and v2["negatives"] == {"green": 1}
    assert v2["fields"] == {
        GT: {"references": 3, "negatives": 0},
        PRED: {"references": 1, "negatives": 1},
    }
    nf.untag_labels(dataset, PRED, red[:1])
    v3 = nf.build_bank(dataset, GT, "colours", config=_fast())
    assert v3["diff"]["text"] == "−1 reference"
    rows = nf.bank_versions(dataset, "colours")
    assert [r["version"] for r in rows] == [1, 2, 3]
    assert [r["diff"]["text"] for r in rows] == [
        "first version",
        "+1 reference, +1 negative",
        "−1 reference",
    ]
    assert rows[1]["shots_text"] == "3 × 1–2" and rows[2]["shots_text"] == "3 × 1"
    assert rows[-1]["latest"] and all(r["exists"] for r in rows)
    assert "reference_ids" not in rows[0]
    # the latest per key
    (listed,) = nf.list_banks(dataset)
    assert (listed["version"], listed["num_versions"]) == (3, 3)
    assert nf.load_bank(dataset, "colours").origin["bank_version"] == 3
    assert nf.load_bank(dataset, "colours", version=2).num_negatives == 1
    # deleting the latest makes the previous one the latest; others stay
    assert nf.delete_bank(dataset, "colours", version=3)
    assert not __import__("os").path.exists(v3["path"])
    assert nf.get_bank_info(dataset, "colours")["version"] == 2
    with pytest.raises(KeyError, match=r"no version 3.*versions: \[1, 2\]"):
        nf.load_bank(dataset, "colours", version=3)
    # the next build numbers after the highest remaining
    assert nf.build_bank(dataset, GT, "colours", config=_fast())["version"] == 3
    __import__("os").unlink(nf.get_bank_info(dataset, "colours", version=1)["path"])
    with pytest.raises(BankFormatError, match="version 1 is missing"):
        nf.load_bank(dataset, "colours", version=1)
    assert nf.delete_bank(dataset, "colours")
    assert nf.list_banks(dataset) == []


def test_pre_version_bank_reads_as_version_1(painted_dataset):
    """A bank indexed before versions existed: only "bank:<key>" and <key>.safetensors."""
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.banks.keys import bank_path
    from fiftyone_ntt.fiftyone.dataset.store import execution_store

    dataset = painted_dataset
    info = nf.build_bank(dataset, GT, "old", config=_fast())
    store = execution_store(dataset)
    legacy = bank_path(dataset, "old")
    __import__("shutil").move(info["path"], legacy)
    old = {k: v for k, v in info.items() if k not in ("version", "num_versions", "diff")}
    old["path"] = str(legacy)
    store.delete("bankv:old:1")
    store.set("bank:old", old)
    assert nf.get_bank_info(dataset, "old")["version"] == 1
    assert nf.load_bank(dataset, "old").fingerprint == info["fingerprint"]
    v2 = nf.build_bank(dataset, GT, "old", config=_fast())
    assert v2["version"] == 2 and v2["diff"]["text"] == "same references and negatives"
    assert [r["version"] for r in nf.bank_versions(dataset, "old")] == [1, 2]
    assert nf.load_bank(dataset, "old", version=1).fingerprint == info["fingerprint"]


def test_segment_records_bank_version(predicted):
    import fiftyone_ntt.fiftyone as nf

    dataset = predicted
    assert dataset.get_run_info(PRED).config.bank_version == 1
    nf.build_bank(dataset, GT, "colours", config=_fast())
    summary = nf.segment(dataset, "colours", "second", skip_references=False)
    assert summary["bank_version"] == 2
    assert dataset.get_run_info("second").config.bank_version == 2


def test_preview_replaces_field_and_reuses_models(painted_dataset, field_hash):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.dataset.mask_files import masks_folder
    from fiftyone_ntt.fiftyone.dataset.model_cache import load_count

    dataset = painted_dataset
    nf.build_bank(dataset, GT, "colours", config=_fast())
    gt_before = field_hash(dataset, GT)
    nf.free_models()
    first = nf.preview(dataset, "colours", n=3)
    assert first["models_loaded"] is True
    loads = load_count()
    ids = dataset.values("id")
    assert first["sample_ids"] == ids[:3] and first["bank_version"] == 1
    assert first["detections"] == sum(first["counts"].values()) > 0
    assert set(dataset.exists("ntt_preview").values("id")) == set(ids[:3])
    # the second preview reuses the loaded models and replaces the first
    second = nf.preview(dataset.skip(5), "colours", n=2)
    assert second["models_loaded"] is False and load_count() == loads
    assert set(dataset.exists("ntt_preview").values("id")) == set(ids[5:7])
    assert second["cleared"] == 3
    # explicit samples; the predictions equal a segmentation run's
    third = nf.preview(dataset, "colours", sample_ids=[ids[4]])
    assert third["sample_ids"] == [ids[4]] and load_count() == loads
    nf.segment(dataset.select(ids[4]), "colours", "full", skip_references=False)
    preview_dets = dataset[ids[4]]["ntt_preview"].detections
    run_dets = dataset[ids[4]]["full"].detections
    assert [(d.label, d.confidence, d.bounding_box) for d in preview_dets] == [
        (d.label, d.confidence, d.bounding_box) for d in run_dets
    ]
    # the preview's masks are files (the App paints them without handing buffers over:
    # fiftyone_ntt/fiftyone/dataset/mask_files.py), equal to the run's in-label masks
    folder = masks_folder(dataset)
    assert preview_dets and all(d.mask is None for d in preview_dets)
    assert [Path(d.mask_path).parent for d in preview_dets] == [folder] * len(preview_dets)
    for pred, run in zip(preview_dets, run_dets):
        assert np.array_equal(np.asarray(pred.get_mask()) > 0, np.asarray(run.mask) > 0)
    assert nf.free_models() == 1
    assert nf.preview(dataset, "colours", n=1)["models_loaded"] is True
    assert field_hash(dataset, GT) == gt_before


def test_loop_reject_rebuild_preview_removes_the_false_positive(painted_dataset, field_hash):
    """accept -> reject -> rebuild -> preview: the rejected prediction is gone, the true
    detections are unchanged, the ground truth is untouched."""
    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    gt_before = field_hash(dataset, GT)
    nf.build_bank(dataset, GT, "colours", config=_fast())
    ids = dataset.values("id")
    target = ids[6]  # a blue square and an unlabelled yellow distractor
    nf.preview(dataset, "colours", sample_ids=[target])
    before = dataset[target]["ntt_preview"].detections
    # the distractor: the detection whose box is the yellow square (80, 40, 120, 80)
    yellow = [0.625, 40 / 96, 40 / 128, 40 / 96]
    (false_positive,) = [d for d in before if np.allclose(d.bounding_box, yellow, atol=1e-6)]
    assert false_positive.confidence > 0
    assert nf.reject_predictions(dataset, "ntt_preview", [false_positive.id]) == 1
    v2 = nf.build_bank(dataset, GT, "colours", config=_fast())
    assert v2["diff"]["text"] == "+1 negative"
    again = nf.preview(dataset, "colours", sample_ids=[target])
    assert again["curated"] == 1  # the rejected label was kept in ntt_curated

    def described(dets):
        return [
            (d.label, d.confidence, tuple(d.bounding_box), (np.asarray(d.get_mask()) > 0).tobytes())
            for d in dets
        ]

    after = dataset[target]["ntt_preview"].detections
    expected = [d for d in before if d.id != false_positive.id]
    assert len(after) == len(before) - 1 and described(after) == described(expected)
    assert [d.id for d in dataset[target]["ntt_curated"].detections] == [false_positive.id]
    # a third build still has the negative (it lives on in ntt_curated)
    v3 = nf.build_bank(dataset, GT, "colours", config=_fast())
    assert v3["diff"]["text"] == "same references and negatives"
    assert field_hash(dataset, GT) == gt_before


@pytest.mark.parametrize("field", ["ntt_curated", "ntt_preview"])
def test_segment_refuses_the_curation_fields(predicted, field_hash, field):
    """A segmentation into the field that keeps accepted/rejected labels (or the preview
    field, which each preview replaces) would erase the user's curation: refused, named,
    nothing changed."""
    import fiftyone_ntt.fiftyone as nf

    nf.preview(predicted, "colours", n=2, config=_fast())
    nf.accept_predictions(predicted, "ntt_preview")
    nf.preview(predicted, "colours", n=2, config=_fast())  # moves the tagged labels
    before = {f: field_hash(predicted, f) for f in ("ntt_curated", "ntt_preview", GT)}
    with pytest.raises(ValueError) as error:
        nf.segment(predicted, "colours", field, skip_references=False)
    assert repr(field) in str(error.value) and "another output field" in str(error.value)
    assert {f: field_hash(predicted, f) for f in before} == before


def test_references_from_predictions_leave_their_sample_segmented_and_evaluated(predicted):
    """A prediction accepted as a reference goes into the bank, but its sample is not a
    reference sample (issue 20.2): its ground truth is still complete, so the next run
    segments it, the counts say so, and evaluation keeps it. Only references in the
    ground-truth field make reference samples."""
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.app.preflight import segment_counts
    from fiftyone_ntt.fiftyone.evaluation.evaluate import evaluation_view

    dataset = predicted
    sample_ids = dataset.values("id")
    gt_refs = set(dataset.match_labels(tags="ntt:ref", fields=GT).values("id"))
    accepted = _pred_ids(dataset, "red", sample_index=2)[:1]
    assert accepted and sample_ids[2] not in gt_refs
    nf.accept_predictions(dataset, PRED, accepted)
    nf.build_bank(dataset, GT, "both", config=_fast())
    assert set(accepted) <= set(nf.load_bank(dataset, "both").reference_ids)

    counts = segment_counts(dataset, "both")
    assert counts["references"] == len(gt_refs)
    assert counts["to_segment"] == len(dataset) - len(gt_refs)

    nf.segment(dataset, "both", "next_run")
    segmented = set(dataset.exists("next_run").values("id"))
    assert segmented == set(sample_ids) - gt_refs

    kept = set(evaluation_view(dataset, GT, exclude_references=True).values("id"))
    assert kept == set(sample_ids) - gt_refs
