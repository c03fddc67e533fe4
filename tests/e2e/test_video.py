"""A video dataset segmented frame by frame (issue 12 §3) in the real App: the generated VP9
WebM video of moving squares, its frames segmented into ``frames.ntt`` with the fake models
(the library path the *segment* operator calls), opens in the modal with the predicted masks
drawn on the frame.

The mask check reads pixels: the predictions are coloured cyan (the dataset's colour scheme)
and the video holds only grey, red and green, so cyan pixels on the frame can only come from
the prediction overlay; hiding ``frames.ntt`` must take them away again.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

LOAD_TIMEOUT_MS = 120_000
CYAN = "#00ffff"


def cyan(png: bytes) -> np.ndarray:
    """``(H, W)`` bool: pixels where green and blue both exceed red by 60 (cyan overlay)."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return (green - red > 60) & (blue - red > 60)


def cyan_fraction(png: bytes) -> float:
    return float(cyan(png).mean())


def leftmost_cyan(png: bytes) -> float:
    """Leftmost column holding cyan, as a fraction of the width (1.0: none)."""
    mask = cyan(png)
    columns = np.flatnonzero(mask.sum(axis=0) > 5)
    return float(columns[0] / mask.shape[1]) if columns.size else 1.0


@pytest.fixture
def segmented_video(fo_session, session_dir, monkeypatch):
    """A persistent video dataset with ``frames.ntt`` predictions; deleted afterwards."""
    from ntt_video import fill_video_dataset

    import fiftyone_ntt.fiftyone as nf

    monkeypatch.setenv("FIFTYONE_NTT_TEST_MODELS", "fake")
    monkeypatch.setenv("FIFTYONE_NTT_BANKS_DIR", str(session_dir / "video-banks"))
    dataset = fo_session.Dataset(f"ntt-e2e-video-{uuid.uuid4().hex[:6]}")
    dataset.persistent = True
    folder = session_dir / dataset.name
    folder.mkdir()
    try:
        fill_video_dataset(dataset, folder)
        nf.build_bank(dataset, "frames.ground_truth", "squares")
        # every frame, the reference frame too: the modal opens on frame 1
        summary = nf.segment(dataset, "squares", "ntt", skip_references=False, progress=None)
        assert summary["processed"] == 24 and summary["failed"] == 0, summary
        dataset.app_config.color_scheme = fo_session.ColorScheme(
            color_by="field",
            fields=[
                {"path": "frames.ntt", "fieldColor": CYAN},
                {"path": "frames.ground_truth", "fieldColor": "#ffff00"},
            ],
        )
        dataset.save()
        yield dataset
    finally:
        dataset.delete()


def dismiss_popovers(page) -> None:
    dismiss = page.get_by_role("button", name="Dismiss")
    if dismiss.count() and dismiss.first.is_visible():
        dismiss.first.click()
        page.wait_for_timeout(300)


def test_video_frame_masks_render_in_the_modal(page, app_url, segmented_video, artifacts_dir):
    dataset = segmented_video
    page.goto(f"{app_url}datasets/{dataset.name}")
    page.locator("[data-cy=looker]").first.wait_for(timeout=LOAD_TIMEOUT_MS)
    dismiss_popovers(page)
    page.wait_for_timeout(1500)
    page.locator("[data-cy=looker]").first.click()
    page.locator("[data-cy=modal]").wait_for(timeout=LOAD_TIMEOUT_MS)
    canvas = page.locator("[data-cy=modal-looker-container] canvas")
    canvas.first.wait_for(timeout=LOAD_TIMEOUT_MS)
    dismiss_popovers(page)
    page.wait_for_timeout(4000)  # the video loads and its first frame's labels are drawn
    modal = page.locator("[data-cy=modal]")
    # the ground truth (yellow) covers the predictions exactly: show the predictions alone
    modal.locator("[data-cy='checkbox-frames.ground_truth']").first.click()
    page.wait_for_timeout(1500)
    page.mouse.move(5, 5)
    page.wait_for_timeout(500)
    first_png = canvas.first.screenshot(path=str(artifacts_dir / "e2e-video-frame-1.png"))

    # step to frame 12 (the looker's "." shortcut): the masks follow the moving squares
    box = canvas.first.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(11):
        page.keyboard.press(".")
        page.wait_for_timeout(150)
    page.mouse.move(5, 5)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(artifacts_dir / "e2e-video-modal.png"))
    frame_png = canvas.first.screenshot(path=str(artifacts_dir / "e2e-video-frame.png"))
    with_masks = cyan_fraction(frame_png)
    # the red square moves 3 px per frame: 33 px of 128 between frames 1 and 12
    moved = leftmost_cyan(frame_png) - leftmost_cyan(first_png)
    assert cyan_fraction(first_png) > 0.02 and 0.15 < moved < 0.35, (
        f"leftmost cyan column moved by {moved:.3f} of the width from frame 1 to frame 12"
    )

    modal.locator("[data-cy='checkbox-frames.ntt']").first.click()
    page.wait_for_timeout(1500)
    page.mouse.move(5, 5)
    page.wait_for_timeout(500)
    hidden_png = canvas.first.screenshot(path=str(artifacts_dir / "e2e-video-frame-hidden.png"))
    without_masks = cyan_fraction(hidden_png)

    report = f"cyan fraction with frames.ntt {with_masks:.4f}, hidden {without_masks:.4f}"
    # two 24 x 24 squares in a 128 x 96 frame: ~9% of the frame, masks over them
    assert with_masks > 0.02, report
    assert without_masks < 0.002, report


