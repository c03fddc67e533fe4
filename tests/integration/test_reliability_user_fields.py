"""Issue 19.1: a field that holds labels No Time to Train did not write is never replaced
without an explicit ``overwrite``: table-driven, one row per kind of foreign field, each
tried through every entry point that writes a ``Detections`` field of the user's choice
(``segment``, ``NTTModel.apply``, ``queue_shards``, the *Segment* form) and, with
``overwrite``, replaced."""

from __future__ import annotations

import asyncio

import pytest

pytestmark = pytest.mark.integration

GT = "ground_truth"
PLUGIN = "@fiftyone-ntt/no-time-to-train"


def _fast():
    from fiftyone_ntt.config import NTTConfig

    return NTTConfig(points_per_side=16)


def _human_labels(dataset) -> tuple[str, int, int]:
    """A person's boxes on samples 2..4 (one per painted shape, label 'person')."""
    import fiftyone as fo

    values = {}
    for sample in dataset.skip(2).limit(3):
        values[sample.id] = fo.Detections(
            detections=[
                fo.Detection(label="person", bounding_box=d.bounding_box)
                for d in sample[GT].detections
            ]
        )
    dataset.set_values("human", values, key_field="id")
    return "human", sum(len(v.detections) for v in values.values()), len(values)


def _other_tool_run(dataset) -> tuple[str, int, int]:
    """A field written by another tool, which records its own run under another key."""
    import fiftyone as fo
    import fiftyone.core.runs as fors

    sample = dataset.skip(3).first()
    sample["tool_boxes"] = fo.Detections(detections=[fo.Detection(label="tool")] * 2)
    sample.save()
    dataset.register_run("tool_run", fors.RunConfig(method="other.tool"))
    return "tool_boxes", 2, 1


def _ground_truth_clone(dataset) -> tuple[str, int, int]:
    dataset.clone_sample_field(GT, "gt_copy")
    counts = [len(d.detections) for d in dataset.values(GT) if d is not None]
    return "gt_copy", sum(counts), sum(1 for c in counts if c)


class _OtherModel:
    """A FiftyOne model of someone else: one box per image."""

    @staticmethod
    def make():
        import fiftyone as fo
        import fiftyone.core.models as fom

        class OtherModel(fom.Model):
            media_type = "image"
            has_logits = False
            has_embeddings = False
            ragged_batches = False
            transforms = None
            preprocess = False

            def predict(self, arg):
                return fo.Detections(detections=[fo.Detection(label="other")])

        return OtherModel()


def _other_model(dataset) -> tuple[str, int, int]:
    dataset.apply_model(_OtherModel.make(), label_field="other_model")
    return "other_model", len(dataset), len(dataset)


def _ntt_field_copy(dataset) -> tuple[str, int, int]:
    """A copy of one of our runs' fields (it carries our run marks, but no run owns it)."""
    import fiftyone_ntt.fiftyone as nf

    nf.segment(dataset.skip(4), "colours", "ntt_src", progress=False)
    dataset.clone_sample_field("ntt_src", "ntt_copy")
    counts = [len(d.detections) for d in dataset.values("ntt_copy") if d is not None]
    return "ntt_copy", sum(counts), sum(1 for c in counts if c)


def _added_to_our_run(dataset) -> tuple[str, int, int]:
    """Labels a person added to the field of one of our runs, on a sample it did not do."""
    import fiftyone as fo

    import fiftyone_ntt.fiftyone as nf

    nf.segment(dataset.skip(4), "colours", "ntt_mixed", progress=False)
    sample = dataset.skip(2).first()
    sample["ntt_mixed"] = fo.Detections(detections=[fo.Detection(label="person")])
    sample.save()
    return "ntt_mixed", 1, 1


#: (case, make the field: returns (field, labels, samples))
FOREIGN = [
    ("Detections field with a person's labels", _human_labels),
    ("field written by another tool's run", _other_tool_run),
    ("field cloned from the ground truth", _ground_truth_clone),
    ("field from apply_model of another model", _other_model),
    ("copy of a No Time to Train field", _ntt_field_copy),
    ("labels added to a No Time to Train field", _added_to_our_run),
]


def _segment(dataset, field, **kw):
    import fiftyone_ntt.fiftyone as nf

    return nf.segment(dataset, "colours", field, progress=False, **kw)


def _apply(dataset, field, **kw):
    from fiftyone_ntt.fiftyone import NTTModel, load_bank

    NTTModel(load_bank(dataset, "colours"), _fast()).apply(dataset, field, **kw)


def _queue(dataset, field, **kw):
    from fiftyone_ntt.fiftyone.runs.shards import queue_shards

    return queue_shards(dataset, "colours", field, 2, **kw)


#: (entry point, call(dataset, field, **overwrite))
ENTRY_POINTS = [("segment", _segment), ("NTTModel.apply", _apply), ("queue_shards", _queue)]


@pytest.fixture
def dataset(painted_dataset):
    import fiftyone_ntt.fiftyone as nf

    nf.build_bank(painted_dataset, GT, "colours", config=_fast())
    return painted_dataset


