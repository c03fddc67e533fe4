"""Issue 20 (items 4, 5, 8, 14): the panel's curation buttons on selected patches, the
selection shown and cleared after an action, *Resume* with the interrupted run's own
settings, and *Cancel* of a live run (which stops at the next sample and keeps what it
wrote). Driven through the panel's callbacks (``PanelDriver``) on a real MongoDB-backed
painted dataset with the fake models."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

sys.path.insert(0, str(Path(__file__).resolve().parent))

from panel_driver import PanelDriver  # noqa: E402
from test_ntt_operators import _form  # noqa: E402

GT = "ground_truth"
BANK = "ground_truth-refs"
PRED = "ntt_predictions"
REF, NEG = "ntt:ref", "ntt:neg"
SEGMENT = "@fiftyone-ntt/no-time-to-train/ntt_segment"


@pytest.fixture
def panel(painted_dataset):
    driver = PanelDriver(painted_dataset)
    driver.call("on_load")
    return driver


def _segmented(panel, **settings):
    import fiftyone_ntt.fiftyone as nf

    panel.call("build")
    nf.segment(panel.dataset, BANK, PRED, points_per_side=16, **settings)
    panel.call("on_refresh")


def _pred_tags(dataset, label_ids):
    """``{label_id: tags}`` of prediction labels, read from the dataset."""
    out = {}
    for dets in dataset.values(f"{PRED}.detections"):
        for det in dets or []:
            if det.id in label_ids:
                out[det.id] = sorted(det.tags)
    return out


# --- item 4: accept / reject / untag on selected patches --------------------------------


def test_reject_and_accept_selected_evaluation_patches(panel, field_hash):
    from fiftyone import ViewField as F

    dataset = panel.dataset
    _segmented(panel)
    panel.call("run_evaluate", row=0)
    panel.call("run_open_eval", row=0)
    view = panel.view
    assert view._is_patches and set(view.distinct("type")) >= {"tp", "fp"}
    before = field_hash(dataset, GT)

    fp = view.match(F("type") == "fp").first()
    fp_ids = [d.id for d in fp[PRED].detections]
    panel.selected = [fp.id]  # a patch ticked in the grid: no selected label
    panel.call("reject")
    assert panel.state["message_variant"] == "success", panel.notice()
    assert "Rejected 1 prediction(s)" in panel.notice()
    assert _pred_tags(dataset, fp_ids) == {fp_ids[0]: [NEG]}

    tp = view.match(F("type") == "tp").first()
    tp_ids = [d.id for d in tp[PRED].detections]
    panel.selected = [tp.id]
    panel.call("accept")
    assert "Accepted 1 prediction(s)" in panel.notice()
    # the TP patch holds the ground truth too: accept applies to the prediction only
    assert "left alone" not in panel.notice()
    assert _pred_tags(dataset, tp_ids) == {tp_ids[0]: [REF]}
    assert _pred_tags(dataset, fp_ids) == {fp_ids[0]: [NEG]}
    assert field_hash(dataset, GT) == before


def test_untag_selected_reference_patch(panel):
    dataset = panel.dataset
    panel.call("show_refs")
    assert panel.view._is_patches and len(panel.view) == 3
    patch = panel.view.first()
    panel.selected = [patch.id]
    panel.call("untag")
    assert panel.state["message_variant"] == "success", panel.notice()
    assert dataset.count_label_tags(label_fields=[GT]) == {REF: 2}
    untagged = [d for d in dataset[patch.sample_id][GT].detections if d.id == patch[GT].id]
    assert untagged and REF not in untagged[0].tags


def test_accept_selected_patches_of_a_prediction_field(panel):
    dataset = panel.dataset
    _segmented(panel)
    panel.view = dataset.to_patches(PRED)
    ids = panel.view.values("id")[:2]
    labels = panel.view.select(ids).values(f"{PRED}.id")
    panel.selected = ids
    panel.call("on_change_selected")
    assert panel.state["selection"] == {"labels": 2, "predictions": 2}
    panel.call("accept")
    assert "Accepted 2 prediction(s)" in panel.notice()
    assert _pred_tags(dataset, labels) == {i: [REF] for i in labels}


# --- item 8: the selection is shown, cleared after an action, and can be cleared ----------


def _pred_labels(dataset, n):
    return [
        {"label_id": d.id, "sample_id": s.id, "field": PRED}
        for s in dataset.select_fields(PRED).exists(PRED)
        for d in s[PRED].detections
    ][:n]


def test_selection_is_cleared_after_an_action(panel):
    dataset = panel.dataset
    _segmented(panel)
    first, second = _pred_labels(dataset, 2)

    panel.selected_labels = [first]
    panel.call("reject")
    assert "clear_selected_labels" in panel.triggered()
    assert panel.state["selection"] == {"labels": 0, "predictions": 0}
    # the App adds the next click to what is still selected
    panel.selected_labels = [*panel.selected_labels, second]
    panel.call("accept")
    assert "Accepted 1 prediction(s)" in panel.notice()
    tags = _pred_tags(dataset, {first["label_id"], second["label_id"]})
    assert tags == {first["label_id"]: [NEG], second["label_id"]: [REF]}


def test_selection_is_shown_with_a_clear_button(panel):
    dataset = panel.dataset
    _segmented(panel)
    gt = dataset.first()[GT].detections[0]
    gt_label = {"label_id": gt.id, "sample_id": dataset.first().id, "field": GT}
    panel.selected_labels = [*_pred_labels(dataset, 2), gt_label]
    panel.call("on_change_selected_labels")
    assert panel.state["selection"] == {"labels": 3, "predictions": 2}
    text = str(panel.output["type"]["properties"]["selection_line"])
    assert "3 labels selected (2 predictions)" in text
    assert panel.button("selection_buttons", "clear_selection")["label"] == "Clear"

    panel.call("clear_selection")
    assert {"clear_selected_labels", "clear_selected_samples"} <= set(panel.triggered())
    assert panel.selected_labels == [] and panel.state["selection"]["labels"] == 0
    assert "No label selected" in str(panel.output["type"]["properties"]["selection_line"])


# --- item 5: resume with the interrupted run's own settings ----------------------------


def _interrupt(dataset, field, keep):
    """What a killed worker leaves: results saying "running" with no live claim, and
    predictions on the first ``keep`` samples only."""
    import fiftyone.core.runs as fors

    info = dataset.get_run_info(field)
    results = fors.RunResults(
        dataset, info.config, field, status="running", total=len(dataset), processed=keep
    )
    dataset.save_run_results(field, results, overwrite=True)
    ids = dataset.exists(field).values("id")[keep:]
    dataset.select(ids).set_field(field, None).save()


def test_resume_prefills_the_runs_settings_and_resumes_its_field(panel):
    import fiftyone.operators as foo

    dataset = panel.dataset
    panel.call("build")
    foo.execute_operator(
        SEGMENT,
        dataset=dataset,
        params={
            "bank": BANK,
            "out_field": "ntt",
            "points_per_side": 8,
            "max_detections": 7,
            "score_threshold": 0.05,
        },
    ).raise_exceptions()
    _interrupt(dataset, "ntt", keep=2)
    panel.call("on_refresh")
    (row,) = panel.state["runs"]
    assert row["can_resume"]

    panel.call("run_resume", row=0)
    params = panel.params_of("prompt_user_for_operation")["params"]
    assert params["bank"] == BANK and params["out_field"] == "ntt"
    assert params["points_per_side"] == 8 and params["max_detections"] == 7
    assert params["score_threshold"] == pytest.approx(0.05)
    assert params["skip_references"] is True and params["resume"] is True

    form = _form("ntt_segment", dataset, params)["type"]["properties"]
    assert "new_field" not in form and "conflict_notice" not in form
    assert "Resuming" in str(form["resume_notice"])

    result = foo.execute_operator(SEGMENT, dataset=dataset, params=params)
    result.raise_exceptions()
    summary = result.result
    assert "error" not in summary, summary
    assert summary["out_field"] == "ntt" and summary["done_before"] == 2
    assert summary["processed"] == summary["total"] - 2 > 0
    assert dataset.get_run_info("ntt").config.ntt_config["points_per_side"] == 8


def test_resume_after_the_bank_was_rebuilt_says_why_not(panel):
    import fiftyone_ntt.fiftyone as nf

    dataset = panel.dataset
    _segmented(panel)
    _interrupt(dataset, PRED, keep=2)
    sample = dataset.skip(2).first()
    label = {"label_id": sample[GT].detections[0].id, "field": GT, "sample_id": sample.id}
    nf.tag_references(dataset, [label])
    nf.build_bank(dataset, GT, BANK)  # a new version: the run cannot be resumed with it
    panel.call("on_refresh")
    (row,) = [r for r in panel.state["runs"] if r["kind"] == "segmentation"]
    panel.call("run_resume", row=panel.state["runs"].index(row))
    assert "prompt_user_for_operation" not in panel.triggered()
    assert panel.state["message_variant"] == "warning"
    assert "cannot be resumed" in panel.notice() and "earlier version" in panel.notice()


# --- item 14: Cancel a live run; Mark failed only when its process is gone ---------------


def test_cancel_a_live_run_stops_it_at_the_next_sample(panel):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.runs.record import run_state

    dataset = panel.dataset
    panel.call("build")
    seen = []

    def progress(done, total):
        seen.append(done)
        if len(seen) == 1:  # the user presses Cancel while the run is live
            panel.call("on_refresh")
            (row,) = panel.state["runs"]
            assert row["state"] == "running" and row["can_cancel"]
            assert not row["can_mark_failed"]
            panel.call("run_cancel", row=0)
            assert panel.state["message_variant"] == "success", panel.notice()

    summary = nf.segment(
        dataset, BANK, PRED, points_per_side=16, batch_size=1, batch_images=1, progress=progress
    )
    assert seen == [1]
    assert summary["status"] == "interrupted" and summary["processed"] == 1
    assert len(dataset.exists(PRED)) == 1  # what it wrote is kept
    assert run_state(dataset, PRED)["status"] == "interrupted"
    # resuming afterwards is not cancelled again
    summary = nf.segment(dataset, BANK, PRED, points_per_side=16)
    assert summary["status"] == "completed" and summary["done_before"] == 1


def test_cancel_a_queued_operation_and_mark_failed_only_when_its_worker_is_gone(panel):
    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService

    dataset = panel.dataset
    panel.call("build")
    params = {"bank": BANK, "out_field": "ntt", "points_per_side": 16}
    foo.execute_operator(
        SEGMENT, dataset=dataset, params=params, request_delegation=True
    ).raise_exceptions()
    panel.call("on_refresh")
    (row,) = panel.state["runs"]
    assert row["state"] == "queued" and row["can_cancel"] and not row["can_mark_failed"]
    panel.call("run_cancel", row=0)
    (row,) = panel.state["runs"]
    assert row["state"] == "failed" and "cancelled" in row["error"]
    assert not row["can_cancel"] and not row["can_mark_failed"]
    service = DelegatedOperationService()
    service.execute_queued_operations(dataset_name=dataset.name)
    assert not dataset.has_sample_field("ntt")  # a worker never picks it up

    # a running operation whose worker died (no live claim): Mark failed, not Cancel
    foo.execute_operator(
        SEGMENT, dataset=dataset, params=params, request_delegation=True
    ).raise_exceptions()
    op = [o for o in service.list_operations(dataset_name=dataset.name) if o.run_state == "queued"]
    service.set_running(op[0].id)
    import fiftyone_ntt.fiftyone as nf

    nf.segment(dataset, BANK, "ntt", points_per_side=16)
    _interrupt(dataset, "ntt", keep=2)
    panel.call("on_refresh")
    (row,) = [r for r in panel.state["runs"] if r["op_id"] == str(op[0].id)]
    assert row["state"] == "interrupted"
    assert row["can_mark_failed"] and not row["can_cancel"]
