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


def test_schedulable_forms_say_how_to_follow_a_run(painted_dataset):
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
