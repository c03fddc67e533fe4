"""The App stays on the dataset the user opened (a bug a user hit with ``make app``).

``make app``'s launcher used to keep a Python ``Session`` on the dataset it launched. The
Session's event client cannot parse some events the App sends (the selected labels that the
panel's *Select false positives* sets carry ``type: null``; FiftyOne's SDK wants a string):
its connection dropped, and 10 s later it subscribed again with the state it had been
launched with, which the server broadcast to the App: the App jumped back to the launcher's
dataset (``ntt-demo``) in the middle of the user's work.

Here the App (started by the launcher, as ``make app`` starts it, on the demo) opens a second
dataset by its URL, the panel selects the map's false positives, and 12 s later (past the
Session's 10 s reconnect) the App must still show that dataset: its URL and the dataset name in
the header. Screenshot: ``test-artifacts/stays-on-dataset.png``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from test_map_loop import BANK, GT, OUT, open_panel  # noqa: E402
from test_panel_loop import (  # noqa: E402
    click,
    loop_dataset,  # noqa: F401 (a fixture)
    wait_text,
)
from test_workflow import wait_for_grid  # noqa: E402

#: Longer than the 10 s after which FiftyOne's Session client reconnects.
SETTLE_MS = 12_000


def shown_dataset(page) -> str:
    """The dataset name in the App's header (its dataset selector)."""
    return page.locator("[data-cy=selector-dataset]").first.input_value()


def test_app_stays_on_the_opened_dataset(page, app_url, demo_dataset, request, artifacts_dir):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.analysis.maps import map_predictions

    dataset = request.getfixturevalue("loop_dataset")
    assert dataset.name != demo_dataset.name
    nf.build_bank(dataset, GT, BANK)
    nf.segment(dataset, BANK, OUT, points_per_side=16, embeddings=True, progress=False)
    nf.evaluate(dataset, OUT, f"eval_{OUT}", gt_field=GT)
    map_predictions(dataset, OUT, BANK, eval_key=f"eval_{OUT}")

    try:
        url = f"{app_url}datasets/{dataset.name}"
        page.goto(url)
        wait_for_grid(page, len(dataset))
        assert shown_dataset(page) == dataset.name
        panel = open_panel(page)
        click(panel, "Select false positives")
        wait_text(panel, "labels selected")
        page.wait_for_timeout(SETTLE_MS)
        page.screenshot(path=str(artifacts_dir / "stays-on-dataset.png"))
        assert page.url == url
        assert shown_dataset(page) == dataset.name
    except BaseException:
        page.screenshot(path=str(artifacts_dir / "stays-on-dataset-failure.png"))
        raise
