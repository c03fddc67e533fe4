"""Issue 10: the operators as a user meets them (forms that see a problem before running,
worded errors instead of tracebacks, readable outputs), through ``execute_operator`` and
``resolve_input`` on a real MongoDB with the fake models."""

from __future__ import annotations

import pytest
from test_ntt_operators import GT, _form, _run, _run_queue, _validation_error

pytestmark = pytest.mark.integration

OUT = "ntt_predictions"


def _props(form: dict) -> dict:
    return form["type"]["properties"]


def _texts(form: dict) -> str:
    """Every label, description and default of the form, as one string."""
    parts = []
    for name, prop in _props(form).items():
        view = prop.get("view") or {}
        for key in ("label", "description"):
            parts.append(str(view.get(key) or ""))
        parts.append(str(prop.get("default") or ""))
        parts.append(str(prop.get("error_message") or ""))
        parts.append(name)
    return "\n".join(parts)


def _two_banks(dataset):
    """Bank ``colours`` (the fixture's references) segmented into the default field, then a
    newer bank ``reds`` (other references): the form's defaults now meet another run."""
    _run("ntt_build_bank", dataset, {"gt_field": GT, "bank_key": "colours"})
    _run("ntt_segment", dataset, {"bank": "colours", "points_per_side": 16})
    _run("ntt_build_bank", dataset, {"gt_field": GT, "bank_key": "reds", "classes": ["red"]})


# --- 1. a newly built bank into the default output field ----------------------------------


def test_segment_form_offers_new_field_or_overwrite(painted_dataset, field_hash):
    dataset = painted_dataset
    _two_banks(dataset)
    before = field_hash(dataset, OUT)

    form = _props(_form("ntt_segment", dataset, {"bank": "reds"}))
    assert (
        "holds the predictions of a run with bank 'colours'"
        in (form["conflict_notice"]["view"]["description"])
    )
    assert form["on_conflict"]["default"] == "new_field"
    assert form["new_field"]["default"] == "ntt_predictions_reds_v2"

    # the defaults write to the proposed new field; the other run's predictions stay
    result = _run("ntt_segment", dataset, {"bank": "reds", "points_per_side": 16}).result
    assert "error" not in result
    assert result["out_field"] == "ntt_predictions_reds_v2" and result["processed"] == 7
    assert field_hash(dataset, OUT) == before
    assert dataset.get_run_info(OUT).config.bank_key == "colours"

    # or overwrite them
    result = _run(
        "ntt_segment", dataset, {"bank": "reds", "on_conflict": "overwrite", "points_per_side": 16}
    ).result
    assert result["out_field"] == OUT and result["processed"] == 7
    assert dataset.get_run_info(OUT).config.bank_key == "reds"


def test_segment_form_refuses_a_taken_new_field(painted_dataset):
    dataset = painted_dataset
    _two_banks(dataset)
    message = _validation_error(
        "ntt_segment", dataset, {"bank": "reds", "new_field": GT, "points_per_side": 16}
    )
    assert "Path: new_field" in message and "ground-truth" in message


def test_library_errors_are_reported_not_raised(painted_dataset, monkeypatch):
    """A condition only the run can see (here: the bank was built with other models than
    the ones now loaded) comes back as a worded error in the output, not as a traceback."""
    dataset = painted_dataset
    _run("ntt_build_bank", dataset, {"gt_field": GT, "bank_key": "colours"})
    _run("ntt_segment", dataset, {"bank": "colours", "points_per_side": 16})
    monkeypatch.setenv("FIFTYONE_NTT_TEST_MODELS", "tiny")
    result = _run("ntt_segment", dataset, {"bank": "colours", "points_per_side": 4}).result
    assert "rebuild the bank" in result["error"]
    assert "Traceback" not in result["error"]
    # the same error in a scheduled run fails the operation with that message
    _run(
        "ntt_segment",
        dataset,
        {"bank": "colours", "points_per_side": 4},
        request_delegation=True,
    )
    from fiftyone.operators.delegated import DelegatedOperationService

    results = DelegatedOperationService().execute_queued_operations(dataset_name=dataset.name)
    assert "rebuild the bank" in str(results[0].error)


# --- 3. skipped reference samples are explained; nothing to segment is refused ------------