@pytest.fixture
def tracked_video(fo_session, session_dir, monkeypatch):
    """A persistent video dataset with a tracked run in ``frames.tracks`` (K = 3: No Time
    to Train on frames 1, 4, 7, ..., the fake colour propagator between, fake models), the
    App colouring labels by instance (``Detection.index``: the track id); deleted afterwards."""
    from ntt_video import fill_video_dataset

    import fiftyone_ntt.fiftyone as nf

    monkeypatch.setenv("FIFTYONE_NTT_TEST_MODELS", "fake")
    monkeypatch.setenv("FIFTYONE_NTT_BANKS_DIR", str(session_dir / "tracked-banks"))
    dataset = fo_session.Dataset(f"ntt-e2e-tracks-{uuid.uuid4().hex[:6]}")
    dataset.persistent = True
    folder = session_dir / dataset.name
    folder.mkdir()
    try:
        fill_video_dataset(dataset, folder)
        nf.build_bank(dataset, "frames.ground_truth", "squares")
        summary = nf.segment(
            dataset, "squares", "tracks", keyframe_every=3, skip_references=False, progress=None
        )
        assert summary["processed"] == 24 and summary["tracking"]["keyframes"] == 8, summary
        # opaque masks: each drawn in its track's colour alone
        dataset.app_config.color_scheme = fo_session.ColorScheme(color_by="instance", opacity=1.0)
        dataset.save()
        yield dataset
    finally:
        dataset.delete()


def _track_colours(png: bytes) -> list[np.ndarray]:
    """The most frequent saturated colour in the left and the right half of the canvas (the
    red square is on the left, the green one on the right): with opaque masks, the colour
    each track is drawn in."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)
    saturated = rgb.max(-1) - rgb.min(-1) > 80
    half = rgb.shape[1] // 2
    colours = []
    for part in (np.s_[:, :half], np.s_[:, half:]):
        pixels = rgb[part][saturated[part]]
        assert len(pixels) > 500, f"nothing drawn in a half of the frame ({len(pixels)} px)"
        values, counts = np.unique(pixels, axis=0, return_counts=True)
        colours.append(values[counts.argmax()])
    return colours


def test_tracked_video_frame_colours_tracks_by_id(page, app_url, tracked_video, artifacts_dir):
    dataset = tracked_video
    sample = dataset.first()
    for number in (5, 6):  # propagated from keyframe 4
        frame = sample.frames[number]
        indexes = [d.index for d in frame.tracks.detections]
        assert len(indexes) == 2 and len(set(indexes)) == 2, indexes  # one id per square
        assert {d.ntt_track_source for d in frame.tracks.detections} == {"propagated"}
        first = {d.label: d.index for d in sample.frames[1].tracks.detections}
        assert {d.label: d.index for d in frame.tracks.detections} == first  # same tracks

    page.goto(f"{app_url}datasets/{dataset.name}")
    page.locator("[data-cy=looker]").first.wait_for(timeout=LOAD_TIMEOUT_MS)
    dismiss_popovers(page)
    page.wait_for_timeout(1500)
    page.locator("[data-cy=looker]").first.click()
    page.locator("[data-cy=modal]").wait_for(timeout=LOAD_TIMEOUT_MS)
    canvas = page.locator("[data-cy=modal-looker-container] canvas")
    canvas.first.wait_for(timeout=LOAD_TIMEOUT_MS)
    dismiss_popovers(page)
    page.wait_for_timeout(4000)  # the video loads and its first frame's labels are drawn
    modal = page.locator("[data-cy=modal]")
    modal.locator("[data-cy='checkbox-frames.ground_truth']").first.click()
    box = canvas.first.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(5):  # past keyframe 4: a propagated frame (5 or 6)
        page.keyboard.press(".")
        page.wait_for_timeout(150)
    page.mouse.move(5, 5)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(artifacts_dir / "video-tracks-modal.png"))
    shown = canvas.first.screenshot(path=str(artifacts_dir / "video-tracks-frame.png"))

    # each track its own colour, neither the square's own colour (the labels are drawn)
    left, right = _track_colours(shown)
    from ntt_video import COLOURS

    from fiftyone_ntt.testing import PALETTE

    for colour, name in ((left, "red"), (right, "green")):
        square = PALETTE[COLOURS[name]]
        assert np.abs(colour - np.array(square)).max() > 60, (colour, square)
    assert np.abs(left - right).max() > 60, (left, right)
