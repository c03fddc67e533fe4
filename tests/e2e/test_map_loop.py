"""Issue 22's loop in the real App (headless Chromium, the fake models): a run segmented
with features and evaluated (through the SDK: the App adds nothing there), *Map predictions*
from the "No Time to Train" panel (FiftyOne's Embeddings panel shows the map, coloured by
role), the false-positive cluster selected, *Reject* from the panel, rebuild, preview: those
false positives are gone and the true positives stay.

How the cluster is selected: the Embeddings panel draws its points on a WebGL canvas, where
a lasso cannot be placed reliably headless, so the panel's *Select false positives* selects
the map's ``fp`` points through the App's own selection (the ``set_selected_labels``
operation: the same selected labels of the map field a lasso around that cluster gives, which
*Reject* then reads from ``ctx.selected_labels``). Screenshots: ``test-artifacts/map-*.png``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from test_panel_loop import (  # noqa: E402
    LOAD_TIMEOUT_MS,
    click,
    loop_dataset,  # noqa: F401 (a fixture)
    predictions,
    wait_text,
)
from test_workflow import dismiss_popovers, wait_for_grid  # noqa: E402

GT = "ground_truth"
BANK = "ground_truth-refs"
OUT = "ntt_predictions"
PREVIEW = "ntt_preview"


def shot(page, artifacts_dir: Path, name: str) -> None:
    page.wait_for_timeout(500)
    page.screenshot(path=str(artifacts_dir / f"map-{name}.png"))


def open_panel(page):
    """The "No Time to Train" panel beside the grid (opened unless it is open)."""
    panel = page.locator("[data-cy=panel-content-ntt_panel]").first
    if panel.count() and panel.is_visible():
        return panel
    page.locator("[data-cy=new-panel-btn]").first.click()
    page.wait_for_timeout(800)
    page.locator("[data-cy=new-panel-option-ntt_panel]").click(modifiers=["Alt"])
    panel = page.locator("[data-cy=panel-content-ntt_panel]").first
    wait_text(panel, "References")
    return panel


def test_map_reject_the_false_positive_cluster(page, app_url, request, artifacts_dir):
    dataset = request.getfixturevalue("loop_dataset")
    try:
        _map_loop(page, app_url, dataset, artifacts_dir)
    except BaseException:
        page.screenshot(path=str(artifacts_dir / "map-failure.png"))
        raise


def _map_loop(page, app_url, dataset, artifacts_dir):
    from fiftyone import ViewField as F

    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.analysis.maps import ROLE_ATTRIBUTE, map_field_name

    # the SDK: bank v1, a run with features, its evaluation
    nf.build_bank(dataset, GT, BANK)
    nf.segment(dataset, BANK, OUT, points_per_side=16, embeddings=True, progress=False)
    nf.evaluate(dataset, OUT, f"eval_{OUT}", gt_field=GT)
    outcomes = dataset.values(["id", f"{OUT}.detections"])
    false_positives = {
        (s, d.label, tuple(d.bounding_box))
        for s, dets in zip(*outcomes)
        for d in dets or []
        if d[f"eval_{OUT}"] == "fp"
    }
    true_positives = {
        (s, d.label, tuple(round(v, 3) for v in d.bounding_box))
        for s, dets in zip(*outcomes)
        for d in dets or []
        if d[f"eval_{OUT}"] == "tp"
    }
    assert len(false_positives) >= 2 and true_positives

    page.set_viewport_size({"width": 1800, "height": 1000})
    page.goto(f"{app_url}datasets/{dataset.name}")
    wait_for_grid(page, len(dataset))
    panel = open_panel(page)

    # 1. Map predictions: the form for the run and its bank; the Embeddings panel opens
    click(panel, "Map predictions")
    dialog = page.locator("[role=dialog]").first
    dialog.wait_for(timeout=LOAD_TIMEOUT_MS)
    page.wait_for_timeout(1500)
    dialog.get_by_role("button", name="Execute").click()
    wait_text(page, "Points per role")
    page.get_by_role("button", name="Close").last.click()
    card = page.get_by_text("pre-computed embeddings (PCA)").first
    card.wait_for(timeout=LOAD_TIMEOUT_MS)
    dismiss_popovers(page)
    card.click()
    page.wait_for_timeout(2000)
    page.get_by_text("Color by", exact=False).first.click()  # colour the points by role
    page.wait_for_timeout(800)
    page.get_by_role("option").filter(has_text=ROLE_ATTRIBUTE).first.dispatch_event("click")
    page.wait_for_timeout(3000)
    shot(page, artifacts_dir, "1-map")

    # 2. the false-positive cluster, selected through the App's selection (see the docstring)
    field = map_field_name(OUT, BANK, 1)
    dataset.reload()
    assert field in dataset.list_brain_runs()
    fp_count = dataset.to_patches(field).match(F(f"{field}.{ROLE_ATTRIBUTE}") == "fp").count()
    assert fp_count == len(false_positives)
    click(panel, "Select false positives")
    wait_text(panel, f"{fp_count} labels selected")
    shot(page, artifacts_dir, "2-fp-selected")

    # 3. reject them from the panel; rebuild: v2 with those negatives
    click(panel, "Reject selected predictions (false positives)")
    wait_text(panel, f"{fp_count} label(s) rejected")
    dataset.reload()
    assert dataset.count_label_tags(label_fields=[OUT]) == {"ntt:neg": fp_count}
    click(panel, "Build / rebuild")
    wait_text(panel, f"+{fp_count} negatives")
    shot(page, artifacts_dir, "3-rejected-rebuilt")

    # 4. preview the images of the cluster: the false positives are gone, the true
    # positives stay. The App is still on our dataset (test_app_stays_on_dataset.py).
    assert page.url == f"{app_url}datasets/{dataset.name}"
    n_input = panel.locator(
        "xpath=.//*[normalize-space(text())='N (samples of the view to preview)']"
        "/following::input[1]"
    ).first
    n_input.fill(str(len(dataset)))
    n_input.press("Tab")
    page.wait_for_timeout(800)
    preview = panel.get_by_role("button", name="Preview on N samples of the view").last
    for _ in range(120):  # enabled once the build's work is over
        if preview.is_enabled():
            break
        page.wait_for_timeout(500)
    click(panel, "Preview on N samples of the view", wait_ms=3000)
    wait_text(panel, f"Preview of '{BANK}' v2")
    samples = sorted({s for s, _, _ in false_positives})
    for sample_id in samples:
        previewed = predictions(dataset, sample_id, PREVIEW)
        boxes = dataset[sample_id][PREVIEW].detections
        got = {(sample_id, d.label, tuple(round(v, 3) for v in d.bounding_box)) for d in boxes}
        assert not {(s, lab, tuple(round(v, 3) for v in b)) for s, lab, b in false_positives} & got
        assert {t for t in true_positives if t[0] == sample_id} <= got, previewed
    shot(page, artifacts_dir, "4-preview-clean")
