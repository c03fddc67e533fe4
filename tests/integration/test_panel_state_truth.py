"""The panel shows what is true now (issue 20, items 9-12), driven through its callbacks
(``PanelDriver``) on a real MongoDB-backed painted dataset with the fake models.

- Runs: one row per output field (its latest attempt; older ones folded in), errors
  shortened in the cell with the full text as tooltip and detail line, failed rows can be
  dismissed (the run record, the operation and the labels stay).
- Freshness: after an operator run outside the panel (Delete bank) the panel's timer
  (``poll``) brings it up to date, silently; an unchanged dataset is not re-rendered.
- Busy state: Build and Preview first show what is happening and disable their buttons,
  then do the work (a one-shot timer), with the build's progress.
- Preview N: the value shown is the value used; a bad one is refused under the field.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

sys.path.insert(0, str(Path(__file__).resolve().parent))

from panel_driver import PanelDriver  # noqa: E402

GT = "ground_truth"
BANK = "ground_truth-refs"
PLUGIN = "@fiftyone-ntt/no-time-to-train"
SEGMENT = f"{PLUGIN}/ntt_segment"
LONG_ERROR = (
    "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total "
    "capacity; 5.10 GiB already allocated; 1.12 GiB free; 5.30 GiB reserved in total by "
    "PyTorch) while segmenting sample 65f0c0ffee: lower points_per_side or use the CPU"
)


@pytest.fixture
def panel(painted_dataset):
    driver = PanelDriver(painted_dataset)
    driver.call("on_load")
    return driver


def _queue_segment(dataset, out_field: str):
    """A queued delegated segmentation of ``out_field``; returns its id."""
    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService

    params = {"bank": BANK, "out_field": out_field, "points_per_side": 16}
    foo.execute_operator(
        SEGMENT, dataset=dataset, params=params, request_delegation=True
    ).raise_exceptions()
    ops = DelegatedOperationService().list_operations(dataset_name=dataset.name)
    return str(max(ops, key=lambda o: o.queued_at).id)


def _failed_attempt(dataset, out_field: str, error: str = LONG_ERROR) -> str:
    from fiftyone_ntt.fiftyone.app.activity import mark_failed

    op_id = _queue_segment(dataset, out_field)
    mark_failed(op_id, reason=error)
    return op_id


def _rows_of(panel, field):
    return [r for r in panel.state["runs"] if r["field"] == field]


# --- item 9: the Runs table --------------------------------------------------------------


def test_one_row_per_output_field_latest_attempt_older_folded_in(panel):
    import fiftyone_ntt.fiftyone as nf

    dataset = panel.dataset
    nf.build_bank(dataset, GT, BANK)
    first = _failed_attempt(dataset, "ntt")
    time.sleep(0.01)
    second = _failed_attempt(dataset, "ntt", error="worker killed")
    panel.call("on_refresh")
    (row,) = _rows_of(panel, "ntt")
    assert row["op_id"] == second and row["state"] == "failed"
    assert row["error"] == "worker killed"
    assert row["attempts"] == 2 and "1 earlier attempt" in row["history"]
    assert first not in [r["op_id"] for r in panel.state["runs"]]

    # the run itself, later: its row is the field's row, the failures folded in
    time.sleep(1.1)  # run timestamps are stored to the second
    nf.segment(dataset, BANK, "ntt", points_per_side=16)
    panel.call("on_refresh")
    (row,) = _rows_of(panel, "ntt")
    assert row["state"] == "completed" and row["attempts"] == 3
    assert row["can_evaluate"] and row["can_show"] and not row["error"]


def test_error_is_short_in_the_cell_full_in_tooltip_and_detail_line(panel):
    import fiftyone_ntt.fiftyone as nf

    nf.build_bank(panel.dataset, GT, BANK)
    _failed_attempt(panel.dataset, "ntt")
    panel.call("on_refresh")
    (row,) = _rows_of(panel, "ntt")
    assert row["error"] == LONG_ERROR
    assert len(row["error_short"]) <= 30 and row["error_short"].endswith("…")
    assert row["error_short"][:-1] in LONG_ERROR
    assert row["state_cell"] == f"failed: {row['error_short']}"
    runs = panel.find("runs")
    table = runs["view"]
    keys = [c["key"] for c in table["columns"]]
    assert "state_cell" in keys and "error" not in keys and len(keys) <= 4
    tips = [t["value"] for t in table.get("tooltips") or []]
    assert any(LONG_ERROR in t for t in tips), tips
    assert LONG_ERROR in str(panel.find("runs_errors"))


def test_dismiss_hides_a_failed_row_and_keeps_the_record_and_labels(panel, field_hash):
    from bson import ObjectId
    from fiftyone.operators.delegated import DelegatedOperationService

    import fiftyone_ntt.fiftyone as nf

    dataset = panel.dataset
    nf.build_bank(dataset, GT, BANK)
    nf.segment(dataset, BANK, "ntt", points_per_side=16)
    time.sleep(1.1)
    op_id = _failed_attempt(dataset, "ntt")
    panel.call("on_refresh")
    (row,) = _rows_of(panel, "ntt")
    assert row["state"] == "failed" and row["can_dismiss"]
    actions = panel.find("runs")["view"]["row_actions"]
    (dismiss,) = [a for a in actions if a["name"] == "dismiss"]
    assert "kept" in dismiss["tooltip"] and "labels" in dismiss["tooltip"]
    before = field_hash(dataset, "ntt")

    panel.call("run_dismiss", row=panel.state["runs"].index(row))
    assert panel.state["message_variant"] == "success", panel.notice()
    assert _rows_of(panel, "ntt") == []
    assert "ntt" in dataset.list_runs() and field_hash(dataset, "ntt") == before
    assert DelegatedOperationService().get(ObjectId(op_id)) is not None
    panel.call("on_refresh")
    assert _rows_of(panel, "ntt") == []  # stays hidden

    # a new attempt of that field shows again
    time.sleep(1.1)
    nf.segment(dataset, BANK, "ntt", points_per_side=16, overwrite=True)
    panel.call("on_refresh")
    (row,) = _rows_of(panel, "ntt")
    assert row["state"] == "completed"


def test_a_completed_row_cannot_be_dismissed(panel):
    import fiftyone_ntt.fiftyone as nf

    nf.build_bank(panel.dataset, GT, BANK)
    nf.segment(panel.dataset, BANK, "ntt", points_per_side=16)
    panel.call("on_refresh")
    (row,) = _rows_of(panel, "ntt")
    assert not row["can_dismiss"]
    panel.call("run_dismiss", row=panel.state["runs"].index(row))
    assert panel.state["message_variant"] == "warning" and "completed" in panel.notice()
    assert _rows_of(panel, "ntt")


# --- item 10: the panel stays true after operators -------------------------------------


def test_poll_brings_the_panel_up_to_date_after_delete_bank(panel):
    import fiftyone.operators as foo

    dataset = panel.dataset
    panel.call("build")
    panel.call("build")
    assert [b["name"] for b in panel.state["banks"]] == [f"{BANK} v2", f"{BANK} v1"]
    foo.execute_operator(
        f"{PLUGIN}/ntt_manage_banks",
        dataset=dataset,
        params={"action": "delete", "bank": BANK},
    ).raise_exceptions()

    panel.call("poll")
    assert panel.state["banks"] == [] and panel.state["bank"] is None
    assert "notify" not in panel.triggered()  # no toast for a refresh by the timer
    panel.call("preview_view")
    assert "known: []" not in panel.notice() and "No memory bank" in panel.notice()


def test_poll_does_not_rerender_an_unchanged_panel_and_follows_active_runs(panel):
    dataset = panel.dataset
    panel.call("build")
    (timer,) = panel.timers(one_shot=False)
    assert timer[1] == "poll"  # the panel's refresh timer
    panel.output = None
    panel.call("poll")
    assert panel.output is None  # nothing changed: no new layout sent

    op_id = _queue_segment(dataset, "ntt")
    panel.call("poll")
    (row,) = _rows_of(panel, "ntt")
    assert row["state"] == "queued"
    panel.output = None
    panel.call("poll")  # a run is active: recomputed on every tick, drawn only if changed
    assert panel.output is None
    from fiftyone_ntt.fiftyone.app.activity import mark_failed

    mark_failed(op_id, reason="stopped")
    panel.call("poll")
    assert panel.output is not None and "notify" not in panel.triggered()
    assert _rows_of(panel, "ntt")[0]["state"] == "failed"


def test_view_events_redraw_only_when_the_view_or_the_dataset_changed(panel):
    import fiftyone_ntt.fiftyone as nf

    # the App sends view events after every change of the panel state, with a copy of it:
    # drawing from that copy could show an old state (e.g. still building)
    panel.call("build")
    panel.output = None
    panel.call("on_change_view")
    assert panel.output is None
    panel.view = panel.dataset.limit(3)  # the view changed
    panel.call("on_change_view")
    assert panel.output is not None
    nf.segment(panel.dataset, BANK, "ntt", points_per_side=16)  # the dataset changed
    panel.output = None
    panel.call("on_change_view")
    assert panel.output is not None and _rows_of(panel, "ntt")


def test_an_event_with_an_old_copy_of_the_state_keeps_the_latest_message(panel):
    # the App sends e.g. the selection event that an action's "clear selection" causes with
    # the panel state from before the action's message arrived
    stale = PanelDriver(panel.dataset)
    stale.state = dict(panel.state)
    panel.call("build")
    assert "Built" in panel.notice()
    sample = panel.dataset.first()
    det = sample[GT].detections[0]
    stale.selected_labels = [{"label_id": det.id, "sample_id": sample.id, "field": GT}]
    stale.call("on_change_selected_labels")
    assert "Built" in stale.notice()
    assert "Built" in str(stale.find("banks_message"))
    stale.output = None
    stale.call("on_change_selected_labels")  # the same selection: nothing to draw
    assert stale.output is None


def test_prompts_opened_by_the_panel_refresh_it_silently_on_success(panel):
    panel.call("build")
    panel.call("segment_view")
    params = panel.params_of("prompt_user_for_operation")
    assert params["on_success"].endswith("#refresh_quiet"), params


def test_conflict_wording_for_a_deleted_and_rebuilt_bank(panel):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.app.preflight import output_conflict

    dataset = panel.dataset
    nf.build_bank(dataset, GT, BANK)
    nf.segment(dataset, BANK, "ntt", points_per_side=16)
    nf.delete_bank(dataset, BANK)
    sample = dataset.skip(3).first()
    nf.tag_references(
        dataset, [{"label_id": sample[GT].detections[0].id, "field": GT, "sample_id": sample.id}]
    )
    info = nf.build_bank(dataset, GT, BANK)
    assert info["version"] == 1
    text = output_conflict(dataset, "ntt", BANK)
    assert "earlier version" not in text, text
    assert "deleted" in text and "v1" in text, text

    nf.build_bank(dataset, GT, BANK)  # v2: the run's v1 is an earlier version now
    nf.segment(dataset, BANK, "ntt2", points_per_side=16)
    sample = dataset.skip(4).first()
    nf.tag_references(
        dataset, [{"label_id": sample[GT].detections[0].id, "field": GT, "sample_id": sample.id}]
    )
    nf.build_bank(dataset, GT, BANK)
    text = output_conflict(dataset, "ntt2", BANK)
    assert "earlier version (v2)" in text and "now v3" in text, text


# --- item 11: busy state, bank key and preset ------------------------------------------


def test_build_shows_what_it_does_disables_the_button_then_builds(panel):
    import fiftyone_ntt.fiftyone as nf

    panel.auto_timers = False
    panel.call("build")
    panel.call("work", **panel.timers(one_shot=True)[0][2])
    assert "Built" in panel.notice()  # an old success message

    panel.call("build")
    busy = panel.state["busy"]
    assert busy and busy["action"] == "build"
    assert "Building bank" in busy["text"] and BANK in busy["text"]
    assert panel.notice() == ""  # the old message is replaced by the working notice
    assert "Building bank" in str(panel.find("banks_busy"))
    assert panel.button("banks_buttons", "build")["disabled"] is True
    assert panel.button("preview_buttons", "preview_view")["disabled"] is True
    assert len(nf.bank_versions(panel.dataset, BANK)) == 1

    (_, method, params), *_ = panel.timers(one_shot=True)
    stale = PanelDriver(panel.dataset)  # a copy of the state from before the work ended
    stale.state = dict(panel.state)
    panel.call(method, **params)
    assert panel.state["busy"] is None
    assert "Built 'ground_truth-refs' v2" in panel.notice()
    assert panel.button("banks_buttons", "build")["disabled"] is False
    assert panel.timers(one_shot=True) == []
    # a second firing of the same timer (a re-mounted view) does not build again
    panel.call(method, **params)
    assert len(nf.bank_versions(panel.dataset, BANK)) == 2
    # a tick with a stale copy of the busy state sends nothing (no patch, no layout): the
    # work's own response drew the panel not busy (test_panel_quiet.py)
    stale.auto_timers = False
    stale.call("poll")
    assert stale.output is None and stale.requests == []
    assert "banks_busy" not in stale.layout_names()


def test_build_progress_is_shown_while_it_runs(panel, monkeypatch):
    import fiftyone_ntt.fiftyone.dataset.model_cache as models
    from fiftyone_ntt.testing import ColorEncoder, RegionProposer

    # The encoder waits for a permit per call. References are embedded one at a time or in
    # a batch, and the count is reported after each (or before the batch's call): a permit
    # is given only while the build waits in the encoder with no count shown yet, so the
    # build cannot finish (and clear its count) before a poll has seen one.
    permits = threading.Semaphore(0)
    waiting = threading.Event()
    calls = []

    class Slow(ColorEncoder):
        def encode(self, pixels):
            calls.append(len(pixels))
            waiting.set()
            permits.acquire(timeout=20)
            return super().encode(pixels)

    monkeypatch.setattr(models, "get_models", lambda *a, **k: (Slow(), RegionProposer()))
    panel.auto_timers = False
    panel.call("build")
    (_, method, params), *_ = panel.timers(one_shot=True)
    worker = PanelDriver(panel.dataset)
    worker.state = dict(panel.state)
    thread = threading.Thread(target=lambda: worker.call(method, **params))
    thread.start()
    try:
        deadline = time.monotonic() + 20
        text = ""
        while time.monotonic() < deadline:
            waiting.wait(0.2)
            panel.call("poll")
            text = str(panel.state.get("progress") or "")
            if "references embedded" in text:
                break
            if waiting.is_set():  # in the encoder, nothing counted yet: one call through
                waiting.clear()
                permits.release()
        assert calls, "the build did not call the test's encoder (models not from get_models?)"
        assert "references embedded" in text and "/ 3" in text.replace("/3", "/ 3"), (
            text,
            calls,
            thread.is_alive(),
        )
        assert "references embedded" in str(panel.find("banks_busy"))
    finally:
        for _ in range(10):
            permits.release()
        thread.join(30)
    assert "Built" in worker.notice()


def test_build_with_a_bank_key_and_a_preset(panel):
    import fiftyone_ntt.fiftyone as nf

    names = panel.layout_names()
    assert "build_key" in names and "build_preset" in names
    assert names.index("build_key") < names.index("banks_buttons")
    panel.state["build_key"] = "coins-fast"
    panel.state["build_preset"] = "fast"
    panel.call("build")
    assert "Built 'coins-fast' v1" in panel.notice(), panel.notice()
    info = nf.get_bank_info(panel.dataset, "coins-fast")
    assert info["preset"] == "fast"
    assert panel.state["bank"] == "coins-fast"  # the bank just built is the one used


def test_build_key_defaults_to_the_chosen_bank(panel):
    panel.call("build")
    assert panel.state["build_key"] == BANK
    panel.call("choose_bank", value=BANK)
    assert panel.state["build_key"] == BANK


# --- item 12: preview N --------------------------------------------------------------


def test_preview_uses_the_n_shown(panel):
    panel.call("build")
    panel.state["preview_n"] = 3
    panel.call("set_preview_n", value=3)
    panel.call("preview_view")
    assert "on 3 sample(s)" in panel.notice(), panel.notice()
    assert panel.state["preview_n"] == 3

    # a cleared field: nothing is previewed, the error is next to the field
    panel.state["preview_n"] = None
    panel.call("set_preview_n", value=None)
    assert panel.state["preview_n"] is None  # shown empty, not 8
    assert "empty" in panel.state["errors"]["preview_n"]
    field = panel.find("preview_n")  # the error is under the field
    assert field["invalid"] and "empty" in field["error_message"]
    before = panel.dataset.count("ntt_preview.detections")
    panel.call("preview_view")
    assert panel.dataset.count("ntt_preview.detections") == before
    assert panel.state["message_variant"] == "error" and "N" in panel.notice()
    assert panel.state["message_at"] == "preview"
    assert "preview_message" in panel.layout_names()


def test_action_messages_show_in_the_section_of_the_button(panel):
    panel.call("build")
    names = panel.layout_names()
    assert "message" not in names  # not at the top of the panel
    assert names.index("banks_message") > names.index("banks_buttons")
    assert names.index("banks_message") < names.index("preview_heading")
