"""The plugin's operators through ``fiftyone.operators.execute_operator``, immediate and
delegated, on a real MongoDB-backed painted dataset with the fake models."""

from __future__ import annotations

import asyncio

import pytest

pytestmark = pytest.mark.integration

PLUGIN = "@fiftyone-ntt/no-time-to-train"
GT = "ground_truth"


def _uri(name: str) -> str:
    return f"{PLUGIN}/{name}"


def _run(name, dataset, params=None, **ctx):
    import fiftyone.operators as foo

    result = foo.execute_operator(_uri(name), dataset=dataset, params=params or {}, **ctx)
    result.raise_exceptions()
    return result


def _validation_error(name, dataset, params=None, **ctx) -> str:
    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionError

    with pytest.raises(ExecutionError) as info:
        foo.execute_operator(_uri(name), dataset=dataset, params=params or {}, **ctx)
    message = str(info.value)
    assert message.startswith("Validation error"), message
    return message


def _form(name, dataset, params=None, **ctx):
    """The input form as the App gets it (``resolve_input`` through FiftyOne)."""
    from fiftyone.operators.executor import _parse_ctx, resolve_type
    from fiftyone.operators.registry import OperatorRegistry

    request = _parse_ctx(dataset=dataset, params=params or {}, **ctx)
    prop = asyncio.run(resolve_type(OperatorRegistry(), _uri(name), request))
    return prop.to_json()


def _run_queue(dataset):
    from fiftyone.operators.delegated import DelegatedOperationService

    service = DelegatedOperationService()
    results = service.execute_queued_operations(dataset_name=dataset.name)
    for result in results:
        assert result is not None and not result.error, result.error if result else None
    return service, results


def _triggered(result) -> list[str]:
    """Operators the execution asked the App to run (e.g. ``reload_dataset``)."""
    return [r["operator_uri"] for r in result.executor.to_json()["requests"]]


def _build_params(**extra):
    return {"gt_field": GT, "bank_key": "colours", "tag": "ntt:ref", "preset": "default", **extra}


def _segment_params(**extra):
    return {"bank": "colours", "out_field": "ntt", "points_per_side": 16, **extra}


def test_all_operators_are_listed_and_registered(fo_session, repo_root):
    import fiftyone.operators as foo
    import yaml

    manifest = yaml.safe_load((repo_root / "fiftyone.yml").read_text())
    expected = {
        "ntt_about",
        "ntt_tag_references",
        "ntt_sample_references",
        "ntt_build_bank",
        "ntt_segment",
        "ntt_evaluate",
        "ntt_manage_banks",
        "ntt_runs",
        "ntt_map_predictions",
        "ntt_similar_predictions",
        "ntt_class_thresholds",
        "ntt_reference_audit",
        "ntt_review_queue",
    }
    assert set(manifest["operators"]) == expected
    ops = {op.name: op for op in foo.list_operators() if op.plugin_name == PLUGIN}
    assert set(ops) == expected | set(manifest["panels"])  # panels are operators too
    for name in ("ntt_build_bank", "ntt_segment", "ntt_evaluate"):
        config = ops[name].config
        assert config.allow_delegated_execution and config.default_choice_to_delegated
        assert config.allow_immediate_execution and not config.unlisted
        assert config.label.startswith("NTT ") and config.icon


