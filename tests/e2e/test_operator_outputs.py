"""Issue 10 in the real App: the demo walked with the operators' defaults (sample references
→ build → segment → evaluate) segments the coins of the non-reference half; every
operator's output is a table or plain fields (no JSON tree, no "undefined", no code viewer
waiting on the internet); a newly built bank offers a new field instead of a traceback; the
operator browser lists the operators in workflow order. Screenshots of every form and output
go to ``test-artifacts/e2e-ops-*.png``.
"""

from __future__ import annotations

import uuid

import pytest
from test_workflow import (
    LOAD_TIMEOUT_MS,
    RUN_TIMEOUT_MS,
    choose_execution,
    close_output,
    dismiss_popovers,
    wait_for_grid,
)

pytestmark = pytest.mark.e2e

GT = "ground_truth"
OUT = "ntt_predictions"
ORDER = [
    "NTT 1 · Tag references",
    "NTT 2 · Sample references",
    "NTT 3 · Build memory bank",
    "NTT 4 · Segment",
    "NTT 5 · Evaluate",
    "NTT 6 · Class thresholds",
    "NTT 6 · Reference audit",
    "NTT 6 · Review queue",
    "NTT 7 · Map predictions",
    "NTT 7 · Similarity index of predictions",
    "NTT 8 · Manage memory banks",
    "NTT 9 · Runs",
    "NTT · About",
]
MANAGE_BANKS, RUNS, ABOUT = ORDER[-3:]


@pytest.fixture
def demo_copy(fo_session):
    """A fresh copy of the demo dataset (its own name), deleted afterwards."""
    from fiftyone_ntt.fiftyone.demo import build_demo_dataset

    dataset = build_demo_dataset(name=f"ntt-demo-e2e-{uuid.uuid4().hex[:6]}")
    try:
        yield dataset
    finally:
        dataset.delete()


def open_by_label(page, label: str) -> None:
    page.keyboard.press("`")
    page.wait_for_timeout(800)
    page.keyboard.type(label)
    page.wait_for_timeout(800)
    page.keyboard.press("Enter")
    # the form is resolved by the server (the first one that touches torch takes seconds)
    page.wait_for_function(
        "() => [...document.querySelectorAll('[role=dialog]')]"
        ".some(d => d.innerText.includes('Cancel') || d.innerText.includes('Execute'))",
        timeout=LOAD_TIMEOUT_MS,
    )
    page.wait_for_timeout(1500)


def dialog_text(page) -> str:
    """The text of every open dialog (a closed output can leave an empty one behind)."""
    dialogs = page.locator("[role=dialog]")
    return "\n".join(dialogs.nth(i).inner_text() for i in range(dialogs.count()))


def check_output(page, artifacts_dir, name: str, title: str) -> str:
    """Wait for the output titled ``title``, screenshot it, and check it reads well."""
    page.get_by_text(title, exact=True).first.wait_for(timeout=RUN_TIMEOUT_MS)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(artifacts_dir / f"e2e-ops-{name}.png"))
    text = dialog_text(page)
    assert "undefined" not in text, text
    assert "Loading..." not in text, text
    assert "Traceback" not in text, text
    assert "No value provided" not in text, text
    # a JSON tree shows "N Items" / "key: type value" rows; tables and fields do not
    assert " Items" not in text, text
    return text


def execute(page, delegable: bool) -> None:
    if delegable:
        choose_execution(page, "Execute")
    page.get_by_role("button", name="Execute").click()


