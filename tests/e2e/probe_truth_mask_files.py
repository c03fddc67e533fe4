"""A measurement, not part of ``make test``: does the App still lose its label-painting
workers in ``test_panel_state_truth.py``'s flow (240 samples, the panel opened, *Dismiss*,
*Build*) when the ground truth's masks are files instead of arrays inside the labels?

The dataset is that test's, parametrized: ``inline`` keeps the in-label masks (as that test
does), ``gt-files`` first moves the ground truth's masks into PNG files with FiftyOne's own
``fiftyone.utils.labels.export_segmentations`` (what a user can run on their own labels,
see README, "Overlays vanish on a busy machine?"), ``all-files`` also those of the
segmentation run the dataset holds (6 samples). Run::

    .venv/bin/python -m pytest tests/e2e/probe_truth_mask_files.py -q

and read ``test-artifacts/painting-errors.txt`` (lost workers per run); the numbers
measured are in docs/architecture.md ("The panel and the App's label painting").
"""

from __future__ import annotations

import sys
from pathlib import Path

import fiftyone.utils.labels as foul
import pytest

pytestmark = pytest.mark.e2e

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_panel_state_truth import GT, _check, truth_dataset  # noqa: E402, F401

#: The segmentation run ``truth_dataset`` holds.
RUN = "ntt_predictions"


@pytest.mark.parametrize("masks", ["inline", "gt-files", "all-files"] * 3)
def test_truth_flow(page, app_url, truth_dataset, artifacts_dir, session_dir, masks):  # noqa: F811
    fields = {"inline": [], "gt-files": [GT], "all-files": [GT, RUN]}[masks]
    for field in fields:
        foul.export_segmentations(
            truth_dataset, field, str(session_dir / f"{truth_dataset.name}-{field}-masks")
        )
        assert truth_dataset.count(f"{field}.detections.mask") == 0
        assert truth_dataset.count(f"{field}.detections.mask_path") > 0
    _check(page, app_url, truth_dataset, artifacts_dir)