def test_segment_form_counts_skipped_references(painted_dataset):
    dataset = painted_dataset
    _run("ntt_build_bank", dataset, {"gt_field": GT, "bank_key": "colours"})
    form = _props(_form("ntt_segment", dataset, {"bank": "colours"}))
    assert form["target_notice"]["view"]["label"] == (
        "8 sample(s) in the target, 2 hold the bank's references and are skipped: "
        "6 will be segmented"
    )
    form = _props(_form("ntt_segment", dataset, {"bank": "colours", "skip_references": False}))
    assert form["target_notice"]["view"]["label"] == (
        "8 sample(s) in the target: 8 will be segmented"
    )

    # a target holding only the reference samples: refused in the form, nothing created
    refs = dataset.limit(2).values("id")
    message = _validation_error(
        "ntt_segment",
        dataset,
        {"bank": "colours", "view_target": "SELECTED_SAMPLES"},
        selected=refs,
    )
    assert "0 will be segmented" in message and "Nothing to segment" in message
    assert not dataset.has_sample_field(OUT) and dataset.list_runs() == []


# --- 4. progress ---------------------------------------------------------------------------


def test_long_operators_report_per_sample_progress(painted_dataset):
    dataset = painted_dataset
    _run("ntt_build_bank", dataset, {"gt_field": GT, "bank_key": "colours"})
    _run("ntt_segment", dataset, {"bank": "colours", "points_per_side": 16})
    queued = _run(
        "ntt_evaluate",
        dataset,
        {"pred_field": OUT, "gt_field": GT, "eval_key": "ev"},
        request_delegation=True,
    )
    service, _ = _run_queue(dataset)
    op = service.get(queued.result["id"])
    assert op.status is not None and op.status.progress == pytest.approx(1.0)
    assert op.status.label == "samples evaluated: 6/6"

    # immediate runs: every sample is reported (the App logs it; delegated runs store it)
    seen = []
    import fiftyone.operators.executor as executor

    original = executor.ExecutionContext.set_progress

    def spy(self, progress=None, label=None):
        seen.append(label)
        return original(self, progress=progress, label=label)

    executor.ExecutionContext.set_progress = spy
    try:
        _run("ntt_segment", dataset, {"bank": "colours", "points_per_side": 16, "overwrite": True})
        _run("ntt_build_bank", dataset, {"gt_field": GT, "bank_key": "again"})
        _run("ntt_evaluate", dataset, {"pred_field": OUT, "gt_field": GT, "eval_key": "ev2"})
    finally:
        executor.ExecutionContext.set_progress = original
    for what in ("samples segmented", "references embedded", "samples evaluated"):
        labels = [s for s in seen if s and s.startswith(what)]
        assert len(labels) >= 3, (what, seen)


# --- 5. scheduled runs can be followed ----------------------------------------------------


def test_schedulable_forms_say_how_to_follow_a_run(painted_dataset, monkeypatch):
    import fiftyone as fo

    # where FiftyOne offers "Schedule" (`make app` sets it; tests/integration/test_scheduling.py
    # covers FiftyOne's default, which does not)
    monkeypatch.setattr(fo.config, "allow_legacy_orchestrators", True)
    dataset = painted_dataset
    _run("ntt_build_bank", dataset, {"gt_field": GT, "bank_key": "colours"})
    _run("ntt_segment", dataset, {"bank": "colours", "points_per_side": 16})
    for name, params in (
        ("ntt_build_bank", {"gt_field": GT, "bank_key": "more"}),
        ("ntt_segment", {"bank": "colours"}),
        ("ntt_evaluate", {"pred_field": OUT, "gt_field": GT}),
    ):
        text = _texts(_form(name, dataset, params))
        assert "fiftyone delegated launch" in text and "fiftyone delegated list" in text, name


