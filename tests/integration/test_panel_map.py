"""Issue 22 in the App, without a browser: the panel's runs and previews keep features, the
Segment form's "Keep features (for the map)", and the panel's *Map predictions*, *More like
this* and *Accept* / *Reject* / *Untag* on labels selected on a map (``PanelDriver``: the
panel through FiftyOne's operator machinery, real MongoDB, painted images, the fake models).
"""

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
PLUGIN = "@fiftyone-ntt/no-time-to-train"
SEGMENT = f"{PLUGIN}/ntt_segment"


@pytest.fixture
def panel(painted_dataset):
    driver = PanelDriver(painted_dataset)
    driver.call("on_load")
    return driver


def _feature_counts(dataset, field):
    from fiftyone_ntt.fiftyone.analysis.features import feature_count

    return feature_count(dataset, field)


def test_segment_from_the_panel_keeps_features_and_the_form_says_so(panel):
    import fiftyone.operators as foo

    dataset = panel.dataset
    panel.call("build")
    panel.call("segment_view")
    params = panel.params_of("prompt_user_for_operation")["params"]
    assert params == {"bank": BANK, "embeddings": True}
    form = _form("ntt_segment", dataset, params)["type"]["properties"]
    assert form["embeddings"]["view"]["label"] == "Keep features (for the map)"
    # opened elsewhere (the operator browser): off, the paper's run
    assert _form("ntt_segment", dataset, {"bank": BANK})["type"]["properties"]["embeddings"][
        "default"
    ] in (False, None)

    params = {**params, "points_per_side": 16}
    foo.execute_operator(SEGMENT, dataset=dataset, params=params).raise_exceptions()
    with_features, total = _feature_counts(dataset, PRED)
    assert with_features == total > 0
    foo.execute_operator(
        SEGMENT, dataset=dataset, params={"bank": BANK, "out_field": "plain", "points_per_side": 16}
    ).raise_exceptions()
    assert _feature_counts(dataset, "plain")[0] == 0
    # the same predictions either way: features are an extra attribute
    for path in ("label", "confidence", "bounding_box"):
        assert dataset.values(f"{PRED}.detections.{path}") == dataset.values(
            f"plain.detections.{path}"
        )


def test_resuming_a_run_with_features_keeps_them(panel):
    import fiftyone.operators as foo
    from test_panel_patches_resume import _interrupt

    dataset = panel.dataset
    panel.call("build")
    params = {"bank": BANK, "embeddings": True, "points_per_side": 16}
    foo.execute_operator(SEGMENT, dataset=dataset, params=params).raise_exceptions()
    _interrupt(dataset, PRED, keep=2)
    panel.call("on_refresh")
    row = next(i for i, r in enumerate(panel.state["runs"]) if r["field"] == PRED)
    panel.call("run_resume", row=row)
    resumed = panel.params_of("prompt_user_for_operation")["params"]
    assert resumed["embeddings"] is True
    summary = foo.execute_operator(SEGMENT, dataset=dataset, params=resumed).result
    assert "error" not in summary and summary["done_before"] == 2, summary
    with_features, total = _feature_counts(dataset, PRED)
    assert with_features == total > 0


def test_preview_from_the_panel_keeps_features(panel):
    from fiftyone_ntt.fiftyone.dataset.fields import PREVIEW_FIELD

    panel.call("build")
    panel.call("set_preview_n", value=2)
    panel.call("preview_view")
    assert "Preview of" in panel.notice()
    with_features, total = _feature_counts(panel.dataset, PREVIEW_FIELD)
    assert with_features == total > 0


@pytest.fixture
def mapped(panel):
    """A run with features, evaluated and on a map, the panel refreshed."""
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.analysis.maps import map_predictions

    dataset = panel.dataset
    panel.call("build")
    nf.segment(dataset, BANK, PRED, points_per_side=16, embeddings=True, progress=False)
    nf.evaluate(dataset, PRED, "ev", gt_field=GT)
    field = map_predictions(dataset, PRED, BANK)["brain_key"]
    panel.call("on_refresh")
    return panel, field


def _map_labels(dataset, field, roles):
    """What a lasso of the points of ``roles`` selects: the App's selected labels."""
    from fiftyone_ntt.fiftyone.analysis.maps import ROLE_ATTRIBUTE

    sample_ids, ids, got = dataset.values(
        ["id", f"{field}.detections.id", f"{field}.detections.{ROLE_ATTRIBUTE}"]
    )
    return [
        {"label_id": i, "field": field, "sample_id": s}
        for s, labels, label_roles in zip(sample_ids, ids, got)
        for i, r in zip(labels or [], label_roles or [])
        if r in roles
    ]


def _tagged(dataset, tag):
    return sorted(dataset.select_labels(tags=tag).values(f"{PRED}.detections.id", unwind=True))


def test_map_button_opens_the_map_form_for_the_run_and_bank(mapped):
    import fiftyone.operators as foo

    panel, _ = mapped
    assert panel.find("map_heading") is not None
    panel.call("map_open")
    prompt = panel.params_of("prompt_user_for_operation")
    assert prompt["operator_uri"] == f"{PLUGIN}/ntt_map_predictions"
    assert prompt["params"] == {"pred_field": PRED, "bank": BANK}
    result = foo.execute_operator(
        prompt["operator_uri"], dataset=panel.dataset, params=prompt["params"]
    )
    result.raise_exceptions()
    assert "open_panel" in " ".join(
        r["operator_uri"] for r in result.executor.to_json()["requests"]
    )


