"""The FiftyOne adapter (``fiftyone_ntt.fiftyone``) on a real MongoDB-backed dataset of
painted images, with the deterministic fake models (see ``painted_dataset``)."""

from __future__ import annotations

import numpy as np
import pytest
from ntt_snapshots import detections_by_sample

pytestmark = pytest.mark.integration

GT = "ground_truth"


def _fast():
    """The paper's settings with a 16x16 prompt grid (the fake proposer needs no more)."""
    from fiftyone_ntt.config import NTTConfig

    return NTTConfig(points_per_side=16)


class CountingProposer:
    """The fake proposer, counting embedded images and optionally failing after N."""

    def __init__(self, fail_after: int | None = None):
        from fiftyone_ntt.testing import RegionProposer

        self.inner = RegionProposer()
        self.fail_after = fail_after
        self.calls = 0
        self.input_size = self.inner.input_size
        self.mask_size = self.inner.mask_size
        self.device = self.inner.device
        self.identity = self.inner.identity

    def embed(self, pixels):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise RuntimeError("simulated crash (worker killed)")
        self.calls += 1
        return self.inner.embed(pixels)

    def propose(self, *args):
        return self.inner.propose(*args)

    def segment_boxes(self, *args):
        return self.inner.segment_boxes(*args)


def test_tag_untag_and_summary(painted_dataset):
    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    summary = nf.reference_summary(dataset, GT)
    assert summary == {
        "red": {"references": 1, "box_only": 0},
        "green": {"references": 1, "box_only": 0},
        "blue": {"references": 1, "box_only": 0},
    }
    sample = dataset.skip(2).first()
    det = sample[GT].detections[0]
    selected = [{"label_id": det.id, "sample_id": sample.id, "field": GT, "frame_number": None}]
    assert nf.tag_references(dataset, selected) == 1
    assert nf.reference_summary(dataset, GT)["red"]["references"] == 2
    assert nf.untag_references(dataset, selected) == 1
    assert nf.reference_summary(dataset, GT)["red"]["references"] == 1
    # the tag is a plain FiftyOne label tag
    assert dataset.count_label_tags() == {"ntt:ref": 3}


def test_sample_references_is_seeded_and_skips_crowd(painted_dataset):
    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    # mark every "green" instance but one as crowd: only that one may be sampled
    greens = [d for s in dataset.select_fields(GT) for d in s[GT].detections if d.label == "green"]
    keep = greens[-1].id
    for sample in dataset.select_fields(GT):
        for d in sample[GT].detections:
            if d.label == "green" and d.id != keep:
                d["iscrowd"] = True
        sample.save()

    counts = nf.count_reference_candidates(dataset, GT)
    assert counts == {"red": 5, "green": 1, "blue": 5}  # images: one reference per image
    per_instance = nf.count_reference_candidates(dataset, GT, one_per_image=False)
    assert per_instance == {"red": 6, "green": 1, "blue": 5}
    assert nf.count_reference_candidates(dataset, GT, classes=["blue"]) == {"blue": 5}

    first = nf.sample_references(dataset, GT, 2, seed=7, replace=True)
    first_ids = sorted(c.ref_id for c in first)
    tagged = sorted(dataset.filter_labels(GT, _tagged()).values(f"{GT}.detections.id", unwind=True))
    assert tagged == first_ids
    assert first.shortfalls == {"green": (2, 1)}
    assert [c.ref_id for c in first if c.class_name == "green"] == [keep]

    again = nf.sample_references(dataset, GT, 2, seed=7, replace=True)
    assert sorted(c.ref_id for c in again) == first_ids
    other = nf.sample_references(dataset, GT, 2, seed=8, replace=True)
    assert sorted(c.ref_id for c in other) != first_ids  # 5 red images: another seed differs

    only_blue = nf.sample_references(dataset, GT, 1, seed=0, classes=["blue"], replace=True)
    assert [c.class_name for c in only_blue] == ["blue"]
    assert dataset.count_label_tags() == {"ntt:ref": 1}


def _tagged():
    from fiftyone import ViewField as F

    return F("tags").contains("ntt:ref")