def test_immediate_workflow(painted_dataset, field_hash):
    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset

    # 1. tag one more reference through the selection, then untag it
    sample = dataset.skip(2).first()
    selected = [{"label_id": sample[GT].detections[1].id, "sample_id": sample.id, "field": GT}]
    result = _run("ntt_tag_references", dataset, {"action": "tag"}, selected_labels=selected)
    assert result.result == {"action": "tag", "tag": "ntt:ref", "count": 1}
    assert dataset.count_label_tags()["ntt:ref"] == 4
    _run("ntt_tag_references", dataset, {"action": "untag"}, selected_labels=selected)
    assert dataset.count_label_tags()["ntt:ref"] == 3
    assert "reload_dataset" in _triggered(result)

    # building and segmenting leave the ground truth as it is (evaluating does not: FiftyOne
    # writes its per-label <eval_key> attributes into it)
    gt_before = field_hash(dataset, GT)

    # 2. build
    built = _run("ntt_build_bank", dataset, _build_params()).result
    assert built["shots"] == {"red": 1, "green": 1, "blue": 1}
    assert built["size_bytes"] > 0 and built["size"].endswith("KB")
    # the operator's store is the library's index
    assert [b["key"] for b in nf.list_banks(dataset)] == ["colours"]

    # 3. segment (immediate: the App is told to reload)
    seg = _run("ntt_segment", dataset, _segment_params())
    assert seg.result["processed"] == 6 and seg.result["failed"] == 0
    assert "reload_dataset" in _triggered(seg)
    assert dataset.exists("ntt").count() == 6
    assert nf.list_ntt_runs(dataset) == ["ntt"]
    assert field_hash(dataset, GT) == gt_before

    # 4. evaluate, references excluded, exact COCO protocol too
    ev = _run(
        "ntt_evaluate",
        dataset,
        {"pred_field": "ntt", "gt_field": GT, "eval_key": "ev", "exact_coco": True},
    ).result
    ref_ids = dataset.limit(2).values("id")
    expected = dataset.exclude(ref_ids).evaluate_detections(
        "ntt", gt_field=GT, eval_key="direct", method="coco", use_masks=True, compute_mAP=True
    )
    assert ev["num_samples"] == 6
    assert ev["mAP"] == pytest.approx(expected.mAP())
    assert ev["tp"] == dataset.sum("direct_tp") and ev["fp"] == dataset.sum("direct_fp")
    assert [r["iou"] for r in ev["coco_rows"]] == ["bbox", "segm"]
    assert ev["coco"]["segm"]["stats"]["AP"] > 0
    assert "ev" in dataset.list_evaluations()

    # 5. manage banks
    table = _form("ntt_manage_banks", dataset, {"action": "list"})["type"]["properties"]
    table = table["banks_table"]["default"]
    assert (
        "| colours | red: 1, green: 1, blue: 1 | fake RegionProposer (testing) + fake ColorEncoder (testing) |"
        in table
    )
    listed = _run("ntt_manage_banks", dataset, {"action": "list"}).result
    assert [b["key"] for b in listed["banks"]] == ["colours"]
    shown = _run("ntt_manage_banks", dataset, {"action": "inspect", "bank": "colours"}).result
    assert shown["bank"]["fingerprint"] == built["fingerprint"]
    deleted = _run("ntt_manage_banks", dataset, {"action": "delete", "bank": "colours"}).result
    assert deleted["deleted"] == "colours" and nf.list_banks(dataset) == []


def test_delegated_build_segment_evaluate(painted_dataset):
    from fiftyone.operators.executor import ExecutionRunState

    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    queued = _run("ntt_build_bank", dataset, _build_params(), request_delegation=True)
    assert queued.delegated
    assert nf.list_banks(dataset) == []  # nothing ran yet
    service, _ = _run_queue(dataset)
    assert [b["key"] for b in nf.list_banks(dataset)] == ["colours"]

    # segment the current view only (selected samples), delegated
    view = dataset.skip(2).limit(3)
    queued = _run(
        "ntt_segment",
        dataset,
        _segment_params(),
        view=view,
        request_delegation=True,
    )
    op_id = queued.result["id"]
    assert dataset.exists("ntt").count() == 0
    _run_queue(dataset)
    op = service.get(op_id)
    assert op.run_state == ExecutionRunState.COMPLETED
    assert op.result.result["processed"] == 3
    assert op.status is not None and op.status.progress == pytest.approx(1.0)
    assert sorted(dataset.exists("ntt").values("id")) == sorted(view.values("id"))

    # selected samples as target
    selected = dataset.skip(5).values("id")
    _run(
        "ntt_segment",
        dataset,
        _segment_params(view_target="SELECTED_SAMPLES"),
        selected=selected,
        request_delegation=True,
    )
    _run_queue(dataset)
    assert dataset.exists("ntt").count() == 6

    _run(
        "ntt_evaluate",
        dataset,
        {"pred_field": "ntt", "gt_field": GT, "eval_key": "ev"},
        request_delegation=True,
    )
    _run_queue(dataset)
    assert "ev" in dataset.list_evaluations()


def test_segment_operator_resumes_after_interruption(painted_dataset, monkeypatch):
    from fiftyone.operators.executor import ExecutionError

    import fiftyone_ntt.fiftyone.dataset.model_cache as ntt_models
    from fiftyone_ntt.testing import ColorEncoder, RegionProposer

    dataset = painted_dataset
    _run("ntt_build_bank", dataset, _build_params())

    calls = {"n": 0, "fail_after": 2}

    class Flaky(RegionProposer):
        def embed(self, pixels):
            if calls["fail_after"] is not None and calls["n"] >= calls["fail_after"]:
                raise RuntimeError("simulated crash")
            calls["n"] += 1
            return super().embed(pixels)

    monkeypatch.setattr(ntt_models, "get_models", lambda *a, **k: (ColorEncoder(), Flaky()))
    with pytest.raises(ExecutionError, match="simulated crash"):
        _run("ntt_segment", dataset, _segment_params(batch_size=1))
    assert dataset.exists("ntt").count() == 2

    calls.update(n=0, fail_after=None)
    result = _run("ntt_segment", dataset, _segment_params()).result
    assert calls["n"] == 4 and result["processed"] == 4 and result["done_before"] == 2
    assert dataset.exists("ntt").count() == 6


