"""The No Time to Train workflow in the real App, through the operator forms: sample
references, build a memory bank (immediate), segment (scheduled, then run by a delegated
worker in this process), see the predicted masks in the grid, evaluate.

The dataset is painted flat-colour rectangles, which the App's fake models (see
``APP_TEST_ENV`` in conftest.py) segment exactly. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import io
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.e2e

LOAD_TIMEOUT_MS = 120_000
RUN_TIMEOUT_MS = 120_000
GT = "ground_truth"
OUT = "ntt_predictions"

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))


@pytest.fixture
def painted(fo_session, session_dir, monkeypatch):
    """A persistent painted dataset without references; deleted afterwards."""
    from ntt_painted import fill_painted_dataset

    monkeypatch.setenv("FIFTYONE_NTT_TEST_MODELS", "fake")  # for the in-process worker
    dataset = fo_session.Dataset(f"ntt-e2e-{uuid.uuid4().hex[:6]}")
    dataset.persistent = True
    fill_painted_dataset(dataset, session_dir / dataset.name, tag_references=False)
    try:
        yield dataset
    finally:
        dataset.delete()


def dismiss_popovers(page) -> None:
    dismiss = page.get_by_role("button", name="Dismiss")
    if dismiss.count() and dismiss.first.is_visible():
        dismiss.first.click()
        page.wait_for_timeout(300)


def open_operator(page, label: str) -> None:
    """Opens an operator's form from the operator browser (backtick, type, Enter). Type the
    whole label: the browser ranks recently used operators first, and a short word such as
    "segment" also matches other operators' descriptions."""
    page.keyboard.press("`")
    page.wait_for_timeout(800)
    page.keyboard.type(label)
    page.wait_for_timeout(800)
    page.keyboard.press("Enter")
    page.locator("[role=dialog]").first.wait_for(timeout=LOAD_TIMEOUT_MS)
    page.wait_for_timeout(1500)


def form_input(page, label: str):
    """The input under a form label (the App's forms do not link labels to inputs)."""
    return page.locator(
        f"xpath=//p[normalize-space()='{label}']"
        "/ancestor::div[contains(@class,'MuiGrid-item')][1]//input"
    ).first


def choose_execution(page, option: str) -> None:
    """Picks "Execute" (immediate) or "Schedule" (delegated) in the split button."""
    page.locator("[role=dialog] button").last.click()
    page.wait_for_timeout(500)
    page.locator("[role=menuitem], li").filter(has_text=option).first.click()
    page.wait_for_timeout(500)


def close_output(page) -> None:
    page.get_by_role("button", name="Close").click()
    page.wait_for_timeout(800)


def tile_pixels(page) -> list[np.ndarray]:
    page.mouse.move(5, 5)
    page.wait_for_timeout(300)
    tiles = page.locator("[data-cy=looker]")
    return [
        np.asarray(Image.open(io.BytesIO(tiles.nth(i).screenshot())).convert("RGB")).astype(
            np.int16
        )
        for i in range(tiles.count())
    ]


def wait_for_grid(page, count: int) -> None:
    page.wait_for_function(
        "n => document.querySelectorAll('[data-cy=looker] canvas[canvas-loaded=true]').length >= n",
        arg=count,
        timeout=LOAD_TIMEOUT_MS,
    )
    dismiss_popovers(page)
    page.wait_for_timeout(1000)


def run_delegated_worker(dataset_name: str) -> list:
    """What ``fiftyone delegated launch`` does, once, in a thread of this process (the
    service runs its own event loop, which playwright's thread already has)."""
    from concurrent.futures import ThreadPoolExecutor

    from fiftyone.operators.delegated import DelegatedOperationService

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(
            DelegatedOperationService().execute_queued_operations, dataset_name=dataset_name
        ).result()


