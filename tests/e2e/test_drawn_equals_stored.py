"""The labels the App draws are the labels MongoDB holds, after every panel action, without a
page reload (a reload would hide a stale view).

The painted dataset with the distractor sample of ``test_panel_loop`` (a red stripe that the
fake models take for "red": a confident false positive). Through the panel: build v1, preview
the view, open the distractor, select the false positive on the image (the other overlays
must stay drawn), reject it, rebuild (v2), preview this sample again, close the sample view.
After each step the overlays drawn in the sample view and in the grid tiles are compared with
the stored labels: a point is "drawn" when the canvas pixel there differs from the painted
image's own colour (the painted images are flat colours, known exactly).

The App must also log no label-painting failure ("ArrayBuffer is detached"): FiftyOne 1.22
loses a label-painting worker with each one, and with them all gone (one per CPU core) it
draws no overlay anywhere until a reload. The panel's quiet rules and the preview's mask
files that prevent them are in docs/architecture.md ("The panel and the App's label
painting"); this test failed in 4 of 4 fresh-clone CI runs (browser tier beside the
integration tier) while previews kept their masks inside the labels. With mask files it passed
in every local and fresh-clone run but one: CI's run of ``adf5c66`` drew every overlay as
stored and logged one lost worker (FiftyOne's race, which a probe shows with no panel open:
docs/architecture.md); ``make test`` gives a failed browser test one more attempt and records
it (``scripts/e2e_tier.sh``), so such a run shows in ``test-artifacts/e2e-reruns.txt``.

Screenshots: ``test-artifacts/drawn-*.png``; what was drawn at each step:
``test-artifacts/drawn-report.json``; the App's console with the panel's calls:
``test-artifacts/drawn-console.txt``.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.e2e

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from app_console import PAINT_ERROR  # noqa: E402
from test_panel_loop import (  # noqa: E402
    LOAD_TIMEOUT_MS,
    STRIPE,
    click,
    close_modal,
    loop_dataset,  # noqa: F401 - the fixture
    wait_text,
)
from test_workflow import dismiss_popovers, wait_for_grid  # noqa: E402

PREVIEW = "ntt_preview"
CURATED = "ntt_curated"
GT = "ground_truth"
BANK = "ground_truth-refs"
PANEL_URI = "@fiftyone-ntt/no-time-to-train/ntt_panel"
#: A pixel is drawn over when it differs from the painted colour by more than this (sum of
#: the three channels' absolute differences).
DRAWN = 60


def _rgb(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)


def _canvas_point(box, width: int, height: int, x: float, y: float, origin) -> tuple[int, int]:
    """Pixel (x, y) of a ``width x height`` image letterboxed ('contain') in ``box``, in the
    coordinates of a screenshot whose top-left is ``origin``."""
    scale = min(box["width"] / width, box["height"] / height)
    left = box["x"] + (box["width"] - width * scale) / 2
    top = box["y"] + (box["height"] - height * scale) / 2
    return round(left + x * scale - origin[0]), round(top + y * scale - origin[1])


def drawn(page, canvas, sample, points) -> list[bool]:
    """Whether an overlay is drawn at each image point ``(x, y)`` of ``sample`` shown in
    ``canvas`` (a locator): the screen pixel differs from the painted image's pixel."""
    page.mouse.move(2, 2)  # no hover decoration
    page.wait_for_timeout(400)
    box = canvas.bounding_box()
    rgb = _rgb(canvas.screenshot())
    image = np.asarray(Image.open(sample.filepath).convert("RGB")).astype(np.int16)
    height, width = image.shape[:2]
    out = []
    for x, y in points:
        col, row = _canvas_point(box, width, height, x, y, (box["x"], box["y"]))
        screen = rgb[row - 1 : row + 2, col - 1 : col + 2].reshape(-1, 3).mean(axis=0)
        out.append(bool(np.abs(screen - image[int(y), int(x)]).sum() > DRAWN))
    return out


def on_stripe_point(point) -> bool:
    return STRIPE[0] <= point[0] <= STRIPE[2] and STRIPE[1] <= point[1] <= STRIPE[3]


def centre(box) -> tuple[float, float]:
    return ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)