def test_demo_defaults_and_readable_outputs(page, app_url, demo_copy, artifacts_dir, monkeypatch):
    import fiftyone_ntt.fiftyone as nf

    monkeypatch.setenv("FIFTYONE_NTT_TEST_MODELS", "fake")  # as the App's (conftest.py)
    dataset = demo_copy
    # the browser lists recently used operators first (FiftyOne keeps them in the browser's
    # storage, shared by this session's tests): start from a profile that used none
    page.goto(app_url)
    page.evaluate(
        "() => { for (const s of [localStorage, sessionStorage])"
        " s.removeItem('recently-used-operators'); }"
    )
    page.goto(f"{app_url}datasets/{dataset.name}")
    wait_for_grid(page, len(dataset))
    dismiss_popovers(page)

    # the operator browser lists the operators in workflow order
    page.keyboard.press("`")
    page.wait_for_timeout(800)
    page.keyboard.type("NTT")
    page.wait_for_timeout(1200)
    page.screenshot(path=str(artifacts_dir / "e2e-ops-0-operator-browser.png"))
    body = page.locator("body").inner_text()
    positions = [body.find(label) for label in ORDER]
    assert all(p >= 0 for p in positions) and positions == sorted(positions), positions
    page.keyboard.press("Escape")
    page.wait_for_timeout(800)

    # tag references without a selection: one clear message
    open_by_label(page, ORDER[0])
    assert "No label is selected" in dialog_text(page)
    page.screenshot(path=str(artifacts_dir / "e2e-ops-1-tag-references-form.png"))
    page.keyboard.press("Escape")
    page.wait_for_timeout(800)

    # 1. sample references, defaults: from the saved view 'references' (coins_top)
    open_by_label(page, ORDER[1])
    assert "Saved view 'references'" in dialog_text(page)
    page.screenshot(path=str(artifacts_dir / "e2e-ops-2-sample-references-form.png"))
    execute(page, delegable=False)
    check_output(page, artifacts_dir, "2-sample-references-output", "Sampled references")
    close_output(page)
    tagged = dataset.match_labels(tags="ntt:ref", fields=GT).values("filepath")
    assert tagged and all(p.endswith("coins_top.png") for p in tagged)

    # 2. build, defaults
    open_by_label(page, ORDER[2])
    page.screenshot(path=str(artifacts_dir / "e2e-ops-3-build-form.png"))
    assert "predictions are meaningless" in dialog_text(page)  # test-model mode is visible
    execute(page, delegable=True)
    check_output(page, artifacts_dir, "3-build-output", "Memory bank built")
    close_output(page)

    # 3. segment, defaults: the form says what is skipped and what is segmented
    open_by_label(page, ORDER[3])
    text = dialog_text(page)
    assert "1 hold the bank's references and are skipped: 2 will be segmented" in text, text
    assert "fiftyone delegated launch" in text
    page.screenshot(path=str(artifacts_dir / "e2e-ops-4-segment-form.png"))
    execute(page, delegable=True)
    check_output(page, artifacts_dir, "4-segment-output", "Segmentation done")
    close_output(page)
    dataset.reload()
    segmented = dataset.exists(OUT).values("filepath")
    assert len(segmented) > 1 and not any(p.endswith("coins_top.png") for p in segmented)

    # 4. evaluate, defaults + the exact COCO protocol: tables, no code viewer
    open_by_label(page, ORDER[4])
    page.get_by_text("Also the exact COCO protocol").first.click()
    page.wait_for_timeout(1000)
    execute(page, delegable=True)
    text = check_output(page, artifacts_dir, "5-evaluate-output", "Evaluation")
    assert "segm" in text and "AP50" in text and "Per class" in text
    close_output(page)

    # 5. a newly built bank into the default field: the form offers a new field
    nf.build_bank(dataset.load_saved_view("references"), GT, "coins-again")
    open_by_label(page, ORDER[3])
    text = dialog_text(page)
    assert "The output field is taken" in text and "Write to a new field" in text, text
    page.screenshot(path=str(artifacts_dir / "e2e-ops-6-segment-conflict-form.png"))
    execute(page, delegable=True)
    text = check_output(page, artifacts_dir, "6-segment-new-field-output", "Segmentation done")
    assert "ntt_predictions_coins_again_v2" in text
    close_output(page)

    # 6. manage banks: each action shows its own section only
    for action, label in (("list", "List banks"), ("inspect", "Inspect a bank")):
        open_by_label(page, MANAGE_BANKS)
        page.get_by_text(label, exact=True).first.click()
        page.wait_for_timeout(1500)
        execute(page, delegable=False)
        text = check_output(page, artifacts_dir, f"7-manage-banks-{action}", "Memory banks")
        assert "coins-again" in text
        close_output(page)
    open_by_label(page, MANAGE_BANKS)
    page.get_by_text("Delete a bank", exact=True).first.click()
    page.wait_for_timeout(1500)
    assert "Prediction fields made with it stay" in dialog_text(page)
    page.screenshot(path=str(artifacts_dir / "e2e-ops-7-manage-banks-delete-form.png"))
    execute(page, delegable=False)
    text = check_output(page, artifacts_dir, "7-manage-banks-delete", "Memory banks")
    assert "Deleted bank" in text
    close_output(page)

    # 7. runs and about
    open_by_label(page, RUNS)
    page.screenshot(path=str(artifacts_dir / "e2e-ops-8-runs-form.png"))
    execute(page, delegable=False)
    text = check_output(page, artifacts_dir, "8-runs-output", "No Time to Train runs")
    assert OUT in text and "completed" in text
    close_output(page)
    open_by_label(page, ABOUT)
    execute(page, delegable=False)
    text = check_output(page, artifacts_dir, "9-about-output", "No Time to Train")
    assert "predictions are meaningless" in text
    close_output(page)