def test_runs_operator_lists_delegated_operations(painted_dataset):
    dataset = painted_dataset
    _run("ntt_build_bank", dataset, {"gt_field": GT, "bank_key": "colours"})
    queued = _run(
        "ntt_segment", dataset, {"bank": "colours", "points_per_side": 16}, request_delegation=True
    )
    rows = _run("ntt_runs", dataset, {}).result["rows"]
    row = next(r for r in rows if r["id"] == str(queued.result["id"]))
    assert row["kind"] == "segment" and row["state"] == "queued" and row["bank"] == "colours"
    _run_queue(dataset)
    rows = _run("ntt_runs", dataset, {}).result["rows"]
    row = next(r for r in rows if r["id"] == str(queued.result["id"]))
    assert row["state"] == "completed" and row["progress"] == "6/6"
    assert any(r["id"] == f"run:{OUT}" for r in rows)


# --- 2. the demo's defaults lead somewhere -------------------------------------------------


def test_demo_defaults_segment_the_other_half(fo_session, monkeypatch, tmp_path):
    """On the demo dataset, every operator with its defaults: the references come from the
    saved view ``references`` (coins_top), so segment attempts coins_bottom and the cat."""
    import uuid

    from fiftyone_ntt.fiftyone.demo import build_demo_dataset

    monkeypatch.setenv("FIFTYONE_NTT_TEST_MODELS", "fake")
    monkeypatch.setenv("FIFTYONE_NTT_BANKS_DIR", str(tmp_path / "banks"))
    dataset = build_demo_dataset(name=f"ntt-demo-ops-{uuid.uuid4().hex[:6]}")
    try:
        assert "references" in dataset.list_saved_views()
        form = _props(_form("ntt_sample_references", dataset, {}))
        assert form["sample_from"]["default"] == "saved_view"
        _run("ntt_sample_references", dataset, {})
        tagged = dataset.match_labels(tags="ntt:ref", fields=GT).values("filepath")
        assert tagged and all(p.endswith("coins_top.png") for p in tagged)
        _run("ntt_build_bank", dataset, {})
        seg = _run("ntt_segment", dataset, {}).result
        assert "error" not in seg, seg
        assert seg["references_skipped"] == 1 and seg["processed"] == 2
        segmented = dataset.exists(OUT).values("filepath")
        assert sorted(p.rsplit("/", 1)[-1] for p in segmented) == [
            "chelsea.png",
            "coins_bottom.png",
        ]
        ev = _run("ntt_evaluate", dataset, {}).result
        assert "error" not in ev and ev["num_samples"] == 2
    finally:
        dataset.delete()


# --- 6. replacing references is asked for, and counted -----------------------------------


def test_sample_references_keeps_existing_references_by_default(painted_dataset):
    dataset = painted_dataset
    hand_tagged = dataset.count_label_tags()["ntt:ref"]
    params = {"gt_field": GT, "shots": 1, "classes": ["green"], "seed": 1}
    form = _props(_form("ntt_sample_references", dataset, params))
    assert form["replace"]["default"] is False and "replace_notice" not in form
    _run("ntt_sample_references", dataset, params)
    assert dataset.count_label_tags()["ntt:ref"] == hand_tagged + 1  # the three stay

    form = _props(_form("ntt_sample_references", dataset, {**params, "replace": True}))
    existing = dataset.count_label_tags()["ntt:ref"]
    assert form["replace_notice"]["view"]["label"] == (
        f"{existing} existing reference(s) will be untagged"
    )
    assert hand_tagged == 3  # (the fixture tagged three)


# --- 7. readable outputs -------------------------------------------------------------------


def _output(name, dataset, params, results) -> dict:
    import asyncio

    from fiftyone.operators.executor import _parse_ctx, resolve_type
    from fiftyone.operators.registry import OperatorRegistry
    from test_ntt_operators import _uri

    request = _parse_ctx(dataset=dataset, params=params)
    request.update(target="outputs", results=results)
    prop = asyncio.run(resolve_type(OperatorRegistry(), _uri(name), request))
    return prop.to_json()


def _views(schema: dict) -> list[str]:
    """Names of every view in an output schema."""
    import json

    return [v for v in json.dumps(schema).split('"name": "')[1:]]


