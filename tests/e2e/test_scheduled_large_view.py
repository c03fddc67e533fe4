"""Issue 20.1: a view of more than 50 samples is segmented from the App as ``make app`` starts
it (scripts/launch_app.py, no FiftyOne setting of the tests' own), by a worker started with
the command the launcher printed (``app_worker`` in conftest.py). The segment form offers
only "Schedule" for such a view, and the worker picks the run up. Screenshots go to
``test-artifacts/``.
"""

from __future__ import annotations

import time
import uuid

import pytest
from test_workflow import GT, OUT, form_input, open_operator, wait_for_grid

pytestmark = pytest.mark.e2e

LARGE = 60
WORKER_TIMEOUT_S = 300


@pytest.fixture
def large_painted(fo_session, session_dir, monkeypatch):
    """A persistent painted dataset of 60 samples with a memory bank; deleted afterwards."""
    from ntt_painted import fill_painted_dataset, grow_painted_dataset

    import fiftyone_ntt.fiftyone as nf

    monkeypatch.setenv("FIFTYONE_NTT_TEST_MODELS", "fake")  # for the bank built here
    dataset = fo_session.Dataset(f"ntt-e2e-large-{uuid.uuid4().hex[:6]}")
    dataset.persistent = True
    fill_painted_dataset(dataset, session_dir / dataset.name)
    grow_painted_dataset(dataset, LARGE)
    nf.build_bank(dataset, GT, "colours")
    try:
        yield dataset
    finally:
        dataset.delete()


def test_large_view_is_scheduled_and_run_by_the_printed_worker(
    page, app_url, worker_command, app_worker, large_painted, artifacts_dir
):
    from fiftyone.operators.delegated import DelegatedOperationService

    dataset = large_painted
    assert len(dataset) == LARGE
    page.goto(f"{app_url}datasets/{dataset.name}")
    wait_for_grid(page, 8)

    open_operator(page, "NTT 4 · Segment")
    form_input(page, "Points per side (advanced)").fill("16")
    page.wait_for_timeout(1500)
    dialog = page.locator("[role=dialog]").first
    # more than 50 samples: only "Schedule" (the App offers it: make app turned it on)
    schedule = page.get_by_role("button", name="Schedule")
    assert schedule.count() == 1 and schedule.first.is_visible()
    assert page.get_by_role("button", name="Execute").count() == 0
    # the form says how to start the worker: the very command the launcher printed
    form_text = dialog.inner_text()
    (artifacts_dir / "e2e-large-form.txt").write_text(form_text)
    assert worker_command in form_text, form_text
    page.screenshot(path=str(artifacts_dir / "e2e-large-1-segment-form.png"))

    schedule.first.click()
    page.get_by_text("successfully scheduled").wait_for(timeout=120_000)
    page.screenshot(path=str(artifacts_dir / "e2e-large-2-scheduled.png"))

    # the worker (started with the printed command) picks the run up and finishes it
    service = DelegatedOperationService()
    deadline = time.monotonic() + WORKER_TIMEOUT_S
    while True:
        ops = service.list_operations(dataset_name=dataset.name)
        states = [str(op.run_state) for op in ops]
        if ops and all(s in ("completed", "failed") for s in states):
            break
        if time.monotonic() > deadline:
            pytest.fail(
                f"the worker did not finish the run in {WORKER_TIMEOUT_S} s: {states}\n"
                + app_worker.read_text()[-3000:]
            )
        time.sleep(2)
    assert len(ops) == 1 and states == ["completed"], [op.result for op in ops]
    dataset.reload()
    references = len(dataset.match_labels(tags="ntt:ref", fields=GT))
    assert dataset.exists(OUT).count() == LARGE - references

    # the predictions in the grid
    page.reload()
    wait_for_grid(page, 8)
    page.locator(f"[data-cy=checkbox-{OUT}]").first.wait_for(timeout=120_000)
    page.locator(f"[data-cy=checkbox-{GT}]").first.click()  # ground truth off
    page.wait_for_timeout(1500)
    if not page.locator(f"[data-cy=checkbox-{OUT}] input").first.is_checked():
        page.locator(f"[data-cy=checkbox-{OUT}]").first.click()
        page.wait_for_timeout(1500)
    page.screenshot(path=str(artifacts_dir / "e2e-large-3-predictions.png"))
