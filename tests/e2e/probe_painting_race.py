"""A measurement, not part of ``make test``: does FiftyOne's App lose label-painting workers
when it opens sample views over a grid of previews, with the masks inside the labels or as
files (:mod:`fiftyone_ntt.fiftyone.dataset.mask_files`)? No panel is opened: this is the
App alone.

Run it with the CPU busy (the race shows under load), e.g. on the 2-core box::

    for i in 1 2 3; do timeout 900 python3 -c 'while 1: pass' & done
    .venv/bin/python -m pytest tests/e2e/probe_painting_race.py -s -q
    kill %1 %2 %3

Each run prints ``LOST <masks> <run> [errors after each opening]``; the numbers measured are
in docs/architecture.md ("The panel and the App's label painting"). A run fails when the
App logged a painting failure, so that the summary line counts them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from app_console import PAINT_ERROR  # noqa: E402
from test_drawn_equals_stored import BANK, GT, PREVIEW  # noqa: E402
from test_panel_loop import LOAD_TIMEOUT_MS, close_modal, loop_dataset  # noqa: E402, F401
from test_workflow import wait_for_grid  # noqa: E402

OPENINGS = 5


def _masks_inside_labels(dataset) -> None:
    """Undo :func:`store_masks`: read each preview mask file back into its label."""
    for sample in dataset.exists(PREVIEW).iter_samples(autosave=True):
        for detection in sample[PREVIEW].detections:
            if detection.mask_path:
                detection.import_mask(update=True)


@pytest.mark.parametrize("run", [0, 1, 2])
@pytest.mark.parametrize("masks", ["inside-labels", "files"])
def test_sample_views_over_previews(page, app_url, loop_dataset, masks, run):  # noqa: F811
    import fiftyone_ntt.fiftyone as nf

    console: list[str] = []
    page.on("console", lambda m: console.append(m.text))
    dataset = loop_dataset
    nf.build_bank(dataset, GT, BANK)
    nf.preview(dataset, BANK, n=len(dataset))  # mask files
    if masks == "inside-labels":
        _masks_inside_labels(dataset)
    page.set_viewport_size({"width": 1800, "height": 1000})
    page.goto(f"{app_url}datasets/{dataset.name}")
    wait_for_grid(page, len(dataset))
    page.wait_for_timeout(3000)
    lost = []
    for opening in range(OPENINGS):
        page.locator("[data-cy=looker]").nth(len(dataset) - 1 - opening % 3).click()
        modal = page.locator("[data-cy=modal]")
        modal.locator("[data-cy=modal-looker-container] canvas[canvas-loaded=true]").first.wait_for(
            timeout=LOAD_TIMEOUT_MS
        )
        page.wait_for_timeout(2000)
        close_modal(page, modal)
        page.wait_for_timeout(2000)
        lost.append(sum(PAINT_ERROR in line for line in console))
    print("LOST", masks, run, lost)
    assert lost[-1] == 0, lost
