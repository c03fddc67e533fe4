"""The panel sends the App nothing for an event that changes nothing it shows (issue 20.3).

Every response of the panel that carries App operations (a state patch, a new layout) makes
FiftyOne 1.22's App paint the labels of every image shown again; two such rounds close
together paint an image twice at once, which fails in the App ("DataCloneError: An
ArrayBuffer is detached") and costs it one of its label-painting workers for good: once they
are all gone, no overlay is drawn anywhere until the page is reloaded (see
``docs/architecture.md``). The App sends view and selection events after every change of
the panel's state, with a copy of that state from before the change: those echoes, timer
ticks and repeated sample events must send nothing. And after *Preview on this sample* the
App must fetch the open sample again: it keeps the sample it loaded per dataset, view and
sample id, so the panel sets an equal view with new stage ids and opens the sample again.

Driven through the panel's callbacks (``PanelDriver``) on a real MongoDB-backed painted
dataset with the fake models.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

sys.path.insert(0, str(Path(__file__).resolve().parent))

from panel_driver import PANEL_URI, PanelDriver  # noqa: E402

GT = "ground_truth"
EVENTS = ("on_change_view", "on_change_selected", "on_change_selected_labels", "poll")


def sent(driver: PanelDriver, method: str, **params) -> list[str]:
    """Every App operation (state patches and layout included) that ``method`` sends, the
    driver's copy of the state left as it was (the App's events carry a copy)."""
    import fiftyone.operators as foo

    result = foo.execute_operator(
        PANEL_URI,
        dataset=driver.dataset,
        view=driver.view,
        selected=driver.selected,
        selected_labels=driver.selected_labels,
        current_sample=driver.current_sample,
        params={
            "__method__": method,
            "panel_id": driver.panel_id,
            "panel_state": driver.state,
            **params,
        },
    )
    result.raise_exceptions()
    return [r["operator_uri"] for r in result.executor.to_json()["requests"]]


def stale_copy(panel: PanelDriver) -> PanelDriver:
    """The App as seen by an event: the same panel, an older copy of its state."""
    copy = PanelDriver(panel.dataset, panel.panel_id)
    copy.state = dict(panel.state)
    copy.view = panel.view
    copy.current_sample = panel.current_sample
    return copy


def _one_gt_label(dataset) -> list[dict]:
    sample = dataset.first()
    det = sample[GT].detections[0]
    return [{"label_id": det.id, "sample_id": sample.id, "field": GT}]


def _stages(view) -> list[dict]:
    return view._serialize(include_uuids=False) if view is not None else []


@pytest.fixture
def panel(painted_dataset):
    driver = PanelDriver(painted_dataset)
    driver.call("on_load")
    return driver


def test_unchanged_events_send_nothing(panel):
    for event in EVENTS:
        assert sent(panel, event) == [], event


def test_the_echoes_of_an_action_send_nothing(panel):
    # the App's events after Build carry the state from before it (an older dataset stamp)
    before = stale_copy(panel)
    panel.call("build")
    assert "Built" in panel.notice()
    for event in EVENTS:
        assert sent(before, event) == [], event


def test_a_selection_cleared_by_the_panel_is_not_drawn_twice(panel):
    panel.selected_labels = _one_gt_label(panel.dataset)
    panel.call("on_change_selected_labels")
    assert panel.state["selection"]["labels"] == 1
    before = stale_copy(panel)  # selection: 1, as the App's next events still carry it
    panel.call("clear_selection")
    assert panel.state["selection"]["labels"] == 0
    assert "clear_selected_labels" in panel.triggered()
    before.selected_labels = []  # the App's selection after the clear
    for event in ("on_change_selected", "on_change_selected_labels"):
        assert sent(before, event) == [], event
    # a real change is drawn
    before.selected_labels = _one_gt_label(panel.dataset)
    assert "show_panel_output" in sent(before, "on_change_selected_labels")


def sample_view_panel(dataset, sample_id: str) -> PanelDriver:
    """The panel of the sample view: loaded while ``sample_id`` is open."""
    driver = PanelDriver(dataset, "ntt-sample-view-panel")
    driver.current_sample = sample_id
    driver.call("on_load")
    return driver


def test_the_grid_panel_waits_behind_the_sample_view_then_catches_up(panel):
    import fiftyone_ntt.fiftyone as nf

    panel.current_sample = panel.dataset.first().id  # a sample view opens over the grid
    for event in (*EVENTS, "on_change_current_sample"):
        assert sent(panel, event) == [], event
    nf.build_bank(panel.dataset, GT, "ground_truth-refs")  # e.g. from the sample view's panel
    assert sent(panel, "poll") == []
    panel.current_sample = None  # the sample view closes: the bank is shown
    assert "show_panel_output" in sent(panel, "on_change_current_sample")
    panel.call("on_change_current_sample")
    assert [b["key"] for b in panel.state["banks"]] == ["ground_truth-refs"]
    assert panel.state["modal"] is False
    assert "reload_samples" not in panel.triggered()  # no label was written


def test_labels_written_in_the_sample_view_reload_the_grid_when_it_closes(panel):
    import fiftyone_ntt.fiftyone as nf

    dataset = panel.dataset
    nf.build_bank(dataset, GT, "ground_truth-refs")
    panel.call("on_refresh")
    sample = dataset.first().id
    panel.current_sample = sample  # the grid's panel, hidden
    modal = sample_view_panel(dataset, sample)
    modal.call("preview_sample")  # writes ntt_preview on the open sample
    assert "on 1 sample(s)" in modal.notice()
    assert "reload_samples" not in modal.triggered()  # not while the sample view is open
    assert sent(panel, "poll") == []
    panel.current_sample = None  # closed: the grid's tiles load their samples again
    assert "reload_samples" in sent(panel, "on_change_current_sample")
    panel.call("on_change_current_sample")
    assert sent(panel, "on_change_current_sample") == []  # once


def test_the_grid_panel_tells_what_the_sample_views_panel_wrote_when_it_closes(panel):
    """The grid's panel must not go on saying what its own last action did when the sample
    view's panel has since written labels (after closing: "Preview ... on 9 samples" while
    the preview field holds the 1 sample previewed in the sample view)."""
    import fiftyone_ntt.fiftyone as nf

    dataset = panel.dataset
    nf.build_bank(dataset, GT, "ground_truth-refs")
    panel.call("on_refresh")
    panel.state["preview_n"] = 3
    panel.call("preview_view")
    assert "on 3 sample(s)" in panel.notice(), panel.notice()
    sample = dataset.first().id
    panel.current_sample = sample
    modal = sample_view_panel(dataset, sample)
    modal.call("preview_sample")
    assert "on 1 sample(s)" in modal.notice()
    panel.current_sample = None  # the sample view closes
    panel.call("on_change_current_sample")
    assert "on 1 sample(s)" in panel.notice(), panel.notice()
    # a message that wrote no labels stays with its own panel
    modal.call("on_refresh")
    panel.call("on_refresh")
    assert "Refreshed" in panel.notice()


def test_the_sample_views_panel_draws_once_not_again_for_the_next_sample(painted_dataset):
    first, second = painted_dataset.values("id")[:2]
    panel = sample_view_panel(painted_dataset, first)
    assert panel.state["modal"] is True and panel.output is not None
    assert sent(panel, "on_change_current_sample") == []  # the same sample again
    panel.current_sample = second  # the next sample: nothing the panel shows changes
    assert sent(panel, "on_change_current_sample") == []
    # a label clicked in the sample view is counted
    panel.selected_labels = _one_gt_label(painted_dataset)
    assert "show_panel_output" in sent(panel, "on_change_selected_labels")


@pytest.mark.parametrize("stages", ["filtered", "whole dataset"])
def test_preview_on_this_sample_makes_the_app_load_the_sample_again(painted_dataset, stages):
    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    view = dataset.skip(1) if stages == "filtered" else None
    sample = (view or dataset).first().id
    nf.build_bank(dataset, GT, "ground_truth-refs")
    panel = PanelDriver(dataset)
    panel.view = view
    panel.current_sample = sample
    panel.call("on_load")
    seen = []
    for _ in range(2):
        before = panel.view
        panel.call("preview_sample")
        assert "on 1 sample(s)" in panel.notice(), panel.notice()
        triggered = panel.triggered()
        assert "set_view" in triggered and "open_sample" in triggered, triggered
        assert triggered.index("set_view") < triggered.index("open_sample")
        # the view set loads the dataset again: no second reload (two repaints at once)
        assert "reload_dataset" not in triggered and "reload_samples" not in triggered
        assert panel.params_of("open_sample")["id"] == sample
        stages_sent = panel.params_of("set_view")["view"]
        # an equal view (the same samples) that the App has not seen: new stage ids
        assert panel.view.values("id") == (before or dataset).values("id")
        if stages == "filtered":
            assert _stages(panel.view) == _stages(before)
        uuids = [s["_uuid"] for s in stages_sent]
        assert uuids and not set(uuids) & set(seen), (uuids, seen)
        seen += uuids
        # the App's view event for that view draws nothing
        assert sent(panel, "on_change_view") == []


def test_the_tick_after_long_work_sends_nothing(panel):
    panel.auto_timers = False
    panel.call("build")  # shows that it builds; the work waits for its one-shot timer
    assert panel.state["busy"]
    before = stale_copy(panel)  # still busy: the copy the next tick of the timer carries
    ((_, method, params),) = panel.timers(one_shot=True)
    panel.call(method, **params)  # the work: its response draws the result
    assert "Built" in panel.notice() and not panel.state["busy"]
    assert sent(before, "poll") == []
    # a tick with a change made after the work draws it, not busy
    import fiftyone_ntt.fiftyone as nf

    nf.untag_references(panel.dataset)
    assert "show_panel_output" in sent(before, "poll")
    before.call("poll")
    assert not before.state["busy"] and before.state["first_use"]


def test_typing_n_sends_nothing_unless_its_error_changes(panel):
    # the App holds the typed value in the panel state before it calls the field's handler
    for value in (8, 8, 12):
        panel.state["preview_n"] = value
        assert sent(panel, "set_preview_n", value=value) == [], value
    panel.state["preview_n"] = 2.5  # refused: the error is shown next to the field
    assert "show_panel_output" in sent(panel, "set_preview_n", value=2.5)
    panel.call("set_preview_n", value=2.5)
    assert panel.state["errors"]["preview_n"]
    assert sent(panel, "set_preview_n", value=2.5) == []  # the same error again
    panel.state["preview_n"] = 3  # fixed: the error goes
    assert "show_panel_output" in sent(panel, "set_preview_n", value=3)


def test_opening_the_panel_patches_its_state_once(painted_dataset):
    """Opening the panel sent three state patches (the preview's N, the surface, the
    tables) before its layout: each patch is a round of label painting in the App, right
    while the grid paints its first tiles."""
    # a panel the App just opened: an id of its own
    ops = sent(PanelDriver(painted_dataset, panel_id="ntt-opened-panel"), "on_load")
    assert ops.count("patch_panel_state") == 1, ops
    assert ops[-1] == "show_panel_output", ops
