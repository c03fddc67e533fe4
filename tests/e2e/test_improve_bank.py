"""Issue 23 in the real App (headless Chromium, fake models): the panel's section *Improve
the bank*. The painted dataset with a planted bad reference (a yellow distractor labelled
"blue" and tagged) is segmented keeping features and evaluated through the SDK (the App adds
nothing there); then, in the panel: *Thresholds* shows the per-class table, *Save as bank
version* makes v2, *Audit references* ranks the planted bad reference first; the view is
segmented again with v2 and evaluated (SDK), the hard class "blue" improves and *Compare*
shows it; *Review queue* opens "to review" with the planted ambiguous prediction first, and
*Accept & next* accepts it. Screenshots: ``test-artifacts/improve-*.png``.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError

pytestmark = pytest.mark.e2e

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from test_panel_improve import plant_ambiguous, segment_and_evaluate  # noqa: E402
from test_panel_loop import wait_text  # noqa: E402
from test_reference_audit_queue import _plant_bad_reference  # noqa: E402
from test_workflow import wait_for_grid  # noqa: E402

LOAD_TIMEOUT_MS = 120_000
BANK = "colours"


@pytest.fixture
def improve_dataset(fo_session, session_dir, monkeypatch):
    """The painted dataset (references tagged) plus a planted bad "blue" reference, bank
    ``colours`` keeping features, segmented into ``ntt`` and evaluated as ``ev``;
    persistent so that the App sees it; deleted afterwards."""
    from ntt_painted import fill_painted_dataset

    monkeypatch.setenv("FIFTYONE_NTT_TEST_MODELS", "fake")
    dataset = fo_session.Dataset(f"ntt-improve-{uuid.uuid4().hex[:6]}")
    dataset.persistent = True
    fill_painted_dataset(dataset, session_dir / dataset.name, tag_references=True)
    bad_id = _plant_bad_reference(dataset)
    segment_and_evaluate(dataset, "ntt", "ev", build=True)
    try:
        yield dataset, bad_id
    finally:
        dataset.delete()


def click(panel, name: str, wait_ms: int = 1500) -> None:
    """Clicks the panel's button ``name``, scrolled to the middle of the panel (toasts
    cover the bottom of the page)."""
    page = panel.page
    button = panel.get_by_role("button", name=name, exact=True).last
    button.wait_for(timeout=LOAD_TIMEOUT_MS)
    for attempt in range(3):  # the panel may be drawn again (a timer tick) under the mouse
        try:
            button.evaluate("e => e.scrollIntoView({block: 'center'})")
            button.click(timeout=5_000)
            break
        except PlaywrightError:
            if attempt == 2:  # still moving: the button's own click, as a user's would be
                button.evaluate("e => e.click()")
            page.wait_for_timeout(500)
    page.wait_for_timeout(wait_ms)


def shot(page, artifacts_dir: Path, name: str, focus=None) -> None:
    if focus is not None:  # in the middle of the panel: toasts cover the bottom
        focus.evaluate("e => e.scrollIntoView({block: 'center'})")
    page.wait_for_timeout(500)
    page.screenshot(path=str(artifacts_dir / f"improve-{name}.png"))


def table_with(panel, text: str):
    """The panel's table holding ``text`` (a column header, an arrow)."""
    return panel.locator("table").filter(has_text=text).first


def test_improve_the_bank_in_the_panel(page, app_url, improve_dataset, artifacts_dir):
    try:
        _improve(page, app_url, improve_dataset, artifacts_dir)
    except BaseException:
        section = page.get_by_text("Improve the bank")
        if section.count():
            section.last.scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts_dir / "improve-failure.png"))
        raise


def _improve(page, app_url, improve_dataset, artifacts_dir):
    from fiftyone_ntt.fiftyone.banks.thresholds import bank_thresholds, compare_evaluations

    dataset, bad_id = improve_dataset
    page.set_viewport_size({"width": 1800, "height": 1000})  # room for the panel's tables
    page.goto(f"{app_url}datasets/{dataset.name}")
    wait_for_grid(page, len(dataset))
    page.locator("[data-cy=new-panel-btn]").first.click()
    page.wait_for_timeout(800)
    page.locator("[data-cy=new-panel-option-ntt_panel]").click(modifiers=["Alt"])
    panel = page.locator("[data-cy=panel-content-ntt_panel]").first
    wait_text(panel, "Improve the bank", timeout=LOAD_TIMEOUT_MS)

    # 1. thresholds from the run's evaluation: the table, then saved as bank version 2
    click(panel, "Thresholds", wait_ms=2000)
    wait_text(panel, "Save as bank version")
    table = table_with(panel, "Threshold")
    lines = table.inner_text().splitlines()
    assert {line.split("\t")[0] for line in lines[1:]} == {"red", "green", "blue"}, lines
    shot(page, artifacts_dir, "1-thresholds", focus=table)
    click(panel, "Save as bank version", wait_ms=2000)
    wait_text(panel, "Saved as v2")
    assert set(bank_thresholds(dataset, BANK)) == {"red", "green", "blue"}

    # 2. the audit ranks the planted bad reference first
    click(panel, "Audit references", wait_ms=2000)
    audit = table_with(panel, "Without it")
    audit.wait_for(timeout=LOAD_TIMEOUT_MS)
    first_row = audit.locator("tbody tr").first.inner_text()
    assert first_row.startswith(f"…{bad_id[-6:]}") and "blue" in first_row, first_row
    shot(page, artifacts_dir, "2-audit", focus=audit)

    # 3. segment again with v2 and evaluate (SDK): the hard class improves; Compare shows it
    segment_and_evaluate(dataset, "ntt_cut", "after")
    planted = plant_ambiguous(dataset, "ntt_cut")
    blue = {r["class"]: r for r in compare_evaluations(dataset, "ev", "after")}["blue"]
    assert blue["precision_before"] < blue["precision_after"] == 1.0, blue
    click(panel, "Refresh", wait_ms=2000)
    chooser = panel.get_by_role("combobox").filter(has_text="ntt (colours v1, evaluation ev)")
    chooser.evaluate("e => e.scrollIntoView({block: 'center'})")
    chooser.click()
    page.get_by_role("option", name="ntt_cut (colours v2, evaluation after)").click()
    page.wait_for_timeout(1500)
    click(panel, "Compare with ev", wait_ms=2000)
    compare = table_with(panel, "→")
    compare.wait_for(timeout=LOAD_TIMEOUT_MS)
    blue_row = next(r for r in compare.inner_text().splitlines() if r.startswith("blue"))
    assert "→ 1.00" in blue_row.split("\t")[1], blue_row
    shot(page, artifacts_dir, "3-compare", focus=compare)

    # 4. the review queue: "to review" with the planted ambiguous prediction first
    click(panel, "Review queue", wait_ms=3000)
    wait_text(panel, f"first: …{planted[-6:]}")
    dataset.reload()  # the App saved the view
    assert dataset.load_saved_view("to review").first()["ntt_cut"].id == planted
    page.locator("text=/^\\d+ patches$/").first.wait_for(timeout=LOAD_TIMEOUT_MS)
    shot(page, artifacts_dir, "4-review", focus=panel.get_by_text("Accept & next").first)
    click(panel, "Accept & next", wait_ms=2000)
    wait_text(panel, f"accepted {planted}")
    tags = dataset.select_labels(ids=[planted]).distinct("ntt_cut.detections.tags")
    assert tags == ["ntt:ref"]
