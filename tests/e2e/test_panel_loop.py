"""The curation loop through the "No Time to Train" panel, in the real App in headless
Chromium: open the panel, show the references, build v1, preview on a sample with a known
distractor (a false positive appears), reject it, rebuild (v2, "+1 negative"), preview
again (the false positive is gone, the true detections unchanged), schedule a segmentation
of the view with a delegated worker running and follow it in the panel, evaluate, open the
evaluation.

The dataset is the painted one (flat-colour rectangles, which the App's fake models segment
exactly) plus one sample with a distractor: a thin red stripe on a yellow board, which the
fake encoder finds red-like (a confident false positive "red"). Screenshots of each step go
to ``test-artifacts/panel-*.png``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from test_workflow import dismiss_popovers, form_input, wait_for_grid  # noqa: E402

LOAD_TIMEOUT_MS = 120_000
RUN_TIMEOUT_MS = 120_000
GT = "ground_truth"
PREVIEW = "ntt_preview"
OUT = "ntt_predictions"
#: The distractor sample: a true red and a true green square, and a red stripe (XYXY px)
#: on a yellow board, neither of which is in the ground truth.
STRIPE = (92, 30, 98, 80)
DISTRACTOR_LAYOUT = [
    (1, (10, 10, 40, 40), "red"),
    (2, (10, 55, 40, 90), "green"),
    (4, (70, 30, 120, 80), None),
    (1, STRIPE, None),
]
#: Seconds the delegated worker's fake proposer sleeps per image, so that its progress can
#: be seen in the panel while it runs.
WORKER_SLEEP_S = 0.8
WORKER = r"""
import sys, time
name, sleep = sys.argv[1], float(sys.argv[2])
import fiftyone_ntt.fiftyone.dataset.model_cache as models
from fiftyone_ntt.testing import ColorEncoder, RegionProposer
class Slow(RegionProposer):
    def embed(self, pixels):
        time.sleep(sleep)
        return super().embed(pixels)
models.get_models = lambda *a, **k: (ColorEncoder(), Slow())
from fiftyone.operators.delegated import DelegatedOperationService
deadline = time.monotonic() + 120
while time.monotonic() < deadline:  # a worker: waits for the operation, runs it, exits
    done = DelegatedOperationService().execute_queued_operations(dataset_name=name)
    if done:
        print([str(getattr(r, "error", None)) for r in done])
        break
    time.sleep(0.5)
"""


@pytest.fixture
def loop_dataset(fo_session, session_dir, monkeypatch):
    """The painted dataset (references tagged) plus the distractor sample; persistent so
    that the App and the worker see it; deleted afterwards."""
    import fiftyone as fo
    from ntt_painted import _paint_sample, fill_painted_dataset

    monkeypatch.setenv("FIFTYONE_NTT_TEST_MODELS", "fake")
    dataset = fo_session.Dataset(f"ntt-panel-{uuid.uuid4().hex[:6]}")
    dataset.persistent = True
    folder = session_dir / dataset.name
    fill_painted_dataset(dataset, folder, tag_references=True)
    dataset.add_sample(_paint_sample(fo, folder, 99, DISTRACTOR_LAYOUT))
    dataset.compute_metadata()
    try:
        yield dataset
    finally:
        dataset.delete()


def _worker_env() -> dict[str, str]:
    import fiftyone as fo
    import fiftyone.core.odm.database as fod

    host, port = fod.get_db_client().address
    env = dict(os.environ)
    env["FIFTYONE_DATABASE_URI"] = f"mongodb://{host}:{port}"
    env["FIFTYONE_DATABASE_NAME"] = fo.config.database_name
    env["FIFTYONE_NTT_TEST_MODELS"] = "fake"
    return env


def click(scope, name: str, wait_ms: int = 1500) -> None:
    """Clicks the button ``name`` inside ``scope`` (a locator), then lets the App settle."""
    button = scope.get_by_role("button", name=name, exact=True).last
    button.wait_for(timeout=LOAD_TIMEOUT_MS)
    button.click()
    scope.page.wait_for_timeout(wait_ms)


def wait_text(scope, text: str, timeout: int = RUN_TIMEOUT_MS) -> None:
    scope.get_by_text(text, exact=False).last.wait_for(timeout=timeout)


def shot(page, artifacts_dir: Path, name: str) -> None:
    page.wait_for_timeout(500)
    page.screenshot(path=str(artifacts_dir / f"panel-{name}.png"))


def predictions(dataset, sample_id: str, field: str) -> list[tuple]:
    """``(label, confidence, box)`` of a sample's predictions, rounded (box in pixels)."""
    dataset.reload()
    sample = dataset[sample_id]
    width, height = sample.metadata.width, sample.metadata.height
    out = []
    for det in sample[field].detections if sample[field] else []:
        x, y, w, h = det.bounding_box
        box = tuple(round(v) for v in (x * width, y * height, (x + w) * width, (y + h) * height))
        out.append((det.label, round(det.confidence, 4), box))
    return sorted(out)


