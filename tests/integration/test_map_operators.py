"""Issue 22 §2-3: the "Map predictions" and similarity operators through
``fiftyone.operators.execute_operator`` on a painted dataset with the fake models: thin glue
over :mod:`fiftyone_ntt.fiftyone.analysis.maps` (real MongoDB)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

PLUGIN = "@fiftyone-ntt/no-time-to-train"
GT = "ground_truth"
PRED = "ntt_predictions"


def _run(name, dataset, params=None):
    import fiftyone.operators as foo

    result = foo.execute_operator(f"{PLUGIN}/{name}", dataset=dataset, params=params or {})
    result.raise_exceptions()
    return result


@pytest.fixture
def segmented(painted_dataset):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.config import NTTConfig

    config = NTTConfig(points_per_side=16)
    nf.build_bank(painted_dataset, GT, "colours", config=config)
    nf.segment(
        painted_dataset,
        "colours",
        PRED,
        config=config.replace(keep_features=True),
        progress=False,
    )
    return painted_dataset


def test_map_operator_maps_and_opens_the_embeddings_panel(segmented):
    result = _run("ntt_map_predictions", segmented, {"pred_field": PRED, "bank": "colours"})
    out = result.result
    assert "error" not in out, out
    assert out["brain_key"] in segmented.list_brain_runs()
    assert out["method"] == "pca" and out["why"]
    assert {r["role"]: r["count"] for r in out["role_rows"]}["reference"] == 3
    requested = [r["operator_uri"] for r in result.executor.to_json()["requests"]]
    assert "open_panel" in " ".join(requested) and "reload_dataset" in " ".join(requested)


def test_map_operator_says_why_a_field_cannot_be_mapped(segmented):
    import fiftyone_ntt.fiftyone as nf

    nf.segment(segmented, "colours", "plain", progress=False)
    out = _run("ntt_map_predictions", segmented, {"pred_field": "plain", "bank": "colours"})
    assert "embeddings=True" in out.result["error"]
    assert not segmented.list_brain_runs()


def test_map_operator_maps_a_sample_of_images(segmented):
    # 4 of the 8 images: at least one of the 5 with predictions (references and the
    # background image have none)
    params = {"pred_field": PRED, "bank": "colours", "max_samples": 4, "method": "pca"}
    out = _run("ntt_map_predictions", segmented, params).result
    assert "error" not in out, out
    everything = _run("ntt_map_predictions", segmented, {**params, "max_samples": None}).result
    # the bank's labels are always on the map; fewer predictions with a sample of images
    assert out["roles"]["reference"] == everything["roles"]["reference"] == 3
    assert out["points"] < everything["points"]


def test_similarity_operator_indexes_for_sort_by_similarity(segmented):
    out = _run("ntt_similar_predictions", segmented, {"pred_field": PRED, "bank": "colours"}).result
    assert "error" not in out, out
    assert out["brain_key"].startswith("ntt_sim_")
    assert out["brain_key"] in segmented.list_brain_runs()
    assert out["field"] in out["hint"]


def test_map_form_says_which_method_and_why(segmented):
    import asyncio
    import json

    from fiftyone.operators.executor import _parse_ctx, resolve_type
    from fiftyone.operators.registry import OperatorRegistry

    request = _parse_ctx(dataset=segmented, params={"pred_field": PRED, "bank": "colours"})
    uri = f"{PLUGIN}/ntt_map_predictions"
    form = json.dumps(asyncio.run(resolve_type(OperatorRegistry(), uri, request)).to_json())
    count = segmented.count(f"{PRED}.detections")
    assert f"{count} predictions: pca" in form and "too few" in form