def test_outputs_are_tables_and_plain_fields(painted_dataset):
    dataset = painted_dataset
    runs = [
        ("ntt_sample_references", {"gt_field": GT, "shots": 1, "replace": True}),
        ("ntt_build_bank", {"gt_field": GT, "bank_key": "colours"}),
        ("ntt_segment", {"bank": "colours", "points_per_side": 16}),
        ("ntt_evaluate", {"pred_field": OUT, "gt_field": GT, "eval_key": "ev", "exact_coco": True}),
        ("ntt_manage_banks", {"action": "list"}),
        ("ntt_manage_banks", {"action": "inspect", "bank": "colours"}),
        ("ntt_runs", {}),
        ("ntt_about", {}),
        ("ntt_manage_banks", {"action": "delete", "bank": "colours"}),
    ]
    for name, params in runs:
        results = _run(name, dataset, params).result
        assert "error" not in results, (name, results)
        schema = _output(name, dataset, params, results)
        views = " ".join(v.split('"', 1)[0] for v in _views(schema))
        assert "JSONView" not in views and "CodeView" not in views, (name, views)
        for key, prop in schema["type"]["properties"].items():
            if prop.get("view", {}).get("name") == "TableView":
                assert isinstance(results[key], list) and results[key], (name, key)
                columns = [c["key"] for c in prop["view"]["columns"]]
                assert all(set(columns) <= set(row) for row in results[key]), (name, key)
            elif key in results:
                assert not isinstance(results[key], (dict, list)), (name, key)
    # manage banks: only the sections of the chosen action
    listed = _output("ntt_manage_banks", dataset, {"action": "delete"}, {"action": "delete"})
    assert set(listed["type"]["properties"]) == {"message"}


def test_evaluate_output_has_the_pycocotools_table(painted_dataset):
    dataset = painted_dataset
    _run("ntt_build_bank", dataset, {"gt_field": GT, "bank_key": "colours"})
    _run("ntt_segment", dataset, {"bank": "colours", "points_per_side": 16})
    params = {"pred_field": OUT, "gt_field": GT, "eval_key": "ev", "exact_coco": True}
    results = _run("ntt_evaluate", dataset, params).result
    schema = _output("ntt_evaluate", dataset, params, results)["type"]["properties"]
    assert schema["coco_rows"]["view"]["name"] == "TableView"
    segm = next(r for r in results["coco_rows"] if r["iou"] == "segm")
    assert float(segm["AP"]) == pytest.approx(
        100 * results["coco"]["segm"]["stats"]["AP"], abs=0.06
    )


# --- 8. no silent overwrites or deletes --------------------------------------------------


def test_evaluate_asks_before_replacing_an_evaluation(painted_dataset):
    dataset = painted_dataset
    _run("ntt_build_bank", dataset, {"gt_field": GT, "bank_key": "colours"})
    _run("ntt_segment", dataset, {"bank": "colours", "points_per_side": 16})
    params = {"pred_field": OUT, "gt_field": GT, "eval_key": "ev"}
    _run("ntt_evaluate", dataset, params)
    message = _validation_error("ntt_evaluate", dataset, params)
    assert "'ev' exists already" in message and "Path: overwrite" in message
    again = _run("ntt_evaluate", dataset, {**params, "overwrite": True}).result
    assert again["eval_key"] == "ev"


def test_deleting_a_bank_lists_its_runs_and_waits_for_its_operations(painted_dataset):
    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    _run("ntt_build_bank", dataset, {"gt_field": GT, "bank_key": "colours"})
    _run("ntt_segment", dataset, {"bank": "colours", "points_per_side": 16})
    form = _props(_form("ntt_manage_banks", dataset, {"action": "delete", "bank": "colours"}))
    assert OUT in form["delete_warning"]["view"]["description"]

    _run(
        "ntt_segment",
        dataset,
        {"bank": "colours", "out_field": "later", "points_per_side": 16},
        request_delegation=True,
    )
    message = _validation_error(
        "ntt_manage_banks", dataset, {"action": "delete", "bank": "colours"}
    )
    assert "queued or running operations need bank 'colours'" in message
    assert [b["key"] for b in nf.list_banks(dataset)] == ["colours"]
    result = _run(
        "ntt_manage_banks", dataset, {"action": "delete", "bank": "colours", "force": True}
    ).result
    assert result["deleted"] == "colours" and result["runs_rows"][0]["out_field"] == OUT
    assert nf.list_banks(dataset) == []


# --- 9. test-model mode is visible; the device is checked ---------------------------------


