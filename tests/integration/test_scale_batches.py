"""Batches of images through ``segment`` and ``apply_model`` (issue 13 §2), and the progress
bar of ``segment`` (issue 10 item 4), on a real MongoDB with the fake models."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

GT = "ground_truth"


def _dets(dataset, field):
    return {
        sample.id: None
        if sample[field] is None
        else [
            (d.label, d.confidence, d.bounding_box, d.mask.tobytes())
            for d in sample[field].detections
        ]
        for sample in dataset.select_fields(field)
    }


@pytest.fixture
def banked(painted_dataset):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.config import NTTConfig

    nf.build_bank(painted_dataset, GT, "colours", config=NTTConfig(points_per_side=8))
    return painted_dataset


def test_segment_in_batches_equals_one_image_at_a_time(banked):
    import fiftyone_ntt.fiftyone as nf

    dataset = banked
    one = nf.segment(dataset, "colours", "one", batch_images=1, progress=False)
    three = nf.segment(dataset, "colours", "three", batch_images=3, prefetch=0, progress=False)
    assert one["processed"] == three["processed"] == len(dataset) - 2
    assert _dets(dataset, "three") == _dets(dataset, "one")
    assert any(v for v in _dets(dataset, "one").values())


def test_apply_model_with_batches_equals_segment(banked):
    import fiftyone_ntt.fiftyone as nf

    dataset = banked
    nf.segment(dataset, "colours", "ntt", skip_references=False, progress=False)
    model = nf.NTTModel(nf.load_bank(dataset, "colours"))
    dataset.apply_model(model, label_field="applied", batch_size=3)
    assert _dets(dataset, "applied") == _dets(dataset, "ntt")


def test_segment_shows_a_progress_bar_unless_told_not_to(banked, capsys, monkeypatch):
    import fiftyone as fo

    import fiftyone_ntt.fiftyone as nf

    dataset = banked
    monkeypatch.setattr(fo.config, "show_progress_bars", True)
    nf.segment(dataset, "colours", "bar")
    err = capsys.readouterr().err
    assert "segmenting bar" in err and f"{len(dataset) - 2}/{len(dataset) - 2}" in err
    nf.segment(dataset, "colours", "quiet", progress=False)
    assert "segmenting" not in capsys.readouterr().err
    calls = []
    nf.segment(dataset, "colours", "called", progress=lambda d, t: calls.append((d, t)))
    assert calls and calls[-1] == (len(dataset) - 2, len(dataset) - 2)


def test_segment_operator_splits_into_delegated_tasks(banked):
    """ "Split into N delegated tasks": the operator queues N shard operations (immediately,
    itself not delegated); run by a worker they write exactly what an unsplit run writes."""
    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService

    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.runs.record import run_state

    dataset = banked
    nf.segment(dataset, "colours", "whole", progress=False)
    result = foo.execute_operator(
        "@fiftyone-ntt/no-time-to-train/ntt_segment",
        dataset=dataset,
        params={"bank": "colours", "out_field": "split", "num_shards": 3, "batch_size": 1},
    )
    assert not result.delegated and result.result["queued"] == 3, result.result
    service = DelegatedOperationService()
    queued = service.list_operations(dataset_name=dataset.name)
    shards = sorted(op.context.request_params["params"]["shard"] for op in queued)
    assert shards == [[0, 3], [1, 3], [2, 3]]
    assert "shard 1/3" in " ".join(op.label for op in queued)
    for done in service.execute_queued_operations(dataset_name=dataset.name):
        assert done.error is None, done.error
    state = run_state(dataset, "split")
    assert state["status"] == "completed" and state["num_shards"] == 3, state
    dataset.reload()
    assert _dets(dataset, "split") == _dets(dataset, "whole")