def on_stripe(box) -> bool:
    return box[0] >= STRIPE[0] - 2 and box[2] <= STRIPE[2] + 2 and box[1] <= STRIPE[1] + 2


def click_image_point(page, modal, x: float, y: float, width: int, height: int) -> None:
    """Clicks pixel (x, y) of the modal's image (letterboxed in its canvas)."""
    canvas = modal.locator("[data-cy=modal-looker-container] canvas").first
    box = canvas.bounding_box()
    scale = min(box["width"] / width, box["height"] / height)
    left = box["x"] + (box["width"] - width * scale) / 2
    top = box["y"] + (box["height"] - height * scale) / 2
    page.mouse.click(left + x * scale, top + y * scale)
    page.wait_for_timeout(1000)


def close_modal(page, modal) -> None:
    """Closes the sample view (Escape, with the sample tab focused)."""
    modal.get_by_text("Sample", exact=True).first.click()
    page.wait_for_timeout(500)
    page.keyboard.press("Escape")
    page.wait_for_timeout(1000)
    if modal.is_visible():  # Escape cleared the label selection first; click outside
        size = page.viewport_size
        page.mouse.click(5, size["height"] - 5)
    modal.wait_for(state="hidden", timeout=20_000)
    page.wait_for_timeout(1000)


#: A running segmentation row of the Runs table with its progress, e.g. "running\t3 / 7".
RUNNING = re.compile(r"running\s+(\d+) / (\d+)")


def runs_table_text(panel) -> str:
    table = panel.locator("table").last
    return table.inner_text() if table.count() else ""


def _open_evaluation_card(page, evaluation, card, artifacts_dir) -> None:
    """Click the evaluation's card in FiftyOne's Model Evaluation panel until its page shows
    the Summary. A click can land while that panel redraws its list (the grid's view just
    changed) and be lost, as a user's can: they click again, so does this (how many clicks
    it took goes to ``test-artifacts/evaluation-card-clicks.txt``). Only visible elements
    count: the panel keeps hidden copies of some texts (a failed CI run showed the Summary
    on screen while the first element with that text was hidden)."""
    summary = evaluation.get_by_text("Summary", exact=True).filter(visible=True)
    # the list of evaluations ("1 Model Evaluations"), not the evaluation's own page
    listing = evaluation.get_by_text(re.compile(r"^\d+ Model Evaluations?$")).filter(visible=True)
    deadline = time.monotonic() + LOAD_TIMEOUT_MS / 1000
    clicks = 0
    while time.monotonic() < deadline and not summary.count():
        if listing.count() and card.is_visible():
            card.click()  # (again) to the evaluation's page
            clicks += 1
        page.wait_for_timeout(2000)
    with (artifacts_dir / "evaluation-card-clicks.txt").open("a") as log:
        log.write(f"{clicks}\n")
    try:
        # it can go and come back: the panel loads the evaluation's data again when the
        # grid's view changes (it sets the evaluation's view itself)
        summary.first.wait_for(timeout=LOAD_TIMEOUT_MS)
    except Exception:
        (artifacts_dir / "panel-evaluation-text.txt").write_text(evaluation.inner_text())
        raise


def test_curation_loop_through_the_panel(page, app_url, loop_dataset, artifacts_dir):
    try:
        _curation_loop(page, app_url, loop_dataset, artifacts_dir)
    except BaseException:
        page.screenshot(path=str(artifacts_dir / "panel-failure.png"))
        raise


