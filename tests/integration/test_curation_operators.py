"""The issue-23 operators (class thresholds, reference audit, review queue) through
FiftyOne's ``execute_operator`` / ``resolve_input`` on a real MongoDB with the fake models:
forms that refuse bad input before running, readable tables."""

from __future__ import annotations

import pytest
from test_ntt_operators import GT, _form, _run, _validation_error

pytestmark = pytest.mark.integration


def _segmented(dataset, keep_features=False):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.config import NTTConfig

    config = NTTConfig(points_per_side=16, keep_features=keep_features)
    nf.build_bank(dataset, GT, "colours", config=config)
    nf.segment(dataset, "colours", "ntt")
    _run("ntt_evaluate", dataset, {"pred_field": "ntt", "gt_field": GT, "eval_key": "ev"})


def test_class_thresholds_operator_shows_the_table_and_saves_a_version(painted_dataset):
    from fiftyone_ntt.fiftyone.banks.index import bank_versions

    dataset = painted_dataset
    _segmented(dataset)
    result = _run(
        "ntt_class_thresholds", dataset, {"bank": "colours", "eval_key": "ev", "save": True}
    ).result
    assert "error" not in result, result
    rows = {r["class_name"]: r for r in result["table"]}
    assert rows["blue"]["precision"] == 1.0 and rows["blue"]["kept"] < rows["blue"]["total"]
    assert result["saved"] == "saved as version 2 of 'colours'"
    assert bank_versions(dataset, "colours")[-1]["diff"]["text"] == "thresholds from eval 'ev'"


def test_class_thresholds_form_refuses_bad_input(painted_dataset):
    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    _segmented(dataset)
    nf.build_bank(dataset, GT, "reds", classes=["red"])
    # an evaluation of predictions made with another bank
    message = _validation_error("ntt_class_thresholds", dataset, {"bank": "reds", "eval_key": "ev"})
    assert "Path: eval_key" in message and "segmented with bank 'colours', not 'reds'" in message
    # a target precision outside (0, 1]
    params = {"bank": "colours", "eval_key": "ev", "objective": "precision"}
    message = _validation_error(
        "ntt_class_thresholds", dataset, {**params, "target_precision": 1.5}
    )
    assert "Path: target_precision" in message and "(0, 1]" in message
    form = _form("ntt_class_thresholds", dataset, {"source": "decisions"})
    assert "pred_field" in form["type"]["properties"]


def test_reference_audit_and_review_queue_operators(painted_dataset):
    dataset = painted_dataset
    _segmented(dataset, keep_features=True)
    audit = _run("ntt_reference_audit", dataset, {"bank": "colours", "eval_key": "ev"}).result
    assert "error" not in audit, audit
    assert len(audit["table"]) == 3 and "audited 3 reference(s)" in audit["message"]
    assert set(audit["table"][0]) >= {"reference_id", "nearest_fp", "harm"}

    queue = _run("ntt_review_queue", dataset, {"bank": "colours", "pred_field": "ntt"}).result
    assert "error" not in queue, queue
    assert queue["view_name"] == "to review" and queue["queued"] == dataset.count("ntt.detections")
    assert len(dataset.load_saved_view("to review")) == queue["queued"]
