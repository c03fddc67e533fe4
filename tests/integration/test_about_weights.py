"""The App's *about* operator shows the presets' weights table (``fiftyone-ntt models``)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

PLUGIN_NAME = "@fiftyone-ntt/no-time-to-train"


def test_about_shows_the_weights_table(demo_dataset, tmp_path, monkeypatch):
    import fiftyone.operators as foo

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache: nothing cached
    result = foo.execute_operator(f"{PLUGIN_NAME}/ntt_about", ctx={"dataset": demo_dataset})
    result.raise_exceptions()
    rows = result.result["weights"]
    paper = [r for r in rows if r["preset"] == "paper"]
    assert {r["role"] for r in paper} == {"SAM 2", "DINOv2"}
    sam = next(r for r in paper if r["role"] == "SAM 2")
    assert sam == {
        "preset": "paper",
        "model": "facebook/sam2-hiera-large",
        "role": "SAM 2",
        "files": "sam2_hiera_large.pt",
        "size": "898 MB",
        "cached": "no",
    }