def stored_centres(dataset, sample_id: str, field: str) -> list[tuple[float, float]]:
    """Centres (image pixels) of the stored labels of ``field`` on a sample (from MongoDB)."""
    dataset.reload()
    sample = dataset[sample_id]
    if sample[field] is None:
        return []
    w, h = sample.metadata.width, sample.metadata.height
    out = []
    for det in sample[field].detections:
        x, y, bw, bh = det.bounding_box
        out.append(((x + bw / 2) * w, (y + bh / 2) * h))
    return out


def sample_tab(page, modal) -> None:
    modal.get_by_text("Sample", exact=True).first.click()
    page.wait_for_timeout(2000)


def shot(page, artifacts_dir: Path, name: str, console=None) -> None:
    page.wait_for_timeout(300)
    if console is not None:
        console.append(f"---- step {name}")
    page.screenshot(path=str(artifacts_dir / f"drawn-{name}.png"))


def test_drawn_equals_stored(page, app_url, loop_dataset, artifacts_dir):  # noqa: F811
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))

    def on_request(req):  # the panel's calls, in the log beside the App's messages
        if "/operators/execute" in req.url:
            try:
                body = req.post_data_json or {}
            except Exception:
                body = {}
            params = body.get("params") or {}
            if PANEL_URI not in str(body.get("operator_uri")):
                return
            console.append(
                f"op: {body.get('operator_uri')} {params.get('__method__')} "
                f"{str(body.get('current_sample'))[:30]}"
            )

    page.on("request", on_request)
    try:
        _flow(page, app_url, loop_dataset, artifacts_dir, console)
    except BaseException:
        page.screenshot(path=str(artifacts_dir / "drawn-failure.png"))
        raise
    finally:
        (artifacts_dir / "drawn-console.txt").write_text("\n".join(console))


