"""The panel's section *Improve the bank* (issue 23; operators/panel/improve.py) through its
callbacks (``PanelDriver``: state in, App operations out) on a real MongoDB-backed painted
dataset with the fake models: thresholds from a run's evaluation saved as a bank version
and compared after segmenting again, the audit's table with Show / Untag, the review queue
with Accept & next / Reject & next, and the refusals."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.integration

sys.path.insert(0, str(Path(__file__).resolve().parent))

from panel_driver import PanelDriver  # noqa: E402
from test_reference_audit_queue import _plant_bad_reference  # noqa: E402

GT = "ground_truth"
BANK = "colours"


def segment_and_evaluate(dataset, field: str, eval_key: str, build: bool = False) -> None:
    """(Build bank ``colours`` keeping features,) segment into ``field``, evaluate."""
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.config import NTTConfig
    from fiftyone_ntt.fiftyone.evaluation.evaluate import evaluate

    if build:
        nf.build_bank(dataset, GT, BANK, config=NTTConfig(points_per_side=16, keep_features=True))
    nf.segment(dataset, BANK, field)
    evaluate(dataset, field, eval_key, gt_field=GT, exclude_references=True)


def plant_ambiguous(dataset, field: str) -> str:
    """A prediction "red" of sample 5 in ``field``: its score just above the bank's red
    threshold, its feature halfway between the red and green prototypes (the one a
    decision teaches most). Returns its id."""
    import fiftyone as fo

    from fiftyone_ntt.embeddings import compact
    from fiftyone_ntt.fiftyone.banks.index import load_bank
    from fiftyone_ntt.fiftyone.banks.thresholds import bank_thresholds

    bank = load_bank(dataset, BANK)
    protos = bank.prototypes().numpy()
    red, green = bank.class_names.index("red"), bank.class_names.index("green")
    mixed = protos[red] + protos[green]
    mixed /= np.linalg.norm(mixed)
    score = float(bank_thresholds(dataset, BANK).get("red", 0.5)) + 0.01
    sample = dataset.skip(5).first()
    planted = fo.Detection(
        label="red",
        confidence=score,
        bounding_box=[0.4, 0.4, 0.1, 0.1],
        mask=np.ones((8, 8), dtype=bool),
        ntt_embedding=compact(mixed[None])[0],
    )
    sample[field].detections.append(planted)
    sample.save()
    return planted.id


def _rows(panel, key: str) -> list[dict]:
    """The rows of the section's table ``key`` (state ``<key>_rows``)."""
    return panel.state.get(f"{key}_rows") or []


def assert_tables_read_lists(panel) -> None:
    """Each table of the section reads a list of rows from the state key of its name (a
    table bound to a dict draws nothing in the App)."""
    names = [
        n
        for n in ("improve_thresholds_rows", "improve_audit_rows", "improve_compare_rows")
        if panel.find(n) is not None
    ]
    assert names
    for name in names:
        assert panel.find(name)["view"]["name"] == "TableView"
        assert isinstance(panel.state[name], list) and panel.state[name], name


def _tags(dataset, field: str, label_id: str) -> set[str]:
    view = dataset.select_labels(ids=[label_id], fields=field)
    return set(view.distinct(f"{field}.detections.tags"))


@pytest.fixture
def panel(painted_dataset):
    driver = PanelDriver(painted_dataset)
    driver.call("on_load")
    return driver


def test_thresholds_saved_then_compared_after_segmenting_again(panel):
    from fiftyone_ntt.fiftyone.banks.thresholds import bank_thresholds

    dataset = panel.dataset
    segment_and_evaluate(dataset, "ntt", "ev", build=True)
    panel.call("refresh")
    assert "Improve the bank" in str(panel.output)
    assert panel.find("improve_field")["view"]["choices"][0]["label"] == (
        "ntt (colours v1, evaluation ev)"
    )

    panel.call("improve_thresholds")
    table = panel.state["improve_thresholds"]
    assert (table["eval_key"], table["bank_key"], table["bank_version"]) == ("ev", BANK, 1)
    rows = {r["class"]: r for r in _rows(panel, "improve_thresholds")}
    assert set(rows) == {"red", "green", "blue"}
    kept, total = map(int, rows["blue"]["kept"].split(" / "))
    assert kept < total and rows["blue"]["precision"] == "1.000"  # the hard class is cut
    assert "thresholds for 3 of 3 class(es)" in panel.notice()
    assert panel.find("improve_thresholds_rows") is not None  # the table is drawn
    assert not panel.find("improve_save")["view"]["disabled"]
    assert bank_thresholds(dataset, BANK) == {}  # nothing saved yet

    panel.call("improve_save_thresholds")
    assert "saved as version 2 of 'colours'" in panel.notice()
    assert panel.state["improve_thresholds"]["saved"] == 2
    assert set(bank_thresholds(dataset, BANK)) == {"red", "green", "blue"}
    assert panel.find("improve_save")["view"]["label"] == "Saved as v2"
    assert panel.find("improve_save")["view"]["disabled"]

    segment_and_evaluate(dataset, "ntt_cut", "after")  # the latest version: v2
    panel.call("poll")
    assert panel.find("improve_field")["default"] == "ntt_cut"  # the newest run, until
    panel.state["improve_field"] = "ntt"  # the App keeps the dropdown's value in the state
    panel.call("refresh")
    assert panel.find("improve_compare_btn") is None  # 'ntt' is the thresholds' own run
    panel.call("improve_choose", value="ntt_cut")  # the user chooses the new run
    assert panel.state["improve_thresholds"]["saved"] == 2  # kept: compared with it next
    panel.call("improve_compare")
    compare = {r["class"]: r for r in _rows(panel, "improve_compare")}
    before, after = compare["blue"]["precision"].split(" → ")
    assert float(before) < float(after) == 1.0
    assert_tables_read_lists(panel)


