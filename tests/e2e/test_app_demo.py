"""The demo dataset in the real App: samples render in the grid with their coin masks, and a
sample opens in the modal with its ground truth.

The mask check reads pixels: the coins photograph is grey, so coloured pixels on a coins
tile can only come from the label overlay. Hiding the ``ground_truth`` field must take them
away again (the cat photo, coloured by itself, is the control that stays coloured).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.e2e

LOAD_TIMEOUT_MS = 120_000
COLOURED = 60  # max-min channel difference that counts as a coloured pixel


def coloured_fraction(png: bytes) -> float:
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)
    return float(((rgb.max(axis=2) - rgb.min(axis=2)) > COLOURED).mean())


def dismiss_popovers(page) -> None:
    """FiftyOne shows an "Explore Enterprise" popover on first visits; close it."""
    dismiss = page.get_by_role("button", name="Dismiss")
    if dismiss.count() and dismiss.first.is_visible():
        dismiss.first.click()
        page.wait_for_timeout(300)


def tile_colours(page) -> list[float]:
    page.mouse.move(5, 5)  # no hover decoration (an orange checkbox) on a tile
    page.wait_for_timeout(300)
    tiles = page.locator("[data-cy=looker]")
    return [coloured_fraction(tiles.nth(i).screenshot()) for i in range(tiles.count())]


def test_demo_dataset_renders_with_masks(page, app_url, demo_dataset, artifacts_dir):
    page.goto(f"{app_url}datasets/{demo_dataset.name}")
    grid_canvases = page.locator("[data-cy=looker] canvas[canvas-loaded=true]")
    grid_canvases.first.wait_for(timeout=LOAD_TIMEOUT_MS)
    page.wait_for_function(
        "n => document.querySelectorAll('[data-cy=looker] canvas[canvas-loaded=true]').length >= n",
        arg=len(demo_dataset),
        timeout=LOAD_TIMEOUT_MS,
    )
    dismiss_popovers(page)
    page.wait_for_timeout(1000)  # let the masks finish painting
    page.screenshot(path=str(artifacts_dir / "e2e-grid.png"))

    assert page.locator("[data-cy=looker]").count() == len(demo_dataset)
    with_labels = tile_colours(page)

    toggle = page.locator("[data-cy=checkbox-ground_truth]").first
    toggle.click()
    page.wait_for_timeout(1500)
    page.screenshot(path=str(artifacts_dir / "e2e-grid-labels-hidden.png"))
    without_labels = tile_colours(page)
    toggle.click()
    page.wait_for_timeout(1500)

    overlay = [a - b for a, b in zip(with_labels, without_labels)]
    coin_tiles = [i for i, gain in enumerate(overlay) if gain > 0.1]
    report = f"coloured with labels {with_labels}, without {without_labels}"
    assert len(coin_tiles) == 2, report  # two coins halves, masks painted over ~1/3 of them
    assert all(without_labels[i] < 0.01 for i in coin_tiles), report  # grey photo below
    assert any(without_labels[i] > 0.1 for i in range(3) if i not in coin_tiles), report

    # open a coins sample in the modal: its 12 coins are listed and painted
    page.locator("[data-cy=looker]").nth(coin_tiles[0]).click()
    modal = page.locator("[data-cy=modal]")
    modal.wait_for(timeout=LOAD_TIMEOUT_MS)
    modal_canvas = page.locator("[data-cy=modal-looker-container] canvas[canvas-loaded=true]")
    modal_canvas.first.wait_for(timeout=LOAD_TIMEOUT_MS)
    dismiss_popovers(page)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(artifacts_dir / "e2e-modal.png"))

    count = modal.locator("[data-cy=ground_truth-field] [data-cy=entry-count-all]").first
    assert count.inner_text().strip() == "12"
    modal_colour = coloured_fraction(modal_canvas.first.screenshot())
    assert modal_colour > 0.05, modal_colour
