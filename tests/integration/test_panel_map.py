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