def test_test_model_mode_is_visible(painted_dataset):
    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    about = _run("ntt_about", dataset, {}).result
    assert "predictions are meaningless" in about["models"] and "fake" in about["models"]
    assert "predictions are meaningless" in _texts(_form("ntt_about", dataset, {}))
    _run("ntt_build_bank", dataset, {"gt_field": GT, "bank_key": "colours"})
    for name, params in (
        ("ntt_build_bank", {"gt_field": GT, "bank_key": "more"}),
        ("ntt_segment", {"bank": "colours"}),
    ):
        assert "predictions are meaningless" in _texts(_form(name, dataset, params)), name
    bank = nf.get_bank_info(dataset, "colours")
    assert bank["test_models"] == "fake"
    assert "facebook/" not in str(bank["config"]["models"])


def test_device_field_is_checked(painted_dataset):
    dataset = painted_dataset
    message = _validation_error(
        "ntt_build_bank", dataset, {"gt_field": GT, "bank_key": "b", "device": "banana"}
    )
    assert "Path: device" in message and "'banana'" in message and "available here" in message
    message = _validation_error(
        "ntt_build_bank", dataset, {"gt_field": GT, "bank_key": "b", "device": "cuda:7"}
    )
    assert "Path: device" in message


# --- 10. small ones -------------------------------------------------------------------------


def test_small_form_frictions(painted_dataset, repo_root):
    import fiftyone.operators as foo

    dataset = painted_dataset
    # K = 0 is refused in words that fit
    message = _validation_error("ntt_sample_references", dataset, {"gt_field": GT, "shots": 0})
    assert "at least 1" in message and "greater than" not in message
    # one message for a class without references, no false "no label is tagged"
    message = _validation_error(
        "ntt_build_bank", dataset, {"gt_field": GT, "bank_key": "b", "classes": ["dog"]}
    )
    assert "['dog'] have no reference" in message and "no label of" not in message
    form = _props(_form("ntt_build_bank", dataset, {"gt_field": GT, "classes": ["dog"]}))
    assert not [k for k in form if k.endswith("_warning")]  # not repeated in a box
    # the same class picker in every form
    _run("ntt_build_bank", dataset, {"gt_field": GT, "bank_key": "colours"})
    _run("ntt_segment", dataset, {"bank": "colours", "points_per_side": 16})
    pickers = [
        _props(_form(name, dataset, params))["classes"]
        for name, params in (
            ("ntt_sample_references", {"gt_field": GT}),
            ("ntt_build_bank", {"gt_field": GT}),
            ("ntt_evaluate", {"pred_field": OUT, "gt_field": GT}),
        )
    ]
    assert {p["view"]["name"] for p in pickers} == {"AutocompleteView"}
    assert all(p["type"]["name"] == "List" for p in pickers)
    assert all(
        {"red", "green", "blue"} <= {c["value"] for c in p["view"]["choices"]} for p in pickers
    )
    # workflow order in the operator browser, which sorts by the first character of the
    # description (its label's when there is none); about has an icon
    ops = [
        op
        for op in foo.list_operators()
        if op.plugin_name.startswith("@fiftyone-ntt") and not isinstance(op, foo.Panel)
    ]  # the panel opens from the "+" menu, not the operator browser
    first = [ord((op.config.description or op.config.label)[0]) for op in ops]
    names = [op.name for _, op in sorted(zip(first, ops), key=lambda pair: pair[0])]
    assert names == [
        "ntt_tag_references",
        "ntt_sample_references",
        "ntt_build_bank",
        "ntt_segment",
        "ntt_evaluate",
        "ntt_class_thresholds",
        "ntt_reference_audit",
        "ntt_review_queue",
        "ntt_map_predictions",
        "ntt_similar_predictions",
        "ntt_manage_banks",
        "ntt_runs",
        "ntt_about",
    ]
    assert all(op.config.icon for op in ops)
    # labels number the steps as the descriptions do (About, last, has none)
    for op in ops:
        step = (op.config.description or "")[0]
        assert op.config.label.startswith(f"NTT {step} · " if step.isdigit() else "NTT · ")
    # the bank picker of manage banks describes what it does there
    form = _props(_form("ntt_manage_banks", dataset, {"action": "delete"}))
    assert "delete" in form["bank"]["view"]["description"].lower()
    assert "segmented" not in form["bank"]["view"]["description"]
