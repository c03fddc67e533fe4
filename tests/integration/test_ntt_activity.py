"""``fiftyone_ntt.fiftyone.app.activity``: segmentation runs, evaluations and this plugin's
delegated operations as one list (for ``ntt_runs`` and the panel), on a real MongoDB."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

PLUGIN = "@fiftyone-ntt/no-time-to-train"
GT = "ground_truth"


def _queue(name, dataset, params, **ctx):
    import fiftyone.operators as foo

    result = foo.execute_operator(
        f"{PLUGIN}/{name}", dataset=dataset, params=params, request_delegation=True, **ctx
    )
    result.raise_exceptions()
    return str(result.result["id"])


def _by_id(rows):
    return {row["id"]: row for row in rows}


def test_activity_lists_runs_evaluations_and_delegated_operations(painted_dataset):
    from fiftyone.operators.delegated import DelegatedOperationService

    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.app.activity import STATES, list_activity

    dataset = painted_dataset
    nf.build_bank(dataset, GT, "colours")
    assert list_activity(dataset) == []

    op_id = _queue(
        "ntt_segment", dataset, {"bank": "colours", "out_field": "ntt", "points_per_side": 16}
    )
    rows = _by_id(list_activity(dataset))
    queued = rows[op_id]
    assert queued["source"] == "delegated" and queued["kind"] == "segment"
    assert queued["state"] == "queued" and queued["bank"] == "colours"
    assert queued["out_field"] == "ntt" and queued["error"] is None

    DelegatedOperationService().execute_queued_operations(dataset_name=dataset.name)
    nf.evaluate(dataset, "ntt", "ev", gt_field=GT)
    rows = _by_id(list_activity(dataset))
    done = rows[op_id]
    assert done["state"] == "completed" and (done["done"], done["total"]) == (6, 6)
    run = rows["run:ntt"]
    assert run["kind"] == "segment" and run["state"] == "completed"
    assert (run["done"], run["total"]) == (6, 6) and run["bank"] == "colours"
    evaluation = rows["evaluation:ev"]
    assert evaluation["kind"] == "evaluate" and evaluation["bank"] == "colours"
    for row in rows.values():
        assert row["state"] in STATES and row["started"]


def test_failed_operation_reports_its_error(painted_dataset):
    from fiftyone.operators.delegated import DelegatedOperationService

    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.app.activity import list_activity

    dataset = painted_dataset
    nf.build_bank(dataset, GT, "colours")
    op_id = _queue("ntt_segment", dataset, {"bank": "colours", "out_field": "ntt"})
    nf.delete_bank(dataset, "colours")  # the queued operation now needs a missing bank
    DelegatedOperationService().execute_queued_operations(dataset_name=dataset.name)
    row = _by_id(list_activity(dataset))[op_id]
    assert row["state"] == "failed"
    assert "memory bank" in row["error"] and "Traceback" not in row["error"]


def test_mark_failed_ends_an_operation_stuck_in_running(painted_dataset):
    from fiftyone.operators.delegated import DelegatedOperationService

    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.app.activity import list_activity, mark_failed

    dataset = painted_dataset
    nf.build_bank(dataset, GT, "colours")
    op_id = _queue("ntt_build_bank", dataset, {"gt_field": GT, "bank_key": "again"})
    service = DelegatedOperationService()
    service.set_running(service.get(__import__("bson").ObjectId(op_id)).id)  # a killed worker
    assert _by_id(list_activity(dataset))[op_id]["state"] == "running"

    row = mark_failed(op_id)
    assert row["state"] == "failed" and "marked failed" in row["error"]
    assert _by_id(list_activity(dataset))[op_id]["state"] == "failed"
    with pytest.raises(ValueError, match="already failed"):
        mark_failed(op_id)
    with pytest.raises(KeyError, match="fiftyone delegated list"):
        mark_failed("0123456789abcdef01234567")
