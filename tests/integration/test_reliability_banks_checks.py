"""Reliability (issue 19.6-19.9): FiftyOne references and banks that used to give silently
wrong results, on a real MongoDB with the fake models (``painted_dataset``).

* a reference that cannot be used (label None, NaN or negative box, empty mask) is refused
  naming its sample, label id and reason, or skipped and reported on request;
* a bank file swapped on disk for another valid bank is refused at load, naming both
  fingerprints, the file and the fix;
* a cloned ground-truth field (labels keep their ids) gives each reference once, or a clear
  refusal when the copies differ; ``reference_table`` counts each reference once;
* a rebuild after renaming a class (or changing a reference) does not say "same references".
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

pytestmark = pytest.mark.integration

GT = "ground_truth"


def _fast():
    from fiftyone_ntt.config import NTTConfig

    return NTTConfig(points_per_side=16)


def _reference(dataset, index=0):
    """(sample, detection) of the ``index``-th tagged reference (file order)."""
    found = []
    for sample in dataset.select_fields(GT):
        for det in sample[GT].detections:
            if "ntt:ref" in (det.tags or []):
                found.append((sample, det))
    return found[index]


def _edit(dataset, change, index=0, field=GT):
    """Apply ``change(detection)`` to the ``index``-th reference of ``field`` and save."""
    sample, det = _reference(dataset, index)
    sample = dataset[sample.id]
    for d in sample[field].detections:
        if d.id == det.id:
            change(d)
    sample.save()
    return sample.id, det.id


# ------------------------------------------------------ 19.6 references that cannot be used
def _set(name, value):
    def change(det):
        det[name] = value

    return change


def _empty_mask(det):
    det.mask = np.zeros_like(det.mask, dtype=bool)


# (name, change to the first reference, words of the reason)
INVALID_REFERENCE_CASES = [
    ("label None", _set("label", None), ["no label"]),
    ("empty label", _set("label", ""), ["no label"]),
    ("NaN box", _set("bounding_box", [0.1, 0.1, float("nan"), 0.2]), ["box"]),
    ("negative width", _set("bounding_box", [0.3, 0.1, -0.2, 0.2]), ["box"]),
    ("empty mask", _empty_mask, ["mask", "no pixel"]),
]


@pytest.mark.parametrize(
    ("name", "change", "words"),
    INVALID_REFERENCE_CASES,
    ids=[c[0] for c in INVALID_REFERENCE_CASES],
)
def test_unusable_reference_is_refused_or_skipped_and_reported(
    painted_dataset, name, change, words
):
    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    sample_id, label_id = _edit(dataset, change)
    with pytest.raises(ValueError) as error:
        nf.build_bank(dataset, GT, "colours", config=_fast())
    message = str(error.value)
    for word in [label_id, sample_id, "skip_invalid_annotations", *words]:
        assert word in message, (word, message)
    assert nf.list_banks(dataset) == []

    with pytest.warns(UserWarning, match=f"skipped 1 tagged label.*{label_id}"):
        info = nf.build_bank(dataset, GT, "colours", config=_fast(), skip_invalid_annotations=True)
    skipped = info["skipped_references"]
    assert [s["label_id"] for s in skipped] == [label_id], skipped
    assert skipped[0]["sample_id"] == sample_id and words[0] in skipped[0]["reason"]
    bank = nf.load_bank(dataset, "colours")
    assert label_id not in bank.reference_ids and bank.num_references == 2
    assert "None" not in bank.class_names


# ------------------------------------------------------- 19.7 a bank file swapped on disk
def _other_key(dataset):
    import fiftyone_ntt.fiftyone as nf

    dataset.untag_labels("ntt:ref", label_fields=[GT])
    _, det = next(
        (s, d) for s in dataset.select_fields(GT) for d in s[GT].detections if d.label == "blue"
    )
    dataset.select_labels(ids=[det.id], fields=GT).tag_labels("ntt:ref", label_fields=[GT])
    return nf.build_bank(dataset, GT, "other", config=_fast())["path"]


def _older_version(dataset):
    import fiftyone_ntt.fiftyone as nf

    dataset.untag_labels("ntt:ref", label_fields=[GT])
    _, det = next((s, d) for s in dataset.select_fields(GT) for d in s[GT].detections)
    dataset.select_labels(ids=[det.id], fields=GT).tag_labels("ntt:ref", label_fields=[GT])
    v1 = nf.build_bank(dataset, GT, "colours", config=_fast(), version=1, overwrite=True)
    return v1["path"]


def _another_dataset(dataset, tmp_path):
    import fiftyone as fo
    from ntt_painted import fill_painted_dataset

    import fiftyone_ntt.fiftyone as nf

    other = fill_painted_dataset(fo.Dataset(), tmp_path / "other", tag_references=False)
    try:
        det = other.first()[GT].detections[1]
        other.select_labels(ids=[det.id], fields=GT).tag_labels("ntt:ref", label_fields=[GT])
        path = nf.build_bank(other, GT, "colours", config=_fast())["path"]
        copy = tmp_path / "foreign.safetensors"
        shutil.copy(path, copy)
    finally:
        other.delete()
    return str(copy)


SWAPPED_BANK_CASES = [
    ("another key's bank", lambda d, t: _other_key(d)),
    ("an older version", lambda d, t: _older_version(d)),
    ("another dataset's bank", _another_dataset),
]


@pytest.mark.parametrize(
    ("name", "make"), SWAPPED_BANK_CASES, ids=[c[0] for c in SWAPPED_BANK_CASES]
)
def test_swapped_bank_file_is_refused_at_load(painted_dataset, tmp_path, name, make):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.memory_bank import BankFormatError

    dataset = painted_dataset
    nf.build_bank(dataset, GT, "colours", config=_fast(), version=2)
    info = nf.get_bank_info(dataset, "colours")
    impostor = make(dataset, tmp_path)
    shutil.copy(impostor, info["path"])
    with pytest.raises(BankFormatError) as error:
        nf.load_bank(dataset, "colours")
    message = str(error.value)
    from fiftyone_ntt.memory_bank import MemoryBank

    found = MemoryBank.load(info["path"]).fingerprint
    for word in [info["fingerprint"][:12], found[:12], info["path"], "rebuild", "restore"]:
        assert word in message, (word, message)
    with pytest.raises(BankFormatError):
        nf.segment(dataset, "colours", "preds", config=_fast(), progress=False)


# ---------------------------------------------------------- 19.8 a cloned ground truth
def _clone(dataset):
    dataset.clone_sample_field(GT, "gt_copy")


def _clone_and_relabel(dataset):
    _clone(dataset)
    _edit(dataset, _set("label", "crimson"), field="gt_copy")


def _clone_and_move(dataset):
    _clone(dataset)
    _edit(dataset, _set("bounding_box", [0.05, 0.05, 0.2, 0.2]), field="gt_copy")


# (name, setup, fields given to build_bank, the build must refuse)
CLONED_FIELD_CASES = [
    ("cloned field, default sources", _clone, None, False),
    ("cloned field, both named", _clone, [GT, "gt_copy"], False),
    ("clone relabelled", _clone_and_relabel, None, True),
    ("clone moved", _clone_and_move, [GT, "gt_copy"], True),
]


@pytest.mark.parametrize(
    ("name", "setup", "fields", "refused"),
    CLONED_FIELD_CASES,
    ids=[c[0] for c in CLONED_FIELD_CASES],
)
def test_cloned_ground_truth_counts_each_reference_once(
    painted_dataset, name, setup, fields, refused
):
    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    setup(dataset)
    rows = nf.reference_table(dataset, fields)
    assert sum(r["positives"] for r in rows) == 3, rows
    kwargs = {"fields": fields} if fields else {}
    if refused:
        label_id = _reference(dataset, 0)[1].id
        with pytest.raises(ValueError) as error:
            nf.build_bank(dataset, GT, "colours", config=_fast(), **kwargs)
        message = str(error.value)
        for word in [label_id, GT, "gt_copy", "untag"]:
            assert word in message, (word, message)
        assert "reference ids must be unique" not in message
        return
    info = nf.build_bank(dataset, GT, "colours", config=_fast(), **kwargs)
    assert info["num_references"] == 3 and info["shots"] == {"red": 1, "green": 1, "blue": 1}
    assert sorted(info["duplicate_references"]) == sorted(
        _reference(dataset, i)[1].id for i in range(3)
    )
    assert all(v == [GT, "gt_copy"] for v in info["duplicate_references"].values())


# ------------------------------------------------------ 19.9 what a rebuild changed
def _rename_red(dataset):
    for sample in dataset.select_fields(GT):
        for det in sample[GT].detections:
            if det.label == "red":
                det.label = "crimson"
        sample.save()


def _relabel_one(dataset):
    _edit(dataset, _set("label", "blue"), index=0)


def _shrink_one(dataset):
    def shrink(det):
        x, y, w, h = det.bounding_box
        det.bounding_box = [x, y, w / 2, h / 2]
        my, mx = det.mask.shape
        det.mask = det.mask[: my // 2, : mx // 2]

    _edit(dataset, shrink, index=1)


# (name, change between the builds, words of the diff text)
REBUILD_DIFF_CASES = [
    ("class renamed", _rename_red, ["'red'", "'crimson'", "renamed"]),
    ("one reference relabelled", _relabel_one, ["1 reference", "'red'", "'blue'"]),
    ("one reference reshaped", _shrink_one, ["1 reference", "changed"]),
    ("nothing changed", lambda d: None, ["same references and negatives"]),
]


@pytest.mark.parametrize(
    ("name", "change", "words"), REBUILD_DIFF_CASES, ids=[c[0] for c in REBUILD_DIFF_CASES]
)
def test_rebuild_describes_changed_labels_and_masks(painted_dataset, name, change, words):
    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    nf.build_bank(dataset, GT, "colours", config=_fast())
    change(dataset)
    text = nf.build_bank(dataset, GT, "colours", config=_fast())["diff"]["text"]
    for word in words:
        assert word in text, (word, text)
    if name != "nothing changed":
        assert "same references" not in text
    assert nf.bank_versions(dataset, "colours")[-1]["diff"]["text"] == text


def _count_cases():
    return {
        "invalid_references": len(INVALID_REFERENCE_CASES),
        "swapped_banks": len(SWAPPED_BANK_CASES),
        "cloned_fields": len(CLONED_FIELD_CASES),
        "rebuild_diffs": len(REBUILD_DIFF_CASES),
    }
