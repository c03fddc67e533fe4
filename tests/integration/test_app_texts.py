"""Issue 20 item 15: small wrong texts in the App, through the operators' ``resolve_input``
/ ``execute`` and the panel's callbacks on a real MongoDB with the fake models.

- a numeric field's bound is worded by one helper ("at least 1", not FiftyOne's "greater
  than 1" for an inclusive minimum of 1);
- *About* names the encoder family actually configured (DINOv3, not "DINOv2");
- a model is named readably everywhere by one function ("fake ColorEncoder (testing)",
  "SAM 2.1 Hiera-T + DINOv2 ViT-S/14"), not "testing + fiftyone_ntt.testing.ColorEncoder";
- the panel's evaluation rows show the bank with its version ("key v1").
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from test_ntt_operators import GT, _form, _run, _validation_error

pytestmark = pytest.mark.integration

sys.path.insert(0, str(Path(__file__).resolve().parent))

from panel_driver import PanelDriver  # noqa: E402

PLUGIN_NAME = "@fiftyone-ntt/no-time-to-train"
FAKE_MODELS = "fake RegionProposer (testing) + fake ColorEncoder (testing)"


def _walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


# --- 1. numeric fields: the bound in words -----------------------------------------------

#: (operator, field, bad value, what the message must say); ``segment``'s need a bank.
NUMBER_CASES = [
    ("ntt_segment", "max_detections", 0, "at least 1"),
    ("ntt_segment", "max_detections", -3, "at least 1"),
    ("ntt_segment", "batch_size", 0, "at least 1"),
    ("ntt_segment", "points_per_side", 0, "at least 1"),
    ("ntt_segment", "batch_images", 0, "at least 1"),
    ("ntt_segment", "num_shards", 0, "at least 1"),
    ("ntt_segment", "prefetch", -1, "at least 0"),
    ("ntt_segment", "score_threshold", 1.5, "at most 1"),
    ("ntt_segment", "score_threshold", -0.5, "at least 0"),
    ("ntt_sample_references", "shots", 0, "at least 1"),
]


@pytest.mark.parametrize(("operator", "field", "value", "bound"), NUMBER_CASES)
def test_number_fields_word_their_bound(painted_dataset, operator, field, value, bound):
    dataset = painted_dataset
    params = {field: value}
    if operator == "ntt_segment":
        _run("ntt_build_bank", dataset, {"gt_field": GT, "bank_key": "colours"})
        params["bank"] = "colours"
    else:
        params["gt_field"] = GT
    message = _validation_error(operator, dataset, params)
    assert f"Path: {field}" in message, message
    assert bound in message and str(value) in message, message
    assert "greater than" not in message and "less than" not in message, message
    # the form says it too, and gives FiftyOne no bound to word its own way in the App
    prop = _form(operator, dataset, params)["type"]["properties"][field]
    assert prop["invalid"] and bound in prop["error_message"]
    assert prop["type"]["min"] is None and prop["type"]["max"] is None


def test_number_fields_accept_their_bound(painted_dataset):
    dataset = painted_dataset
    _run("ntt_build_bank", dataset, {"gt_field": GT, "bank_key": "colours"})
    params = {
        "bank": "colours",
        "max_detections": 1,
        "batch_size": 1,
        "points_per_side": 16,
        "num_shards": 1,
        "prefetch": 0,
        "score_threshold": 0.0,
    }
    props = _form("ntt_segment", dataset, params)["type"]["properties"]
    assert not any(props[name].get("invalid") for name in params if name != "bank")
    result = _run("ntt_segment", dataset, params).result
    assert "error" not in result and result["processed"] > 0


def test_panel_preview_n_says_at_least_1(painted_dataset):
    panel = PanelDriver(painted_dataset)
    panel.call("on_load")

    def field():
        (prop,) = [n for n in _walk(panel.output) if n.get("name") == "preview_n"] or [None]
        if prop is None:  # rendered as a property of its section
            found = [
                n["preview_n"] for n in _walk(panel.output) if isinstance(n.get("preview_n"), dict)
            ]
            prop = found[0]
        return prop

    assert field()["type"]["min"] is None  # the App's own check would say "greater than 1"
    panel.call("set_preview_n", value=0)
    prop = field()
    assert prop.get("invalid") and "at least 1" in prop["error_message"]
    assert "0" in prop["error_message"]
    assert panel.state["preview_n"] == 0  # what the field shows (Preview refuses it)
    panel.call("set_preview_n", value=3)
    assert not field().get("invalid") and panel.state["preview_n"] == 3


# --- 2. About: the encoder family actually configured ------------------------------------


def test_about_names_the_configured_encoder_family(demo_dataset, tmp_path, monkeypatch):
    import fiftyone.operators as foo

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    result = foo.execute_operator(f"{PLUGIN_NAME}/ntt_about", ctx={"dataset": demo_dataset})
    result.raise_exceptions()
    roles = {(r["preset"], r["model"]): r["role"] for r in result.result["weights"]}
    assert roles[("accurate", "facebook/dinov3-vitl16-pretrain-lvd1689m")] == "DINOv3"
    assert roles[("paper", "facebook/dinov2-large")] == "DINOv2"
    assert roles[("paper", "facebook/sam2-hiera-large")] == "SAM 2"


def test_about_names_the_models_readably(demo_dataset, monkeypatch):
    import fiftyone.operators as foo

    monkeypatch.setenv("FIFTYONE_NTT_TEST_MODELS", "fake")
    result = foo.execute_operator(f"{PLUGIN_NAME}/ntt_about", ctx={"dataset": demo_dataset})
    result.raise_exceptions()
    assert result.result["models"].startswith(FAKE_MODELS)
    monkeypatch.delenv("FIFTYONE_NTT_TEST_MODELS")
    result = foo.execute_operator(f"{PLUGIN_NAME}/ntt_about", ctx={"dataset": demo_dataset})
    result.raise_exceptions()
    assert "SAM 2.1 Hiera-L + DINOv2 ViT-L/14" in result.result["models"]


# --- 3. one readable model description everywhere -----------------------------------------


def test_models_are_named_readably_everywhere(painted_dataset):
    dataset = painted_dataset
    built = _run("ntt_build_bank", dataset, {"gt_field": GT, "bank_key": "colours"}).result
    assert built["models_text"] == FAKE_MODELS

    listed = _run("ntt_manage_banks", dataset, {"action": "list"}).result
    assert [r["models"] for r in listed["bank_rows"]] == [FAKE_MODELS]
    form = _form("ntt_manage_banks", dataset, {"action": "list"})["type"]["properties"]
    assert FAKE_MODELS in str(form["banks_table"])
    inspected = _run("ntt_manage_banks", dataset, {"action": "inspect", "bank": "colours"})
    details = {r["what"]: r["value"] for r in inspected.result["detail_rows"]}
    assert details["models (proposer + encoder)"] == FAKE_MODELS

    form = _form("ntt_segment", dataset, {"bank": "colours"})["type"]["properties"]
    assert FAKE_MODELS in str(form["bank_models"])

    panel = PanelDriver(dataset)
    panel.call("on_load")
    (row,) = panel.state["banks"]
    assert row["models"] == FAKE_MODELS
    assert "testing + fiftyone_ntt" not in str(panel.output)


@pytest.mark.parametrize(
    ("identity", "text"),
    [
        (
            {"family": "sam2", "version": "2.1", "arch": "hiera_tiny", "source": "/m/x.pt"},
            "SAM 2.1 hiera-tiny (x.pt)",
        ),
        ({"family": "sam2", "source": "facebook/sam2.1-hiera-tiny"}, "SAM 2.1 Hiera-T"),
        (
            {"family": "dinov2", "arch": "vit_small", "patch_size": 14, "source": "/w/dino"},
            "DINOv2 ViT-S/14 (dino)",
        ),
        (
            {"family": "dinov3", "arch": "vit_large", "patch_size": 16, "source": "/w/d3"},
            "DINOv3 ViT-L/16 (d3)",
        ),
        ({"family": "edgetam", "arch": "repvit", "source": "yonigozlan/EdgeTAM-hf"}, "EdgeTAM"),
        (
            {"family": "dinov2", "arch": "vit_tiny_random", "source": "tiny-random-dinov2(seed=0)"},
            "tiny random DINOv2 (testing)",
        ),
        ("facebook/dinov2-small", "DINOv2 ViT-S/14"),
        ("fiftyone_ntt.testing.ColorEncoder", "fake ColorEncoder (testing)"),
        ("testing", "fake RegionProposer (testing)"),
        ({}, "unknown model"),
    ],
)
def test_model_description(identity, text):
    from fiftyone_ntt.fiftyone.dataset.model_cache import describe_model

    assert describe_model(identity) == text


# --- 4. evaluation rows show the bank's version ------------------------------------------


def test_evaluation_rows_show_the_bank_version(painted_dataset):
    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    panel = PanelDriver(dataset)
    panel.call("on_load")
    panel.call("build")
    nf.segment(dataset, "ground_truth-refs", "ntt_predictions", points_per_side=16)
    panel.call("on_change_view")
    panel.call("run_evaluate", row=0)
    rows = {r["kind"]: r for r in panel.state["runs"]}
    assert rows["segmentation"]["bank"] == "ground_truth-refs v1"
    assert rows["evaluation"]["bank"] == "ground_truth-refs v1"
    listed = _run("ntt_runs", dataset, {}).result["rows"]
    assert {r["kind"]: r["bank"] for r in listed}["evaluate"] == "ground_truth-refs v1"