def test_build_bank_indexes_and_deletes(painted_dataset):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.memory_bank import MemoryBank

    dataset = painted_dataset
    info = nf.build_bank(dataset, GT, "colours", config=_fast())
    assert info["classes"] == ["red", "green", "blue"]
    assert info["shots"] == {"red": 1, "green": 1, "blue": 1}
    assert info["generated_masks"] == 0
    assert info["models"]["encoder"]["family"] == "fake-color"
    bank = nf.load_bank(dataset, "colours")
    assert isinstance(bank, MemoryBank)
    assert bank.fingerprint == info["fingerprint"]
    assert info["size_bytes"] > 0 and info["exists"]
    assert [b["key"] for b in nf.list_banks(dataset)] == ["colours"]
    # the index is the dataset's execution store, as ctx.store("ntt") sees it
    from fiftyone.operators.store import ExecutionStore

    store = ExecutionStore.create("ntt", dataset._doc.id)
    assert store.get("bank:colours")["fingerprint"] == info["fingerprint"]

    # a rebuild makes a new version (the old one stays); overwrite replaces the latest
    assert info["version"] == 1
    v2 = nf.build_bank(dataset, GT, "colours", config=_fast())
    assert v2["version"] == 2 and v2["diff"]["text"] == "same references and negatives"
    # same references, same fake encoder, another device: the same content fingerprint
    again = nf.build_bank(dataset, GT, "colours", config=_fast(), overwrite=True, device="cpu")
    assert again["version"] == 2 and again["fingerprint"] == info["fingerprint"]
    assert [v["version"] for v in nf.bank_versions(dataset, "colours")] == [1, 2]
    with pytest.raises(ValueError, match="version 1 of bank 'colours' exists already"):
        nf.build_bank(dataset, GT, "colours", config=_fast(), version=1)

    assert nf.delete_bank(dataset, "colours")
    assert nf.list_banks(dataset) == []
    assert not (tmp := __import__("pathlib").Path(info["path"])).exists(), tmp
    assert not nf.delete_bank(dataset, "colours")


def test_build_bank_box_only_references_get_sam_masks(painted_dataset):
    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    for sample in dataset.select_fields(GT):
        for d in sample[GT].detections:
            d.mask = None
        sample.save()
    summary, problems = nf.validate_build(dataset, GT)
    assert problems == [] and sum(v["box_only"] for v in summary.values()) == 3
    info = nf.build_bank(dataset, GT, "boxes")
    assert info["generated_masks"] == 3


def test_validate_build_messages(painted_dataset):
    import fiftyone as fo

    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    dataset.add_sample_field("note", fo.StringField)
    _, problems = nf.validate_build(dataset, "note")
    assert problems[0][0] == "gt_field" and "not Detections" in problems[0][1]
    _, problems = nf.validate_build(dataset, "nope")
    assert "does not exist" in problems[0][1]
    _, problems = nf.validate_build(dataset, GT, classes=["red", "purple"])
    assert problems[0][0] == "classes" and "purple" in problems[0][1]
    dataset.untag_labels("ntt:ref")
    _, problems = nf.validate_build(dataset, GT)
    assert "no label" in problems[0][1]
    with pytest.raises(ValueError, match="no label"):
        nf.build_bank(dataset, GT, "empty")


def test_segment_writes_fiftyone_detections_and_a_run(painted_dataset, field_hash):
    import fiftyone as fo

    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    nf.build_bank(dataset, GT, "colours", config=_fast())
    gt_before = field_hash(dataset, GT)
    fields_before = set(dataset.get_field_schema())

    summary = nf.segment(dataset, "colours", "ntt", batch_size=3)
    assert summary["status"] == "completed"
    assert summary["total"] == 6 and summary["processed"] == 6 and summary["failed"] == 0

    assert field_hash(dataset, GT) == gt_before
    assert set(dataset.get_field_schema()) == fields_before | {"ntt"}
    samples = list(dataset.select_fields([GT, "ntt"]))
    # reference samples are skipped by default
    assert samples[0].ntt is None and samples[1].ntt is None
    sample = samples[2]  # red and blue rectangles
    assert isinstance(sample.ntt, fo.Detections)
    height, width = sample.metadata.height, sample.metadata.width
    by_label = {d.label: d for d in sample.ntt.detections}
    assert set(by_label) == {"red", "blue"}
    for det in sample.ntt.detections:
        _, _, w, h = det.bounding_box
        assert det.mask.shape == (round(h * height), round(w * width))
        assert det.mask.dtype == bool and det.mask.all()  # a filled rectangle
        assert 0 < det.confidence <= 1
    assert np.allclose(by_label["red"].bounding_box, [5 / 128, 50 / 96, 30 / 128, 35 / 96])
    assert samples[7].ntt is not None and len(samples[7].ntt.detections) == 0  # negative

    # provenance: a custom run keyed by the field
    assert nf.list_ntt_runs(dataset) == ["ntt"]
    config = dataset.get_run_info("ntt").config
    bank = nf.load_bank(dataset, "colours")
    assert config.bank_fingerprint == bank.fingerprint
    assert config.bank_key == "colours" and config.gt_field == GT
    assert config.models["encoder"]["family"] == "fake-color"
    assert config.ntt_config["points_per_side"] == 16  # the bank's settings
    assert "fiftyone" in config.versions and "torch" in config.versions
    results = dataset.load_run_results("ntt")
    assert results.status == "completed" and results.processed == 6

    dataset.delete_run("ntt")
    assert "ntt" not in dataset.list_runs()
    assert not dataset.has_sample_field("ntt")


