"""What only the browser shows of issue 20, items 9 and 11, in the real App in headless
Chromium at 1800×1000 with the panel beside the grid:

- the Runs table fits its panel with a failed row holding a long error (no sideways
  scrolling; the row buttons, Resume and Evaluate included, are inside the panel), and a
  failed row can be dismissed;
- *Build / rebuild* shows "Building bank …" (with its progress) and is disabled while the
  bank is built, then the result replaces that notice.

Screenshots: ``test-artifacts/panel-truth-*.png``.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from test_panel_loop import LOAD_TIMEOUT_MS, click, shot, wait_text  # noqa: E402
from test_workflow import wait_for_grid  # noqa: E402

GT = "ground_truth"
BANK = "ground_truth-refs"
SAMPLES = 240
LONG_ERROR = (
    "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total "
    "capacity; 5.10 GiB already allocated; 1.12 GiB free; 5.30 GiB reserved in total by "
    "PyTorch) while segmenting sample 65f0c0ffee: lower points_per_side or use the CPU"
)


@pytest.fixture
def truth_dataset(fo_session, session_dir, monkeypatch):
    """The painted dataset grown to many samples with every ground-truth label a reference
    (a build that takes a while with the fake models), a completed segmentation of a few
    samples, and a failed delegated segmentation of another field with a long error."""
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionContext
    from ntt_painted import fill_painted_dataset, grow_painted_dataset

    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.app.activity import mark_failed

    monkeypatch.setenv("FIFTYONE_NTT_TEST_MODELS", "fake")
    dataset = fo_session.Dataset(f"ntt-truth-{uuid.uuid4().hex[:6]}")
    dataset.persistent = True
    fill_painted_dataset(dataset, session_dir / dataset.name, tag_references=True)
    nf.build_bank(dataset, GT, BANK)
    nf.segment(dataset.limit(6), BANK, "ntt_predictions", points_per_side=16)
    grow_painted_dataset(dataset, SAMPLES)
    dataset.tag_labels("ntt:ref", label_fields=[GT])  # every instance: a slow build
    context = ExecutionContext(
        request_params={
            "dataset_name": dataset.name,
            "dataset_id": str(dataset._doc.id),
            "params": {"bank": BANK, "out_field": "ntt_big", "points_per_side": 16},
        }
    )
    op = DelegatedOperationService().queue_operation(
        "@fiftyone-ntt/no-time-to-train/ntt_segment", context=context
    )
    mark_failed(str(op.id), reason=LONG_ERROR)
    try:
        yield dataset
    finally:
        dataset.delete()


#: For each scrollable box around the Runs table: how much wider its content is than the box.
OVERFLOW_JS = """table => {
    const out = [];
    for (let el = table; el && el !== document.body; el = el.parentElement) {
        const style = getComputedStyle(el);
        if (['auto', 'scroll'].includes(style.overflowX) || el.scrollWidth > el.clientWidth + 1)
            out.push({tag: el.tagName, scroll: el.scrollWidth, client: el.clientWidth,
                      overflow: style.overflowX});
        if (el.matches('[data-cy=panel-content-ntt_panel]')) break;
    }
    return out;
}"""

#: The elements of the panel whose right edge is beyond the panel's (the outermost ones).
STICKING_OUT_JS = """() => {
    const panel = document.querySelector('[data-cy=panel-content-ntt_panel]');
    const right = panel.getBoundingClientRect().right + 1;
    const out = [];
    for (const el of panel.querySelectorAll('*')) {
        const r = el.getBoundingClientRect();
        if (r.width > 0 && r.right > right && el.parentElement.getBoundingClientRect().right <= right)
            out.push({tag: el.tagName, text: (el.innerText || '').slice(0, 60),
                      right: Math.round(r.right), width: Math.round(r.width)});
    }
    return out;
}"""

#: Records, from now on, whether the Build button was ever disabled and which busy notice
#: texts appeared (a fast build may be over before a screenshot).
WATCH_JS = """() => {
    window.__nttSeen = {disabled: false, texts: [], phases: []};
    const look = () => {
        const seen = window.__nttSeen;
        const panel = document.querySelector('[data-cy=panel-content-ntt_panel]');
        if (!panel) return;
        for (const b of panel.querySelectorAll('button')) {
            if (b.textContent.trim() === 'Build / rebuild' && b.disabled) seen.disabled = true;
        }
        const text = panel.innerText;
        const m = text.match(/Building bank[^\\n]*/);
        if (m && !seen.texts.includes(m[0])) seen.texts.push(m[0]);
        const phase = m ? 'building' : (/Built '/.test(text) ? 'built' : 'other');
        if (seen.phases[seen.phases.length - 1] !== phase) seen.phases.push(phase);
    };
    new MutationObserver(look).observe(document.body,
        {subtree: true, childList: true, attributes: true, characterData: true});
}"""


def test_runs_table_fits_and_build_shows_it_is_busy(page, app_url, truth_dataset, artifacts_dir):
    try:
        _check(page, app_url, truth_dataset, artifacts_dir)
    except BaseException:
        page.screenshot(path=str(artifacts_dir / "panel-truth-failure.png"))
        raise


def _check(page, app_url, dataset, artifacts_dir):
    from fiftyone.operators.delegated import DelegatedOperationService

    import fiftyone_ntt.fiftyone as nf

    page.set_viewport_size({"width": 1800, "height": 1000})
    page.goto(f"{app_url}datasets/{dataset.name}")
    wait_for_grid(page, 6)
    page.locator("[data-cy=new-panel-btn]").first.click()
    page.wait_for_timeout(800)
    page.locator("[data-cy=new-panel-option-ntt_panel]").click(modifiers=["Alt"])
    panel = page.locator("[data-cy=panel-content-ntt_panel]").first
    wait_text(panel, "Runs", timeout=LOAD_TIMEOUT_MS)

    # item 9: the Runs table with the failed row fits the panel
    table = panel.locator("table").last
    table.wait_for(timeout=LOAD_TIMEOUT_MS)
    text = table.inner_text()
    assert "ntt_big" in text and "failed" in text and "ntt_predictions" in text, text
    assert text.count("ntt_big") == 1  # one row per field
    table.scroll_into_view_if_needed()
    shot(page, artifacts_dir, "truth-1-runs-with-error")
    overflow = table.evaluate(OVERFLOW_JS)
    wider = [o for o in overflow if o["scroll"] > o["client"] + 1]
    out = page.evaluate(STICKING_OUT_JS)
    assert not wider and not out, f"the panel scrolls sideways: {overflow}; sticking out: {out}"
    box = panel.bounding_box()
    for name in ("Evaluate", "Dismiss", "Show"):
        button = table.get_by_role("button", name=name).first
        assert button.is_visible(), name
        b = button.bounding_box()
        assert b["x"] >= box["x"] and b["x"] + b["width"] <= box["x"] + box["width"] + 1, name
    assert LONG_ERROR in panel.inner_text()  # the full text: the line below the table

    # ... and the failed row can be dismissed
    row = panel.locator("tr").filter(has_text="ntt_big").first
    row.get_by_role("button", name="Dismiss").click()
    wait_text(panel, "Dismissed the failed row")
    assert "ntt_big" not in panel.locator("table").last.inner_text()
    # nothing deleted: the operation and the other run are still there
    assert DelegatedOperationService().list_operations(dataset_name=dataset.name)
    assert "ntt_predictions" in dataset.list_runs()
    shot(page, artifacts_dir, "truth-2-dismissed")

    # item 11: Build is busy (a notice with progress, the button disabled), then done
    page.evaluate(WATCH_JS)
    build = panel.get_by_role("button", name="Build / rebuild", exact=True).last
    build.scroll_into_view_if_needed()
    build.click()
    panel.get_by_text("Building bank").first.wait_for(timeout=LOAD_TIMEOUT_MS)
    shot(page, artifacts_dir, "truth-3-building")
    wait_text(panel, f"Built '{BANK}' v2", timeout=300_000)
    page.wait_for_timeout(6000)  # a few ticks of the panel's timer: it stays done
    shot(page, artifacts_dir, "truth-4-built")
    seen = page.evaluate("() => window.__nttSeen")
    assert seen["disabled"], seen
    assert any("Building bank" in t for t in seen["texts"]), seen
    assert any("references embedded" in t for t in seen["texts"]), seen
    # once built, never shown as building again (no stale copy of the busy state)
    phases = seen["phases"]
    assert "building" not in phases[phases.index("built") :], phases
    assert "Building bank" not in panel.inner_text()
    assert build.is_enabled()
    assert len(nf.bank_versions(dataset, BANK)) == 2
    click(panel, "Refresh")
