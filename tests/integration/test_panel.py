"""The "No Time to Train" panel's callbacks, without a browser: each test drives the panel
through FiftyOne's operator machinery (``PanelDriver``: state in, App operations out) on a
real MongoDB-backed painted dataset with the fake models."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

sys.path.insert(0, str(Path(__file__).resolve().parent))

from panel_driver import PanelDriver  # noqa: E402

GT = "ground_truth"
REF, NEG = "ntt:ref", "ntt:neg"


def _gt_ids(dataset, positions):
    samples = list(dataset.select_fields(GT))
    return [
        {"label_id": samples[s][GT].detections[d].id, "sample_id": samples[s].id, "field": GT}
        for s, d in positions
    ]


def _walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _views(output) -> set[str]:
    return {n["name"] for n in _walk(output) if isinstance(n.get("name"), str) and "view" not in n}


@pytest.fixture
def panel(painted_dataset):
    driver = PanelDriver(painted_dataset)
    driver.call("on_load")
    return driver


def test_panel_is_listed_registered_and_opens_in_grid_and_modal(fo_session, repo_root):
    import fiftyone.operators as foo
    import yaml

    manifest = yaml.safe_load((repo_root / "fiftyone.yml").read_text())
    assert manifest["panels"] == ["ntt_panel"]
    panel = foo.get_operator("@fiftyone-ntt/no-time-to-train/ntt_panel")
    assert panel.config.surfaces == "grid modal"
    assert panel.config.label == "No Time to Train"
    config = panel.resolve_panel_config()
    for event in ("on_load", "on_change_view", "on_change_selected_labels"):
        assert config[event].endswith(f"#{event}"), config


def test_first_use_shows_three_steps_then_the_sections(panel):
    import fiftyone_ntt.fiftyone as nf

    # the painted dataset has references: no getting-started section
    assert panel.state["first_use"] is None
    assert "first_use_buttons" not in panel.layout_names()
    assert [r["class"] for r in panel.state["refs"]] == ["blue", "green", "red"]

    nf.untag_references(panel.dataset)
    panel.call("on_refresh")
    info = panel.state["first_use"]
    assert [s["title"][:2] for s in info["steps"]] == ["1.", "2.", "3."]
    assert info["demo"] is False
    names = panel.layout_names()
    assert "first_use_buttons" in names and "refs_empty" in names
    # the layout is tables, notices and buttons: never a raw JSON tree
    assert "JSONView" not in str(panel.output)


def test_demo_dataset_proposes_its_split(fo_session, tmp_path):
    import uuid

    from fiftyone_ntt.fiftyone.demo import build_demo_dataset

    dataset = build_demo_dataset(f"ntt-panel-demo-{uuid.uuid4().hex[:6]}")
    try:
        panel = PanelDriver(dataset)
        panel.call("on_load")
        info = panel.state["first_use"]
        assert info["demo"] and "coins_top" in info["demo_text"]
        stack = panel.output["type"]["properties"]["first_use_buttons"]["type"]["properties"]
        assert "demo_refs" in stack

        panel.call("demo_refs")
        top = dataset.match(__import__("fiftyone").ViewField("filepath").ends_with("coins_top.png"))
        assert top.count_label_tags() == {REF: 3}
        assert dataset.count_label_tags() == {REF: 3}  # only the top half
        shown = [Path(p).name for p in panel.view.values("filepath")]
        assert shown == ["coins_bottom.png", "chelsea.png"]
        assert panel.state["first_use"] is None
        assert "Next: build a memory bank" in panel.notice()
    finally:
        dataset.delete()


def test_tag_show_and_untag_references_and_negatives(panel):
    dataset = panel.dataset
    dataset.untag_labels(REF)
    labels = _gt_ids(dataset, [(2, 0), (3, 0), (4, 0)])

    panel.call("tag_refs")  # nothing selected
    assert panel.state["message_variant"] == "warning" and "Select labels" in panel.notice()

    panel.selected_labels = labels
    panel.call("on_change_selected_labels")
    assert panel.state["selection"] == {"labels": 3, "predictions": 0}
    panel.call("tag_refs")
    assert dataset.count_label_tags() == {REF: 3}
    assert {r["class"]: r["positives"] for r in panel.state["refs"]} == {"red": 2, "green": 1}

    panel.selected_labels = labels[:1]
    panel.call("tag_negs")  # a reference made a negative loses the reference tag
    assert dataset.count_label_tags() == {REF: 2, NEG: 1}
    rows = {r["class"]: r for r in panel.state["refs"]}
    assert sum(r["negatives"] for r in rows.values()) == 1
    assert all(r["fields"] == GT for r in rows.values())

    panel.call("show_refs")
    assert panel.triggered() == ["set_view", "notify"]
    assert panel.view._is_patches and len(panel.view) == 2
    assert set(panel.view.values(f"{GT}.id")) == {labels[1]["label_id"], labels[2]["label_id"]}
    panel.call("show_negs")
    assert len(panel.view) == 1 and panel.view.values(f"{GT}.id") == [labels[0]["label_id"]]

    # selections made in a patches view carry the patch's sample id: untag still works
    panel.selected_labels = [dict(labels[0], sample_id=panel.view.first().id)]
    panel.call("untag")
    assert dataset.count_label_tags() == {REF: 2}
    panel.call("show_negs")
    assert panel.state["message_variant"] == "warning" and "No label" in panel.notice()


def test_build_bank_lists_it_with_readable_columns(panel):
    panel.call("build")
    rows = panel.state["banks"]
    assert len(rows) == 1
    row = rows[0]
    assert row["key"] == "ground_truth-refs"
    assert row["classes"] == "red 1, green 1, blue 1"
    assert row["models"] == "fake RegionProposer (testing) + fake ColorEncoder (testing)"
    assert row["size"].endswith("KB") and row["created"][:2] == "20"
    assert panel.state["bank"] == "ground_truth-refs"
    assert "Built 'ground_truth-refs' v1: 3 reference(s), 0 negative(s)" in panel.notice()
    assert row["version"] == 1 and row["change"] == "first version"
    assert row["name"] == "ground_truth-refs v1" and row["created"].endswith(row["when"])
    # the table is a table
    assert "TableView" in str(panel.output["type"]["properties"]["banks"])


def test_build_without_references_explains_what_to_do(panel):
    panel.dataset.untag_labels(REF)
    panel.call("build")
    assert panel.state["message_variant"] == "warning"
    assert "tag a few labels as references" in panel.notice()
    assert panel.state["banks"] == []


def test_segment_run_evaluate_and_open_evaluation(panel):
    import fiftyone_ntt.fiftyone as nf

    dataset = panel.dataset
    panel.call("segment_view")  # no bank yet
    assert "No memory bank yet" in panel.notice()

    panel.call("build")
    panel.call("segment_view")
    prompt = panel.params_of("prompt_user_for_operation")
    assert prompt["operator_uri"] == "@fiftyone-ntt/no-time-to-train/ntt_segment"
    assert prompt["params"] == {"bank": "ground_truth-refs", "embeddings": True}
    assert prompt["on_success"].endswith("#refresh_quiet")  # no "Refreshed" toast

    nf.segment(dataset, "ground_truth-refs", "ntt_predictions", points_per_side=16)
    panel.call("on_change_view")  # what the App calls when the view changes
    (row,) = panel.state["runs"]
    assert (row["kind"], row["field"], row["state"]) == (
        "segmentation",
        "ntt_predictions",
        "completed",
    )
    assert row["progress"] == "6 / 6" and row["bank"] == "ground_truth-refs v1"
    # what the compact table shows: state with progress, the time without the year
    assert row["status"] == "completed 6 / 6"
    assert re.fullmatch(r"\d\d-\d\d \d\d:\d\d", row["when"]) and row["updated"].endswith(
        row["when"]
    )
    assert row["can_show"] and row["can_evaluate"] and not row["can_open_eval"]

    panel.call("run_show", row=0)
    assert len(panel.view) == 6 and "reload_dataset" in panel.triggered()

    panel.call("run_evaluate", row=0)
    assert "mAP" in panel.notice() and panel.state["message_variant"] == "success"
    assert "eval_ntt_predictions" in dataset.list_evaluations()
    rows = panel.state["runs"]
    assert [r["kind"] for r in rows] == ["segmentation", "evaluation"]
    assert rows[0]["can_open_eval"] and rows[1]["can_open_eval"]

    panel.call("run_open_eval", row=1)
    opened = panel.params_of("open_panel")
    assert opened["name"] == "model_evaluation_panel_builtin"
    assert opened["state"]["view"]["key"] == "eval_ntt_predictions"
    assert opened["state"]["view"]["page"] == "evaluation"
    assert panel.view._is_patches  # TP/FP/FN patches
    assert set(panel.view.distinct("type")) <= {"tp", "fp", "fn"}


def test_delegated_segmentation_shows_queued_then_cancel(panel):
    import fiftyone.operators as foo

    panel.call("build")
    foo.execute_operator(
        "@fiftyone-ntt/no-time-to-train/ntt_segment",
        dataset=panel.dataset,
        params={"bank": "ground_truth-refs", "out_field": "ntt", "points_per_side": 16},
        request_delegation=True,
    ).raise_exceptions()
    panel.call("on_refresh")
    (row,) = panel.state["runs"]
    assert (row["kind"], row["state"], row["field"]) == ("segmentation", "queued", "ntt")
    # queued: Cancel, not Mark failed (that one is for a worker that is gone)
    assert row["can_cancel"] and not row["can_mark_failed"] and row["op_id"]
    panel.call("run_mark_failed", row=0)
    assert panel.state["message_variant"] == "warning" and "use Cancel" in panel.notice()

    panel.call("run_cancel", row=0)
    (row,) = panel.state["runs"]
    assert row["state"] == "failed" and "cancelled" in row["error"]
    assert not row["can_cancel"] and not row["can_mark_failed"]
    panel.call("run_cancel", row=0)  # already failed: a message, not a crash
    assert panel.state["message_variant"] == "warning" and "nothing to cancel" in panel.notice()


def test_interrupted_run_offers_resume_with_its_settings(panel):
    import fiftyone.core.runs as fors

    import fiftyone_ntt.fiftyone as nf

    dataset = panel.dataset
    panel.call("build")
    nf.segment(dataset, "ground_truth-refs", "ntt", points_per_side=16)
    # what a killed run leaves: 2 samples written, results saying "running" with the count it
    # never saved, no live claim on the field (the row counts the samples written)
    dataset.select(dataset.exists("ntt").values("id")[2:]).set_values("ntt", [None] * 4)
    info = dataset.get_run_info("ntt")
    results = fors.RunResults(dataset, info.config, "ntt", status="running", total=6, processed=0)
    dataset.save_run_results("ntt", results, overwrite=True)

    panel.call("on_refresh")
    (row,) = panel.state["runs"]
    assert row["state"] == "interrupted" and row["can_resume"] and row["progress"] == "2 / 6"
    assert row["status"] == "interrupted 2 / 6"
    panel.call("run_resume", row=0)
    prompt = panel.params_of("prompt_user_for_operation")
    assert prompt["params"] == {
        "bank": "ground_truth-refs",
        "out_field": "ntt",
        "points_per_side": 16,
        "max_detections": 100,
        "skip_references": True,
        "resume": True,
    }

    panel.call("run_resume", row=7)  # a stale row index
    assert panel.state["message_variant"] == "error" and "Refresh" in panel.notice()


def _core_hash(dataset, field, drop_prefixes=("eval_",), drop_tags=False) -> str:
    """Hash of a Detections field without the attributes FiftyOne's evaluation adds to
    ground truth (``<eval_key>``, ``<eval_key>_id``, ``<eval_key>_iou``) and, if asked,
    without label tags (what tagging references changes, on explicit request)."""
    import hashlib

    import bson

    digest = hashlib.sha256()
    for doc in dataset._sample_collection.find({}, {field: 1}).sort("_id", 1):
        value = doc.get(field) or {}
        dets = []
        for det in value.get("detections", []):
            det = {k: v for k, v in det.items() if not k.startswith(drop_prefixes)}
            if drop_tags:
                det.pop("tags", None)
            dets.append(det)
        digest.update(bson.encode({"v": dets}))
    return digest.hexdigest()


def test_no_panel_action_modifies_ground_truth(panel, field_hash):
    import fiftyone_ntt.fiftyone as nf

    dataset = panel.dataset
    before = field_hash(dataset, GT)
    untagged = _core_hash(dataset, GT, drop_tags=True)
    panel.call("show_refs")
    panel.call("show_negs")
    panel.call("build")
    panel.call("segment_view")
    nf.segment(dataset, "ground_truth-refs", "ntt_predictions", points_per_side=16)
    panel.call("on_refresh")
    panel.call("run_show", row=0)
    panel.call("on_change_view")
    # tagging ground-truth labels changes their tags only, and only when asked
    panel.selected_labels = _gt_ids(dataset, [(2, 0)])
    assert field_hash(dataset, GT) == before  # nothing above touched the ground truth
    panel.call("tag_refs")
    assert field_hash(dataset, GT) != before
    assert _core_hash(dataset, GT, drop_tags=True) == untagged
    panel.selected_labels = _gt_ids(dataset, [(2, 0)])  # tagging cleared the selection
    panel.call("untag")
    assert field_hash(dataset, GT) == before  # back to exactly what it was
    core = _core_hash(dataset, GT, drop_prefixes=("eval_",))
    panel.call("run_evaluate", row=0)
    panel.call("run_open_eval", row=0)
    # evaluation adds FiftyOne's per-label match attributes, nothing else
    assert _core_hash(dataset, GT, drop_prefixes=("eval_",)) == core


def test_accept_and_reject_selected_predictions(panel, field_hash):
    import fiftyone_ntt.fiftyone as nf

    dataset = panel.dataset
    panel.call("build")
    nf.segment(dataset, "ground_truth-refs", "ntt_predictions", points_per_side=16)
    before = field_hash(dataset, GT)
    preds = [
        {"label_id": d.id, "sample_id": s.id, "field": "ntt_predictions"}
        for s in dataset.select_fields("ntt_predictions").exists("ntt_predictions")
        for d in s.ntt_predictions.detections
    ]
    assert len(preds) >= 3

    panel.call("reject")  # nothing selected
    assert panel.state["message_variant"] == "warning" and "Select predictions" in panel.notice()
    panel.selected_labels = _gt_ids(dataset, [(2, 0)])  # ground truth only
    panel.call("on_change_selected_labels")
    assert panel.state["selection"] == {"labels": 1, "predictions": 0}
    panel.call("accept")
    assert "not predictions" in panel.notice()

    panel.selected_labels = preds[:1] + _gt_ids(dataset, [(2, 0)])
    panel.call("on_change_selected_labels")
    assert panel.state["selection"] == {"labels": 2, "predictions": 1}
    panel.call("reject")
    assert "Rejected 1 prediction(s)" in panel.notice()
    assert "1 selected ground-truth label(s) left alone" in panel.notice()
    assert dataset.count_label_tags(label_fields=["ntt_predictions"]) == {NEG: 1}
    rows = {r["class"]: r for r in panel.state["refs"]}
    assert sum(r["negatives"] for r in rows.values()) == 1
    assert any("ntt_predictions" in r["fields"] for r in rows.values())

    panel.selected_labels = preds[1:3]
    panel.call("accept")
    assert "Accepted 2 prediction(s) as references" in panel.notice()
    assert dataset.count_label_tags(label_fields=["ntt_predictions"]) == {NEG: 1, REF: 2}
    panel.selected_labels = preds[:1]
    panel.call("accept")  # a rejected prediction accepted: one tag or the other
    assert dataset.count_label_tags(label_fields=["ntt_predictions"]) == {REF: 3}
    assert field_hash(dataset, GT) == before


STRIPE = (92, 30, 98, 80)
DISTRACTOR = [
    (1, (10, 10, 40, 40), "red"),
    (2, (10, 55, 40, 90), "green"),
    (4, (70, 30, 120, 80), None),
    (1, STRIPE, None),
]


def _preview_boxes(dataset, sample_id):
    from fiftyone_ntt.fiftyone.dataset.fields import PREVIEW_FIELD

    dataset.reload()
    sample = dataset[sample_id]
    w, h = sample.metadata.width, sample.metadata.height
    out = []
    for det in sample[PREVIEW_FIELD].detections:
        x, y, bw, bh = det.bounding_box
        box = tuple(round(v) for v in (x * w, y * h, (x + bw) * w, (y + bh) * h))
        out.append((det.label, round(det.confidence, 4), box, det.id))
    return sorted(out)


def test_preview_reject_rebuild_preview_again(panel, tmp_path, field_hash):
    import fiftyone as fo
    from ntt_painted import _paint_sample

    dataset = panel.dataset
    dataset.add_sample(_paint_sample(fo, tmp_path, 99, DISTRACTOR))
    dataset.compute_metadata()
    distractor = dataset.last().id
    before = field_hash(dataset, GT)

    panel.call("build")
    panel.call("preview_view")  # N = 8 samples of the view: shown in the App
    assert panel.view is not None and len(panel.view) == 8
    assert "reload_dataset" in panel.triggered()
    assert "Preview of 'ground_truth-refs' v1 on 8 sample(s)" in panel.notice()
    assert "models loaded" in panel.notice() or "models reused" in panel.notice()

    # in the modal (its own panel, loaded with the sample open): this sample only, the view
    # is left alone (set again, equal, so that the App loads the sample again)
    panel.view = None
    panel.current_sample = distractor
    panel.call("on_load")
    assert panel.state["modal"] is True
    panel.call("preview_sample")
    assert "on 1 sample(s)" in panel.notice()
    assert panel.view.values("id") == dataset.values("id")
    first = _preview_boxes(dataset, distractor)
    fp = [p for p in first if p[2][0] >= STRIPE[0] - 2 and p[2][2] <= STRIPE[2] + 2]
    assert [p[0] for p in fp] == ["red"], first
    true = [p[:3] for p in first if p[2] in ((10, 10, 40, 40), (10, 55, 40, 90))]
    assert sorted(p[0] for p in true) == ["green", "red"]

    panel.selected_labels = [
        {"label_id": fp[0][3], "sample_id": distractor, "field": "ntt_preview"}
    ]
    panel.call("on_change_selected_labels")
    assert panel.state["selection"] == {"labels": 1, "predictions": 1}
    panel.call("reject")
    panel.selected_labels = []
    panel.call("build")
    rows = panel.state["banks"]
    assert [(r["version"], r["negatives"], r["change"]) for r in rows] == [
        (2, 1, "+1 negative"),
        (1, 0, "first version"),
    ]
    assert "v2" in panel.notice()

    panel.call("preview_sample")
    second = _preview_boxes(dataset, distractor)
    assert not [p for p in second if p[2][0] >= STRIPE[0] - 2 and p[2][2] <= STRIPE[2] + 2]
    assert [p[:3] for p in second if p[2] in ((10, 10, 40, 40), (10, 55, 40, 90))] == true
    # the rejected label is kept (moved out of the replaced preview field)
    assert sum(r["negatives"] for r in panel.state["refs"]) == 1
    assert field_hash(dataset, GT) == before