def test_segment_resumes_after_interruption(painted_dataset):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.testing import ColorEncoder

    dataset = painted_dataset
    nf.build_bank(dataset, GT, "colours", config=_fast())

    crashing = CountingProposer(fail_after=4)
    with pytest.raises(RuntimeError, match="simulated crash"):
        nf.segment(
            dataset, "colours", "resumed", batch_size=3, encoder=ColorEncoder(), proposer=crashing
        )
    # what was computed before the crash was written (batch of 3 + the pending 1)
    assert dataset.exists("resumed").count() == 4
    assert dataset.load_run_results("resumed").status == "interrupted"

    resuming = CountingProposer()
    summary = nf.segment(
        dataset, "colours", "resumed", batch_size=3, encoder=ColorEncoder(), proposer=resuming
    )
    assert resuming.calls == 2 and summary["processed"] == 2 and summary["done_before"] == 4

    full = CountingProposer()
    nf.segment(dataset, "colours", "uninterrupted", encoder=ColorEncoder(), proposer=full)
    assert full.calls == 6
    resumed = detections_by_sample(dataset, "resumed")
    assert resumed == detections_by_sample(dataset, "uninterrupted")
    assert sum(v is not None for v in resumed.values()) == 6

    # nothing left to do; overwrite recomputes everything
    idle = CountingProposer()
    nf.segment(dataset, "colours", "resumed", encoder=ColorEncoder(), proposer=idle)
    assert idle.calls == 0
    nf.segment(dataset, "colours", "resumed", encoder=ColorEncoder(), proposer=idle, overwrite=True)
    assert idle.calls == 6


def test_segment_skips_bad_images_and_reports_them(painted_dataset):
    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    nf.build_bank(dataset, GT, "colours", config=_fast())
    samples = list(dataset)
    with open(samples[3].filepath, "wb") as f:
        f.write(b"not a png")
    samples[4].filepath = samples[4].filepath + ".missing.png"
    samples[4].save()

    summary = nf.segment(dataset, "colours", "ntt", prefetch=0)
    assert summary["failed"] == 2 and summary["processed"] == 4
    failed = {f["sample_id"] for f in summary["failures"]}
    assert failed == {samples[3].id, samples[4].id}
    assert dataset.load_run_results("ntt").failed == 2
    assert dataset[samples[3].id].ntt is None


def test_segment_refuses_bad_output_fields(painted_dataset):
    import fiftyone as fo

    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    nf.build_bank(dataset, GT, "colours", config=_fast())
    with pytest.raises(ValueError, match="ground-truth field"):
        nf.segment(dataset, "colours", GT)
    dataset.add_sample_field("note", fo.StringField)
    with pytest.raises(ValueError, match="not Detections"):
        nf.segment(dataset, "colours", "note")
    with pytest.raises(ValueError, match="not valid"):
        nf.segment(dataset, "colours", "bad-name")

    nf.segment(dataset.limit(3), "colours", "ntt")
    dataset.untag_labels("ntt:ref")
    dataset.select_labels(ids=[dataset.skip(2).first()[GT].detections[0].id]).tag_labels("ntt:ref")
    nf.build_bank(dataset, GT, "other", config=_fast())
    with pytest.raises(ValueError, match="another run"):
        nf.segment(dataset, "other", "ntt")
    nf.segment(dataset, "other", "ntt", overwrite=True)
    assert dataset.get_run_info("ntt").config.bank_key == "other"