@pytest.mark.parametrize("entry,call", ENTRY_POINTS, ids=[e[0] for e in ENTRY_POINTS])
@pytest.mark.parametrize("case,make", FOREIGN, ids=[c[0] for c in FOREIGN])
def test_foreign_field_is_refused_then_replaced_with_overwrite(
    dataset, field_hash, case, make, entry, call
):
    field, labels, samples = make(dataset)
    before = field_hash(dataset, field)
    with pytest.raises(ValueError) as info:
        call(dataset, field)
    message = str(info.value)
    unit = "sample" if samples == 1 else "samples"
    for words in (repr(field), f"{labels} label", f"on {samples} {unit}", "overwrite"):
        assert words in message, (words, message)
    assert field_hash(dataset, field) == before, "the refused call changed the field"
    if entry == "NTTModel.apply" and field in dataset.list_runs():
        # apply_model records no run: the field of one of our runs stays segment()'s
        with pytest.raises(ValueError, match=r"segmentation run.*segment\(\)"):
            call(dataset, field, overwrite=True)
        assert field_hash(dataset, field) == before
        return
    call(dataset, field, overwrite=True)
    if entry != "queue_shards":  # queueing writes nothing; the workers would
        assert field_hash(dataset, field) != before


@pytest.mark.parametrize("case,make", FOREIGN, ids=[c[0] for c in FOREIGN])
def test_segment_form_says_so_before_the_run(dataset, case, make):
    """The *Segment* form shows the run's own message on the output field, and accepts the
    field once *Overwrite* is ticked."""
    from fiftyone.operators.executor import _parse_ctx, resolve_type
    from fiftyone.operators.registry import OperatorRegistry

    from fiftyone_ntt.fiftyone.runs.output_field import foreign_labels

    field, _, _ = make(dataset)
    expected = foreign_labels(dataset, field)
    assert expected

    def form(**params):
        request = _parse_ctx(
            dataset=dataset, params={"bank": "colours", "out_field": field, **params}
        )
        uri = f"{PLUGIN}/ntt_segment"
        prop = asyncio.run(resolve_type(OperatorRegistry(), uri, request)).to_json()
        return prop["type"]["properties"]["out_field"]

    refused = form()
    assert refused["invalid"] is True and refused["error_message"] == expected
    assert not form(overwrite=True).get("invalid")


def _declared_empty(dataset) -> str:
    import fiftyone as fo

    dataset.add_sample_field("empty", fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections)
    return "empty"


def _empty_detections(dataset) -> str:
    import fiftyone as fo

    dataset.set_values("blank", [fo.Detections() for _ in range(len(dataset))])
    return "blank"


#: (case, make the field): fields that hold no label are not anyone's data
NOT_FOREIGN = [
    ("declared Detections field without values", _declared_empty),
    ("field of empty Detections only", _empty_detections),
]


@pytest.mark.parametrize("case,make", NOT_FOREIGN, ids=[c[0] for c in NOT_FOREIGN])
def test_field_without_labels_is_written_without_overwrite(dataset, case, make):
    field = make(dataset)
    summary = _segment(dataset, field)
    assert summary["processed"] > 0 and dataset.count(f"{field}.detections") > 0


def _frame_labels(dataset) -> tuple[str, int, int]:
    """A person's boxes on frames 3 and 5 of the first video."""
    import fiftyone as fo

    sample = dataset.first()
    for number in (3, 5):
        sample.frames[number]["person"] = fo.Detections(detections=[fo.Detection(label="p")])
    sample.save()
    return "person", 2, 2


def _frame_gt_clone(dataset) -> tuple[str, int, int]:
    dataset.clone_frame_field(GT, "gt_copy")
    counts = [len(d.detections) for d in dataset.values(f"frames.{GT}", unwind=True) if d]
    return "gt_copy", sum(counts), sum(1 for c in counts if c)


#: (case, make the frame field: returns (field, labels, frames)) on a video dataset
FOREIGN_FRAMES = [
    ("frame field with a person's labels", _frame_labels),
    ("frame field cloned from the frame ground truth", _frame_gt_clone),
]


@pytest.fixture
def video_dataset(make_dataset, tmp_path, monkeypatch):
    from ntt_video import fill_video_dataset

    import fiftyone_ntt.fiftyone as nf

    monkeypatch.setenv("FIFTYONE_NTT_TEST_MODELS", "fake")
    monkeypatch.setenv("FIFTYONE_NTT_BANKS_DIR", str(tmp_path / "banks"))
    dataset = fill_video_dataset(make_dataset("ntt-video-user"), tmp_path)
    nf.build_bank(dataset, f"frames.{GT}", "squares")
    return dataset


@pytest.mark.parametrize("case,make", FOREIGN_FRAMES, ids=[c[0] for c in FOREIGN_FRAMES])
def test_foreign_frame_field_is_refused_then_replaced_with_overwrite(video_dataset, case, make):
    import fiftyone_ntt.fiftyone as nf

    dataset = video_dataset
    field, labels, frames = make(dataset)

    def snapshot():
        return [
            (f.get("_id"), f.get(field))
            for f in dataset._frame_collection.find({}, {field: 1}).sort("_id", 1)
        ]

    before = snapshot()
    with pytest.raises(ValueError) as info:
        nf.segment(dataset, "squares", field, progress=False)
    message = str(info.value)
    for words in (f"frames.{field}", f"{labels} labels", f"on {frames} frames", "overwrite"):
        assert words in message, (words, message)
    assert snapshot() == before
    nf.segment(dataset, "squares", field, overwrite=True, progress=False)
    assert snapshot() != before


def _count_cases() -> dict[str, int]:
    return {
        "foreign fields x entry points (refused, then overwritten)": len(FOREIGN)
        * len(ENTRY_POINTS),
        "foreign fields in the Segment form": len(FOREIGN),
        "fields without labels (written)": len(NOT_FOREIGN),
        "foreign frame fields (refused, then overwritten)": len(FOREIGN_FRAMES),
    }