def _flow(page, app_url, dataset, artifacts_dir, console):
    page.set_viewport_size({"width": 1800, "height": 1000})
    distractor = dataset.match({"filepath": {"$regex": "painted_99"}}).first()
    stripe = centre(STRIPE)
    true_red, true_green = centre((10, 10, 40, 40)), centre((10, 55, 40, 90))
    import fiftyone_ntt.fiftyone as nf

    nf.build_bank(dataset, GT, BANK)  # v1 (building writes no label; the panel's own test
    # covers its Build button)
    page.goto(f"{app_url}datasets/{dataset.name}")
    wait_for_grid(page, len(dataset))
    # the launcher's session (the demo dataset) may connect late and switch every open App
    # to its dataset ("Could not connect session, trying again in 10 seconds"): wait it out
    page.wait_for_timeout(12_000)
    if page.get_by_text(dataset.name).count() == 0:
        page.goto(f"{app_url}datasets/{dataset.name}")
        wait_for_grid(page, len(dataset))
    page.locator("[data-cy=new-panel-btn]").first.click()
    page.wait_for_timeout(800)
    page.locator("[data-cy=new-panel-option-ntt_panel]").click(modifiers=["Alt"])
    panel = page.locator("[data-cy=panel-content-ntt_panel]").first
    wait_text(panel, "References")

    n_input = panel.locator(
        "xpath=.//*[normalize-space(text())='N (samples of the view to preview)']"
        "/following::input[1]"
    ).first
    page.wait_for_timeout(1500)
    for _ in range(5):  # the panel may re-render the field once more after the build
        n_input.fill(str(len(dataset)))
        n_input.press("Tab")
        page.wait_for_timeout(1000)
        if n_input.input_value() == str(len(dataset)):
            break
    click(panel, "Preview on N samples of the view", wait_ms=3000)
    wait_text(panel, f"Preview of 'ground_truth-refs' v1 on {len(dataset)} sample(s)")
    wait_for_grid(page, len(dataset))
    shot(page, artifacts_dir, "1-preview", console)
    report = {}
    tiles = page.locator("[data-cy=looker] canvas")
    ids = dataset.values("id")
    tile_of = {sid: i for i, sid in enumerate(ids)}
    dist_tile = tiles.nth(tile_of[distractor.id])
    report["grid-after-preview"] = drawn(
        page, dist_tile, distractor, [stripe, true_red, true_green]
    )

    page.locator("[data-cy=looker]").nth(tile_of[distractor.id]).click()
    modal = page.locator("[data-cy=modal]")
    modal.wait_for(timeout=LOAD_TIMEOUT_MS)
    modal_canvas = modal.locator("[data-cy=modal-looker-container] canvas").first
    modal.locator("[data-cy=modal-looker-container] canvas[canvas-loaded=true]").first.wait_for(
        timeout=LOAD_TIMEOUT_MS
    )
    dismiss_popovers(page)
    page.wait_for_timeout(1500)
    shot(page, artifacts_dir, "2-modal", console)
    report["modal-open"] = drawn(page, modal_canvas, distractor, [stripe, true_red, true_green])
    box = modal_canvas.bounding_box()
    w, h = distractor.metadata.width, distractor.metadata.height
    px, py = _canvas_point(box, w, h, stripe[0], stripe[1], (0, 0))
    page.mouse.click(px, py)
    page.wait_for_timeout(1500)
    shot(page, artifacts_dir, "4-selected", console)
    report["modal-selected"] = drawn(page, modal_canvas, distractor, [stripe, true_red, true_green])
    modal.get_by_text("No Time to Train").first.click()
    page.wait_for_timeout(1500)
    modal_panel = modal.locator("[data-cy=panel-content-ntt_panel]").first
    click(modal_panel, "Reject selected predictions (false positives)")
    wait_text(modal_panel, "Rejected 1 prediction(s)")
    sample_tab(page, modal)
    shot(page, artifacts_dir, "5-rejected", console)
    report["modal-rejected"] = drawn(page, modal_canvas, distractor, [stripe, true_red, true_green])
    dataset.reload()  # the App's process added ntt_preview
    assert nf.build_bank(dataset, GT, BANK)["diff"]["text"] == "+1 negative"  # v2
    modal.get_by_text("No Time to Train").first.click()
    page.wait_for_timeout(1000)
    click(modal_panel, "Preview on this sample", wait_ms=3000)
    wait_text(modal_panel, "Preview of 'ground_truth-refs' v2 on 1 sample(s)")
    sample_tab(page, modal)
    shot(page, artifacts_dir, "6-preview-v2", console)
    report["modal-preview-v2"] = drawn(
        page, modal_canvas, distractor, [stripe, true_red, true_green]
    )
    close_modal(page, modal)
    shot(page, artifacts_dir, "7-closed", console)
    report["grid-closed"] = drawn(page, dist_tile, distractor, [stripe, true_red, true_green])
    report["stored-preview"] = stored_centres(dataset, distractor.id, PREVIEW)
    report["stored-curated"] = stored_centres(dataset, distractor.id, CURATED)
    stored = {f: stored_centres(dataset, distractor.id, f) for f in (PREVIEW, CURATED)}
    assert not [c for c in stored[PREVIEW] if on_stripe_point(c)], stored
    assert [c for c in stored[CURATED] if on_stripe_point(c)], stored
    # drawn = stored: [stripe, true red, true green] at every step
    expected = {
        "grid-after-preview": [True, True, True],
        "modal-open": [True, True, True],
        "modal-selected": [True, True, True],  # selecting a label hides nothing
        "modal-rejected": [True, True, True],  # rejected, still in ntt_preview
        # v2 no longer predicts the stripe; ntt_curated (which keeps it) is hidden by default
        "modal-preview-v2": [False, True, True],
        "grid-closed": [False, True, True],
        "painting-errors": 0,
    }
    report["painting-errors"] = sum(PAINT_ERROR in line for line in console)
    report["painting-errors-after-step"] = _errors_after_step(console)
    (artifacts_dir / "drawn-report.json").write_text(json.dumps(report, indent=1))
    assert {k: report[k] for k in expected} == expected, report


def _errors_after_step(console: list[str]) -> dict[str, int]:
    """Lost painting workers per step of the flow (the last ``---- step`` line before each
    error; "opening" before the first step): where to look when one is lost."""
    step, counts = "opening", {}
    for line in console:
        if line.startswith("---- step "):
            step = line.removeprefix("---- step ")
        elif PAINT_ERROR in line:
            counts[step] = counts.get(step, 0) + 1
    return counts