def test_audit_table_show_and_untag(panel):
    dataset = panel.dataset
    bad_id = _plant_bad_reference(dataset)
    segment_and_evaluate(dataset, "ntt", "ev", build=True)
    panel.call("refresh")

    panel.call("improve_audit")
    rows = _rows(panel, "improve_audit")
    assert rows[0]["reference_id"] == bad_id and rows[0]["class"] == "blue"
    assert all(r["fp"] > 0 for r in rows)  # the table lists references attracting FPs
    assert panel.state["improve_audit"]["quiet"] == 4 - len(rows)
    assert "attract false positives" in panel.notice()
    actions = [a["name"] for a in panel.find("improve_audit_rows")["view"]["row_actions"]]
    assert actions == ["show", "untag", "replace"]
    assert_tables_read_lists(panel)

    panel.call("improve_show", row=0)
    assert panel.view.count(f"{GT}.detections") == 1
    assert sorted(panel.view.values("ntt.detections.id", unwind=True)) == sorted(
        rows[0]["false_positives"]
    )

    panel.call("improve_untag", row=0)
    assert "untagged reference" in panel.notice()
    assert "ntt:ref" not in _tags(dataset, GT, bad_id)
    assert bad_id not in [r["reference_id"] for r in _rows(panel, "improve_audit")]
    panel.call("improve_untag", row=99)  # a row that is not there: nothing happens
    assert "ntt:ref" in _tags(dataset, GT, dataset.first()[GT].detections[0].id)


def test_review_queue_accept_and_reject_move_to_the_next(panel):
    dataset = panel.dataset
    segment_and_evaluate(dataset, "ntt", "ev", build=True)
    from fiftyone_ntt.fiftyone.banks.thresholds import class_thresholds_table, save_thresholds

    table = class_thresholds_table(dataset, "ev", BANK)
    save_thresholds(dataset, BANK, table["thresholds"], source="thresholds from eval 'ev'")
    planted = plant_ambiguous(dataset, "ntt")
    panel.call("refresh")

    panel.call("improve_review")
    review = panel.state["improve_review"]
    assert review["next"] == planted and review["pred_field"] == "ntt"
    assert panel.view.first()["ntt"].id == planted  # the saved view "to review", shown
    left = review["left"]

    panel.call("improve_accept")
    assert "ntt:ref" in _tags(dataset, "ntt", planted)
    second = panel.state["improve_review"]["next"]
    assert second != planted and panel.state["improve_review"]["left"] == left - 1
    assert panel.view.first()["ntt"].id == second
    panel.call("improve_reject")
    assert "ntt:neg" in _tags(dataset, "ntt", second)
    assert f"{left - 2} left to review" in panel.notice()


def test_improve_refuses_without_a_run_or_an_evaluation(panel):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.config import NTTConfig

    panel.call("improve_thresholds")
    assert "no segmentation to improve from yet" in panel.notice()
    assert panel.find("improve_empty") is not None
    dataset = panel.dataset
    nf.build_bank(dataset, GT, BANK, config=NTTConfig(points_per_side=16))
    nf.segment(dataset, BANK, "ntt")
    panel.call("refresh")
    assert panel.find("improve_thresholds_btn")["view"]["disabled"]  # no evaluation
    panel.call("improve_audit")  # called anyway: the library's message, named
    assert "segmentation 'ntt' has no evaluation yet: click Evaluate" in panel.notice()
    assert panel.state["message_variant"] == "error"
    panel.call("improve_save_thresholds")
    assert "click Thresholds first" in panel.notice()
    panel.call("improve_accept")
    assert "the queue is empty" in panel.notice()


def test_an_event_with_an_old_copy_of_the_state_keeps_the_thresholds_table(panel):
    """The App sends events with the panel state from before an action's changes arrived
    (seen in a fresh-clone CI run: the Thresholds message shown, its table never drawn): the
    redraw from that copy keeps what the action left to draw, as it keeps its message."""
    dataset = panel.dataset
    segment_and_evaluate(dataset, "ntt", "ev", build=True)
    panel.call("refresh")
    stale = PanelDriver(dataset)
    stale.state = dict(panel.state)  # before Thresholds
    panel.call("improve_thresholds")
    assert _rows(panel, "improve_thresholds")
    sample = dataset.first()
    det = sample[GT].detections[0]
    stale.selected_labels = [{"label_id": det.id, "sample_id": sample.id, "field": GT}]
    stale.call("on_change_selected_labels")
    assert "thresholds for" in stale.notice()
    assert stale.find("improve_thresholds_rows") is not None
    assert _rows(stale, "improve_thresholds") == _rows(panel, "improve_thresholds")