def test_forms_validate_before_running(painted_dataset):
    import fiftyone as fo

    dataset = painted_dataset
    dataset.add_sample_field("note", fo.StringField)

    # build: wrong field type, unknown field, classes without references, no references
    message = _validation_error("ntt_build_bank", dataset, _build_params(gt_field="note"))
    assert "Path: gt_field" in message and "not Detections" in message
    message = _validation_error("ntt_build_bank", dataset, _build_params(classes=["red", "purple"]))
    assert "purple" in message and "no reference" in message
    dataset.untag_labels("ntt:ref")
    message = _validation_error("ntt_build_bank", dataset, _build_params())
    assert "no label" in message and "ntt:ref" in message
    # the App gets the same message under the field, marked invalid (once: no second box)
    form = _form("ntt_build_bank", dataset, _build_params())["type"]["properties"]
    assert form["gt_field"]["invalid"] and "no label" in form["gt_field"]["error_message"]
    assert "gt_field_warning" not in form

    # segment: no bank yet
    message = _validation_error("ntt_segment", dataset, _segment_params())
    assert "no memory bank" in message

    dataset.select_labels(ids=[dataset.first()[GT].detections[0].id]).tag_labels("ntt:ref")
    _run("ntt_build_bank", dataset, _build_params())
    # segment: output = ground truth, output of another type, bad bank key
    message = _validation_error("ntt_segment", dataset, _segment_params(out_field=GT))
    assert "Path: out_field" in message and "ground-truth field" in message
    message = _validation_error("ntt_segment", dataset, _segment_params(out_field="note"))
    assert "not Detections" in message
    message = _validation_error("ntt_segment", dataset, _segment_params(bank="nope"))
    assert "Path: bank" in message

    # evaluate: same field twice, bad key
    message = _validation_error(
        "ntt_evaluate", dataset, {"pred_field": GT, "gt_field": GT, "eval_key": "ev"}
    )
    assert "must differ" in message
    message = _validation_error("ntt_tag_references", dataset, {"action": "tag"})
    assert "No label is selected" in message


def test_sample_references_form_counts_candidates(painted_dataset):
    dataset = painted_dataset
    params = {"gt_field": GT, "shots": 2, "seed": 3, "one_per_image": True, "replace": True}
    form = _form("ntt_sample_references", dataset, params)
    table = form["type"]["properties"]["candidates_table"]["default"]  # a markdown view
    assert "| red | 5 |" in table and "| green | 4 |" in table and "| blue | 5 |" in table

    result = _run("ntt_sample_references", dataset, params).result
    assert result["per_class"] == {"red": 2, "green": 2, "blue": 2}
    assert dataset.count_label_tags() == {"ntt:ref": 6}
    again = _run("ntt_sample_references", dataset, params).result
    assert sorted(again["label_ids"]) == sorted(result["label_ids"])

    only = _run("ntt_sample_references", dataset, {**params, "classes": ["blue"]}).result
    assert only["per_class"] == {"blue": 2}


def test_workflow_with_tiny_transformers_models(painted_dataset, monkeypatch):
    """The same operators on the real model code paths (tiny random-weight DINOv2 and
    SAM 2 from transformers): box-only references get SAM 2 masks, predictions are written
    in FiftyOne's convention. The masks are meaningless (random weights)."""
    import numpy as np

    monkeypatch.setenv("FIFTYONE_NTT_TEST_MODELS", "tiny")
    dataset = painted_dataset
    reference = dataset.first()
    reference[GT].detections[0].mask = None  # a box-only reference
    reference.save()

    built = _run("ntt_build_bank", dataset, _build_params(bank_key="tiny")).result
    assert built["generated_masks"] == 1 and built["num_references"] == 3
    view = dataset.skip(2).limit(2)
    result = _run(
        "ntt_segment",
        dataset,
        {"bank": "tiny", "out_field": "tiny", "points_per_side": 4, "max_detections": 5},
        view=view,
    ).result
    assert result["processed"] == 2 and result["failed"] == 0
    config = dataset.get_run_info("tiny").config
    assert config.models["proposer"]["source"].startswith("tiny-random-sam2")
    assert config.models["encoder"]["source"].startswith("tiny-random-dinov2")
    for sample in view.select_fields("tiny"):
        assert sample.tiny is not None
        assert len(sample.tiny.detections) <= 5
        for det in sample.tiny.detections:
            _, _, w, h = det.bounding_box
            assert det.mask.shape == (round(h * 96), round(w * 128))
            assert det.label in {"red", "green", "blue"} and np.isfinite(det.confidence)