def _curation_loop(page, app_url, loop_dataset, artifacts_dir):
    import fiftyone_ntt.fiftyone as nf

    dataset = loop_dataset
    page.set_viewport_size({"width": 1800, "height": 1000})  # room for the panel's tables
    distractor = dataset.match({"filepath": {"$regex": "painted_99"}}).first()
    page.goto(f"{app_url}datasets/{dataset.name}")
    wait_for_grid(page, len(dataset))

    # 1. open the panel from the grid's "+" menu, next to the grid
    page.locator("[data-cy=new-panel-btn]").first.click()
    page.wait_for_timeout(800)
    page.locator("[data-cy=new-panel-option-ntt_panel]").click(modifiers=["Alt"])
    panel = page.locator("[data-cy=panel-content-ntt_panel]").first
    wait_text(panel, "References")
    refs_table = panel.locator("table").first
    refs_table.wait_for(timeout=LOAD_TIMEOUT_MS)
    assert [line.split("\t")[0] for line in refs_table.inner_text().splitlines()[1:]] == [
        "blue",
        "green",
        "red",
    ]
    shot(page, artifacts_dir, "1-open")

    # 2. show the references: a patches view of exactly the three tagged labels
    click(panel, "Show references")
    page.get_by_text("3 patches").wait_for(timeout=LOAD_TIMEOUT_MS)
    shot(page, artifacts_dir, "2-references")

    # 3. build v1
    click(panel, "Build / rebuild")
    wait_text(panel, "Built 'ground_truth-refs' v1")
    (bank,) = nf.list_banks(dataset)
    assert bank["shots"] == {"red": 1, "green": 1, "blue": 1}
    shot(page, artifacts_dir, "3-bank-v1")

    # 4. preview on the samples of the view: the distractor gets a false positive "red"
    page.locator("[data-cy=btn-clear-view-bar]").click()
    wait_for_grid(page, len(dataset))
    n_input = panel.locator(
        "xpath=.//*[normalize-space(text())='N (samples of the view to preview)']"
        "/following::input[1]"
    ).first
    n_input.fill(str(len(dataset)))
    n_input.press("Tab")
    page.wait_for_timeout(800)
    click(panel, "Preview on N samples of the view", wait_ms=3000)
    wait_text(panel, "Preview of 'ground_truth-refs' v1")
    first = predictions(dataset, distractor.id, PREVIEW)
    false_positives = [p for p in first if on_stripe(p[2])]
    assert [p[0] for p in false_positives] == ["red"], first
    true_before = [p for p in first if p[2] in ((10, 10, 40, 40), (10, 55, 40, 90))]
    assert sorted(p[0] for p in true_before) == ["green", "red"], first
    page.reload()  # the App lists a field created after it loaded only after a reload
    wait_for_grid(page, len(dataset))
    panel = page.locator("[data-cy=panel-content-ntt_panel]").first
    shot(page, artifacts_dir, "4-preview-false-positive")

    # 5. open the distractor, select the false positive on the image, reject it
    page.locator("[data-cy=looker]").nth(len(dataset) - 1).click()
    modal = page.locator("[data-cy=modal]")
    modal.wait_for(timeout=LOAD_TIMEOUT_MS)
    modal.locator("[data-cy=modal-looker-container] canvas[canvas-loaded=true]").first.wait_for(
        timeout=LOAD_TIMEOUT_MS
    )
    dismiss_popovers(page)
    page.wait_for_timeout(1500)
    width, height = distractor.metadata.width, distractor.metadata.height
    click_image_point(page, modal, (STRIPE[0] + STRIPE[2]) / 2, 55, width, height)
    shot(page, artifacts_dir, "5-false-positive-selected")
    modal.get_by_text("No Time to Train").first.click()
    page.wait_for_timeout(1500)
    modal_panel = modal.locator("[data-cy=panel-content-ntt_panel]").first
    click(modal_panel, "Reject selected predictions (false positives)")
    wait_text(modal_panel, "Rejected 1 prediction(s)")
    shot(page, artifacts_dir, "5b-rejected")
    assert dataset.count_label_tags(label_fields=[PREVIEW]) == {"ntt:neg": 1}

    # 6. rebuild: version 2, "+1 negative"
    click(modal_panel, "Build / rebuild")
    wait_text(modal_panel, "+1 negative")
    shot(page, artifacts_dir, "6-bank-v2")

    # 7. preview this sample again: the false positive is gone, the true detections unchanged
    click(modal_panel, "Preview on this sample", wait_ms=3000)
    wait_text(modal_panel, "Preview of 'ground_truth-refs' v2 on 1 sample(s)")
    second = predictions(dataset, distractor.id, PREVIEW)
    assert not [p for p in second if on_stripe(p[2])], second
    assert [p for p in second if p[2] in ((10, 10, 40, 40), (10, 55, 40, 90))] == true_before
    modal.get_by_text("Sample", exact=True).first.click()
    page.wait_for_timeout(3000)
    shot(page, artifacts_dir, "7-preview-clean")
    close_modal(page, modal)

    # 8. schedule a segmentation of the view; a delegated worker runs it; follow it here
    click(panel, "Segment this view…")
    page.locator("[role=dialog]").first.wait_for(timeout=LOAD_TIMEOUT_MS)
    page.wait_for_timeout(1500)
    form_input(page, "Points per side (advanced)").fill("16")
    page.wait_for_timeout(1000)
    page.get_by_role("button", name="Schedule").click()
    page.get_by_text("successfully scheduled").wait_for(timeout=RUN_TIMEOUT_MS)
    page.wait_for_timeout(1000)
    click(panel, "Refresh")
    assert "queued" in runs_table_text(panel)
    shot(page, artifacts_dir, "8-queued")
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, dataset.name, str(WORKER_SLEEP_S)],
        env=_worker_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen, running_shot = [], False
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            click(panel, "Refresh", wait_ms=700)
            text = runs_table_text(panel)
            seen.append(text)
            if RUNNING.search(text) and not running_shot:
                shot(page, artifacts_dir, "9-running")
                running_shot = True
            if "completed" in text and OUT in text:
                break
        out, err = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0 and out.strip() == "['None']", (out, err[-2000:])
    targets = len(dataset) - 2  # the two samples holding references are skipped
    assert f"{targets} / {targets}" in seen[-1] and "completed" in seen[-1], seen[-1]
    progress = [tuple(map(int, m.groups())) for t in seen for m in RUNNING.finditer(t)]
    assert any(done < total for done, total in progress), f"no progress seen while running: {seen}"
    shot(page, artifacts_dir, "10-completed")

    # 9. evaluate, then open the evaluation (Model Evaluation panel + TP/FP/FN patches)
    row = panel.locator("tr").filter(has_text=OUT).filter(has_text="segmentation").first
    row.get_by_role("button", name="Evaluate").click()
    # the evaluation's line ("mAP 0.5xx" or "mAP undefined"); matched with its case and a
    # number: the panel's "Map" section would match a case-insensitive "mAP"
    panel.get_by_text(re.compile(r"mAP (-?\d|undefined)")).last.wait_for(timeout=RUN_TIMEOUT_MS)
    dataset.reload()
    assert f"eval_{OUT}" in dataset.list_evaluations()
    shot(page, artifacts_dir, "11-evaluated")
    row = panel.locator("tr").filter(has_text=OUT).filter(has_text="segmentation").first
    row.get_by_role("button", name="Results").click()
    page.locator("text=/^\\d+ patches$/").first.wait_for(timeout=LOAD_TIMEOUT_MS)  # TP/FP/FN
    evaluation = page.locator("[data-cy=panel-content-model_evaluation_panel_builtin]").first
    card = evaluation.get_by_text(f"eval_{OUT}").first
    card.wait_for(timeout=LOAD_TIMEOUT_MS)
    # the grid holds the patches; the Model Evaluation panel opens on its list of evaluations
    assert page.locator("text=/^\\d+ patches$/").first.is_visible()
    shot(page, artifacts_dir, "12a-results-patches")
    _open_evaluation_card(page, evaluation, card, artifacts_dir)
    page.wait_for_timeout(2500)
    shot(page, artifacts_dir, "12-evaluation")