def test_map_button_offers_the_missing_features(panel):
    import fiftyone_ntt.fiftyone as nf

    panel.call("build")
    nf.segment(panel.dataset, BANK, "plain", points_per_side=16, progress=False)
    panel.call("on_refresh")
    panel.call("map_choose", value="plain")
    panel.call("map_open")
    params = panel.params_of("prompt_user_for_operation")["params"]
    assert params == {"pred_field": "plain", "bank": BANK, "recompute_features": True}


def test_reject_then_untag_a_lasso_on_the_map_from_the_panel(mapped):
    from fiftyone_ntt.fiftyone.analysis.maps import source_labels

    panel, field = mapped
    dataset = panel.dataset
    lasso = _map_labels(dataset, field, {"fp"})
    fps = sorted(source_labels(dataset, field, [s["label_id"] for s in lasso])[PRED])
    assert len(lasso) == len(fps) >= 2

    # 'Select false positives': the App's selection of the map's fp points
    panel.call("map_select_role")
    selected = panel.params_of("set_selected_labels")["labels"]
    assert sorted(s["label_id"] for s in selected) == sorted(s["label_id"] for s in lasso)
    assert f"{len(lasso)} fp point(s) of {field!r} selected" in panel.notice()
    # each as a Python Session reads a selected label (a missing type reaches it as null, it
    # fails to read the event, drops its connection and re-sends its own state later)
    from fiftyone.core.session.events import LabelData

    assert all(isinstance(LabelData(**s).type, str) and s.get("type") for s in selected)

    panel.selected_labels = selected
    panel.call("reject")
    assert panel.state["message_variant"] == "success", panel.notice()
    assert f"{len(fps)} label(s) rejected" in panel.notice()
    assert _tagged(dataset, "ntt:neg") == fps
    assert panel.selected_labels == []  # used: unselected

    panel.selected_labels = lasso
    panel.call("untag")
    assert f"{len(fps)} label(s) untagged" in panel.notice()
    assert _tagged(dataset, "ntt:neg") == []

    # accept: the true positives become references; the references on the map are ground
    # truth, left as they are
    panel.selected_labels = _map_labels(dataset, field, {"tp", "reference"})
    panel.call("accept")
    tps = len(_map_labels(dataset, field, {"tp"}))
    assert f"{tps} label(s) accepted; 3 ground-truth label(s) left as they are" in panel.notice()
    assert len(_tagged(dataset, "ntt:ref")) == tps


def test_more_like_this_from_a_false_positive(mapped):
    import fiftyone.operators as foo

    panel, field = mapped
    dataset = panel.dataset
    first = _map_labels(dataset, field, {"fp"})[:1]
    panel.selected_labels = first
    panel.call("map_more_like_this")  # no similarity index yet: its form opens
    prompt = panel.params_of("prompt_user_for_operation")
    assert prompt["operator_uri"] == f"{PLUGIN}/ntt_similar_predictions"
    assert prompt["params"] == {"pred_field": PRED, "bank": BANK}
    foo.execute_operator(
        prompt["operator_uri"], dataset=dataset, params=prompt["params"]
    ).raise_exceptions()

    panel.selected_labels = first
    panel.call("map_more_like_this")
    assert "most like the 1 selected label(s)" in panel.notice(), panel.notice()
    assert panel.view is not None and first[0]["label_id"] not in panel.view.values("id")


def test_map_labels_keep_their_ids_when_the_map_is_rebuilt(mapped):
    # the Embeddings panel's points and a selection on them name map label ids: indexing the
    # same field and bank (or mapping it again) must not replace them
    from fiftyone_ntt.fiftyone.analysis.maps import map_predictions, similar_predictions

    panel, field = mapped
    dataset = panel.dataset
    before = sorted(dataset.values(f"{field}.detections.id", unwind=True))
    similar_predictions(dataset, PRED, BANK)
    assert sorted(dataset.values(f"{field}.detections.id", unwind=True)) == before
    map_predictions(dataset, PRED, BANK)
    assert sorted(dataset.values(f"{field}.detections.id", unwind=True)) == before


def test_map_and_improve_take_the_same_newest_run():
    """Map chose "the newest" by the minute the Runs table shows and Improve by the full
    time: two runs of one minute could give the two sections different runs. Both now ask
    these two functions (operators/panel/map.py, improve.py)."""
    from fiftyone_ntt.fiftyone.app.panel_state import chosen_segmentation, segmentation_choices

    def row(field, iso, **extra):
        return {
            "kind": "segmentation",
            "can_show": True,
            "field": field,
            "updated": iso[:16],
            "updated_iso": iso,
            **extra,
        }

    rows = [
        row("later", "2026-12-07 10:00:40"),
        row("earlier", "2026-12-07 10:00:05"),
        row("gone", "2026-12-07 10:00:50", can_show=False),  # its field was deleted
        {"kind": "evaluation", "field": "eval_later", "updated_iso": "2026-12-07 10:00:59"},
    ]
    rows.reverse()  # the Runs table's order is not the time's
    assert [r["field"] for r in segmentation_choices(rows)] == ["later", "earlier"]
    assert chosen_segmentation(rows, None)["field"] == "later"
    assert chosen_segmentation(rows, "earlier")["field"] == "earlier"
    assert chosen_segmentation(rows, "gone")["field"] == "later"
    assert chosen_segmentation([], "earlier") is None