def test_workflow_through_operator_forms(page, app_url, painted, artifacts_dir):
    import fiftyone_ntt.fiftyone as nf

    dataset = painted
    page.goto(f"{app_url}datasets/{dataset.name}")
    wait_for_grid(page, len(dataset))

    # 1. references: one per class, seeded; the form counts the candidates first
    open_operator(page, "NTT 2 · Sample references")
    form_input(page, "Shots per class (K)").fill("1")
    page.wait_for_timeout(1500)
    table = page.locator("[role=dialog] table").first
    assert "red" in table.inner_text() and "green" in table.inner_text()
    page.screenshot(path=str(artifacts_dir / "e2e-ntt-1-sample-references.png"))
    page.get_by_role("button", name="Execute").click()
    page.get_by_text("References tagged").wait_for(timeout=RUN_TIMEOUT_MS)
    close_output(page)
    assert dataset.count_label_tags() == {"ntt:ref": 3}

    # 2. build the bank immediately
    open_operator(page, "NTT 3 · Build memory bank")
    page.screenshot(path=str(artifacts_dir / "e2e-ntt-2-build-bank.png"))
    choose_execution(page, "Execute")
    page.get_by_role("button", name="Execute").click()
    page.get_by_text("Memory bank built").wait_for(timeout=RUN_TIMEOUT_MS)
    page.screenshot(path=str(artifacts_dir / "e2e-ntt-3-bank-built.png"))
    close_output(page)
    banks = nf.list_banks(dataset)
    assert len(banks) == 1 and banks[0]["shots"] == {"red": 1, "green": 1, "blue": 1}

    # 3. segment: scheduled by default; a delegated worker (here, this process) runs it
    open_operator(page, "NTT 4 · Segment")
    form_input(page, "Points per side (advanced)").fill("16")
    page.wait_for_timeout(1000)
    page.get_by_role("button", name="Schedule").click()
    page.get_by_text("successfully scheduled").wait_for(timeout=RUN_TIMEOUT_MS)
    results = run_delegated_worker(dataset.name)
    assert len(results) == 1 and not results[0].error, results[0].error
    segmented = dataset.exists(OUT).count()
    assert segmented == len(dataset.match_labels(tags="ntt:ref", bool=False))
    assert segmented >= 5

    # 4. the predictions field appears and its masks are painted over the images
    page.reload()
    wait_for_grid(page, len(dataset))
    pred_toggle = page.locator(f"[data-cy=checkbox-{OUT}]").first
    pred_toggle.wait_for(timeout=LOAD_TIMEOUT_MS)
    page.locator(f"[data-cy=checkbox-{GT}]").first.click()  # ground truth off
    page.wait_for_timeout(1500)
    if not page.locator(f"[data-cy=checkbox-{OUT}] input").first.is_checked():
        pred_toggle.click()
        page.wait_for_timeout(1500)
    page.screenshot(path=str(artifacts_dir / "e2e-ntt-4-predictions.png"))
    with_masks = tile_pixels(page)
    pred_toggle.click()
    page.wait_for_timeout(1500)
    without_masks = tile_pixels(page)
    pred_toggle.click()
    page.wait_for_timeout(1000)
    changed = [
        float((np.abs(a - b).sum(axis=2) > 30).mean()) for a, b in zip(with_masks, without_masks)
    ]
    painted_tiles = [c for c in changed if c > 0.05]
    assert len(painted_tiles) >= 4, changed  # masks on the segmented samples with objects

    # 5. evaluate immediately; the numbers are FiftyOne's COCO evaluation
    open_operator(page, "NTT 5 · Evaluate")
    choose_execution(page, "Execute")
    page.get_by_role("button", name="Execute").click()
    page.get_by_text("mAP (FiftyOne COCO, masks)").wait_for(timeout=RUN_TIMEOUT_MS)
    page.wait_for_timeout(500)
    page.screenshot(path=str(artifacts_dir / "e2e-ntt-5-evaluation.png"))
    close_output(page)
    dataset.reload()  # the App's process ran the evaluation
    assert f"eval_{OUT}" in dataset.list_evaluations()
    assert dataset.get_run_info(OUT).config.bank_key == banks[0]["key"]