def test_evaluate_matches_fiftyone_and_excludes_references(painted_dataset):
    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    nf.build_bank(dataset, GT, "colours", config=_fast())
    nf.segment(dataset, "colours", "ntt", skip_references=False)

    ours = nf.evaluate(dataset, "ntt", "ev_all")  # gt field taken from the run
    direct = dataset.evaluate_detections(
        "ntt", gt_field=GT, eval_key="direct", method="coco", use_masks=True, compute_mAP=True
    )
    assert ours["gt_field"] == GT and ours["num_samples"] == 8
    assert ours["mAP"] == pytest.approx(direct.mAP())
    assert 0 < ours["mAP"] < 1  # magenta "red" missed, yellow distractors
    assert (ours["tp"], ours["fp"], ours["fn"]) == (
        dataset.sum("direct_tp"),
        dataset.sum("direct_fp"),
        dataset.sum("direct_fn"),
    )
    assert ours["fn"] >= 1 and ours["fp"] >= 1
    assert "ev_all" in dataset.list_evaluations()

    excluded = nf.evaluate(dataset, "ntt", "ev_targets", exclude_references=True, exact_coco=True)
    assert excluded["num_samples"] == 6
    ref_ids = dataset.limit(2).values("id")
    assert dataset.select(ref_ids).exists("ev_targets_tp").count() == 0
    assert dataset.exclude(ref_ids).exists("ev_targets_tp").count() == 6
    direct_targets = dataset.exclude(ref_ids).evaluate_detections(
        "ntt", gt_field=GT, eval_key="direct2", method="coco", use_masks=True, compute_mAP=True
    )
    assert excluded["mAP"] == pytest.approx(direct_targets.mAP())

    coco = excluded["coco"]
    assert set(coco["iou_types"]) == {"bbox", "segm"} and coco["num_images"] == 6
    assert 0 < coco["segm"]["stats"]["AP"] < 1
    stored = dataset.load_run_results("ev_targets_coco")
    assert stored.coco["segm"]["stats"]["AP"] == coco["segm"]["stats"]["AP"]


def test_nttmodel_apply_model_matches_segment(painted_dataset):
    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    nf.build_bank(dataset, GT, "colours", config=_fast())
    nf.segment(dataset, "colours", "ntt", skip_references=False)
    model = nf.NTTModel(nf.load_bank(dataset, "colours"))
    assert model.media_type == "image"
    dataset.apply_model(model, label_field="applied")
    ours = detections_by_sample(dataset, "ntt")
    applied = detections_by_sample(dataset, "applied")
    assert applied == ours


def test_patches_views_tag_and_segment_their_images(painted_dataset):
    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    patches = dataset.skip(2).limit(2).to_patches(GT)
    patch = patches.first()
    # the App reports a patches-view selection with the patch's id as sample_id
    selected = [{"label_id": patch[GT].id, "sample_id": patch.id, "field": GT}]
    assert nf.tag_references(patches, selected) == 1
    assert nf.reference_summary(dataset, GT)[patch[GT].label]["references"] == 2

    nf.build_bank(dataset, GT, "colours", config=_fast())
    summary = nf.segment(patches, "colours", "ntt")
    assert summary["total"] == 1  # 2 images, one of which now holds a reference
    assert dataset.exists("ntt").values("id") == [dataset.skip(3).first().id]


def test_segment_gives_kept_cpu_buffers_back_after_a_run(painted_dataset, monkeypatch):
    """A CPU run keeps freed buffers for reuse (models/allocator.py); the process may be the
    App's server, so segment() releases them when the run ends, finished or crashed."""
    import importlib

    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.testing import ColorEncoder

    # the package's `segment` is the function; the module is reached by name
    segment_module = importlib.import_module("fiftyone_ntt.fiftyone.runs.job")

    calls = []
    monkeypatch.setattr(segment_module, "release_free_memory", lambda: calls.append(1))
    dataset = painted_dataset
    nf.build_bank(dataset, GT, "colours", config=_fast())
    nf.segment(dataset, "colours", "released", encoder=ColorEncoder(), proposer=CountingProposer())
    assert calls == [1]
    with pytest.raises(RuntimeError, match="simulated crash"):
        nf.segment(
            dataset,
            "colours",
            "released_crash",
            encoder=ColorEncoder(),
            proposer=CountingProposer(fail_after=1),
        )
    assert calls == [1, 1]
