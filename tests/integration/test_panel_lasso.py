"""Issue 22 §4: a lasso in FiftyOne's Embeddings panel reaches the panel's *Accept* /
*Reject* / *Untag selected*, with the count in the selection line and in the message.

A lasso does not set the App's selected labels: FiftyOne 1.22's Embeddings panel puts it in
the request's extended stages (``extended``: ``MatchLabels`` of the map's label ids in the
samples grid, ``Select`` of patch ids in a patches view of the map field), and
``set_extended_selection`` (or an older panel) in ``ctx.extended_selection``
(``{"selection": [label ids], "scope": ...}``). ``PanelDriver`` sends both as the App does.
No browser test: the Embeddings plot is WebGL and cannot be lassoed headless, so the App's
lasso is given here in the exact shape the App sends.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

sys.path.insert(0, str(Path(__file__).resolve().parent))

from panel_driver import PanelDriver  # noqa: E402
from test_panel_map import BANK, GT, PRED, _map_labels, _tagged  # noqa: E402

MATCH = "fiftyone.core.stages.MatchLabels"
SELECT = "fiftyone.core.stages.Select"


@pytest.fixture
def lassoed(painted_dataset):
    """A run with features, evaluated and on a map, the panel loaded: ``(panel, map field)``
    (as ``test_panel_map.mapped``)."""
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.analysis.maps import map_predictions

    panel = PanelDriver(painted_dataset)
    panel.call("on_load")
    panel.call("build")
    nf.segment(painted_dataset, BANK, PRED, points_per_side=16, embeddings=True, progress=False)
    nf.evaluate(painted_dataset, PRED, "ev", gt_field=GT)
    field = map_predictions(painted_dataset, PRED, BANK)["brain_key"]
    panel.call("on_refresh")
    return panel, field


def _lasso_stage(field, labels):
    """What the Embeddings panel sends for a lasso of ``labels`` in the samples grid."""
    return {MATCH: {"fields": [field], "ids": [s["label_id"] for s in labels]}}


def _sources(dataset, field, labels):
    from fiftyone_ntt.fiftyone.analysis.maps import source_labels

    return sorted(source_labels(dataset, field, [s["label_id"] for s in labels])[PRED])


def _selection_line(panel):
    return str(panel.find("selection_line"))


def test_a_lasso_is_counted_rejected_with_its_count_and_cleared(lassoed):
    panel, field = lassoed
    dataset = panel.dataset
    lasso = _map_labels(dataset, field, {"fp"})
    fps = _sources(dataset, field, lasso)
    assert len(fps) == len(lasso) >= 2

    panel.extended = _lasso_stage(field, lasso)
    panel.call("on_change_view")  # the App's event when its extended stages change
    n = len(lasso)
    assert panel.state["selection"] == {"labels": n, "predictions": n, "on_map": True}
    assert f"{n} labels selected on the map ({n} predictions)" in _selection_line(panel)

    panel.call("reject")
    assert panel.state["message_variant"] == "success", panel.notice()
    assert f"{n} label(s) rejected" in panel.notice()
    assert _tagged(dataset, "ntt:neg") == fps
    # used: the App's lasso is reset (its stage and its extended selection)
    assert panel.params_of("set_extended_selection")["reset"] is True
    assert panel.extended is None and panel.extended_selection is None
    assert panel.state["selection"]["labels"] == 0


def test_untag_undoes_a_lasso_given_as_the_extended_selection(lassoed):
    panel, field = lassoed
    dataset = panel.dataset
    lasso = _map_labels(dataset, field, {"fp"})
    ids = [s["label_id"] for s in lasso]
    panel.extended_selection = {"selection": ids, "scope": "@fiftyone/embeddings"}
    panel.call("on_change_extended_selection")
    assert panel.state["selection"]["labels"] == len(ids)
    panel.call("reject")
    assert len(_tagged(dataset, "ntt:neg")) == len(ids)

    panel.extended_selection = {"selection": ids, "scope": "@fiftyone/embeddings"}
    panel.call("untag")
    assert f"{len(ids)} label(s) untagged" in panel.notice(), panel.notice()
    assert _tagged(dataset, "ntt:neg") == []


def test_accepting_a_lasso_in_a_patches_view_skips_the_ground_truth(lassoed):
    panel, field = lassoed
    dataset = panel.dataset
    lasso = _map_labels(dataset, field, {"tp", "reference"})
    tps = len(_map_labels(dataset, field, {"tp"}))
    refs = len(lasso) - tps
    assert tps and refs
    # a patches view of the map field: patch ids are label ids
    panel.view = dataset.to_patches(field)
    panel.extended = {SELECT: {"sample_ids": [s["label_id"] for s in lasso], "ordered": False}}
    panel.call("on_change_view")
    assert panel.state["selection"] == {"labels": len(lasso), "predictions": tps, "on_map": True}
    panel.call("accept")
    assert f"{tps} label(s) accepted; {refs} ground-truth label(s) left as they are" in (
        panel.notice()
    )
    assert len(_tagged(dataset, "ntt:ref")) == tps


def test_selected_labels_come_before_a_lasso(lassoed):
    panel, field = lassoed
    dataset = panel.dataset
    fps = _map_labels(dataset, field, {"fp"})
    panel.selected_labels = fps[:1]
    panel.extended = _lasso_stage(field, fps)
    panel.call("reject")
    assert "1 label(s) rejected" in panel.notice(), panel.notice()
    assert len(_tagged(dataset, "ntt:neg")) == 1
