"""The demo dataset builds with instance masks; FiftyOne finds the plugin and its operators."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.integration

PLUGIN_NAME = "@fiftyone-ntt/no-time-to-train"


def _manifest(repo_root: Path) -> dict:
    with open(repo_root / "fiftyone.yml") as f:
        return yaml.safe_load(f)


def test_demo_dataset_has_coin_masks(demo_dataset, fo_session):
    dataset = demo_dataset
    assert dataset.persistent
    assert len(dataset) == 3
    by_name = {os.path.basename(s.filepath): s for s in dataset}
    assert set(by_name) == {"coins_top.png", "coins_bottom.png", "chelsea.png"}

    images_dir = Path(fo_session.config.default_dataset_dir) / dataset.name
    for sample in by_name.values():
        assert Path(sample.filepath).parent == images_dir
        assert Path(sample.filepath).is_file()
        assert sample.metadata is not None and sample.metadata.width > 0

    assert len(by_name["chelsea.png"].ground_truth.detections) == 0
    counts = {}
    for name in ("coins_top.png", "coins_bottom.png"):
        sample = by_name[name]
        width, height = sample.metadata.width, sample.metadata.height
        detections = sample.ground_truth.detections
        counts[name] = len(detections)
        for det in detections:
            assert det.label == "coin"
            x, y, w, h = det.bounding_box
            assert 0 <= x < 1 and 0 <= y < 1 and 0 < x + w <= 1 and 0 < y + h <= 1
            mask = np.asarray(det.mask)
            # FiftyOne's convention: the mask covers the box, in pixels of the image
            assert mask.shape == (round(h * height), round(w * width))
            assert mask.dtype == bool
            # a coin fills roughly a disc's share of its box (pi/4 ~ 0.785)
            assert 0.6 < mask.mean() < 0.95
            assert mask[0].any() and mask[-1].any() and mask[:, 0].any() and mask[:, -1].any()
    # the coins photograph holds 24 coins, 12 in each half
    assert counts == {"coins_top.png": 12, "coins_bottom.png": 12}


def test_demo_dataset_is_idempotent_and_refuses_foreign_name(demo_dataset, make_dataset):
    from fiftyone_ntt.fiftyone.demo import build_demo_dataset

    again = build_demo_dataset(demo_dataset.name)
    assert again.name == demo_dataset.name
    assert sorted(again.values("id")) == sorted(demo_dataset.values("id"))  # not rebuilt

    foreign = make_dataset("not-the-demo")
    with pytest.raises(ValueError, match="not the NTT demo"):
        build_demo_dataset(foreign.name)
    assert not foreign.deleted

    other = build_demo_dataset(foreign.name, overwrite=True)
    try:
        assert len(other) == 3
    finally:
        other.delete()


def test_plugin_and_operators_are_registered(fo_session, repo_root):
    import fiftyone.operators as foo
    import fiftyone.plugins as fop
    from fiftyone.plugins.context import build_plugin_contexts

    manifest = _manifest(repo_root)
    assert manifest["name"] == PLUGIN_NAME

    ours = [p for p in fop.list_plugins() if p.name == PLUGIN_NAME]
    assert len(ours) == 1, [p.name for p in fop.list_plugins()]
    assert os.path.realpath(ours[0].directory) == os.path.realpath(repo_root)
    assert ours[0].version == manifest["version"]

    contexts = [c for c in build_plugin_contexts() if c.name == PLUGIN_NAME]
    assert contexts and not contexts[0].errors, contexts[0].errors if contexts else None

    registered = {op.name for op in foo.list_operators() if op.plugin_name == PLUGIN_NAME}
    assert registered == set(manifest["operators"]) | set(manifest.get("panels", []))
    assert "ntt_about" in registered


def test_ntt_about_runs(demo_dataset):
    import fiftyone.operators as foo

    result = foo.execute_operator(f"{PLUGIN_NAME}/ntt_about", ctx={"dataset": demo_dataset})
    result.raise_exceptions()
    info = result.result
    assert info["plugin_version"] == "0.1.0"
    assert info["device"].split()[0] in {"cpu", "cuda", "mps"}
    assert info["torch_version"] != "not installed"


def test_cli_lists_plugin_from_checkout_parent(fo_session, repo_root):
    """What the README tells users: FIFTYONE_PLUGINS_DIR = the checkout's parent folder."""
    env = dict(os.environ, FIFTYONE_PLUGINS_DIR=str(repo_root.parent))
    # the `fiftyone` command of this environment (fiftyone.core.cli has no __main__)
    fiftyone_cli = [
        sys.executable,
        "-c",
        "import sys; from fiftyone.core.cli import main; sys.exit(main())",
    ]

    plugins = subprocess.run(
        [*fiftyone_cli, "plugins", "list"], env=env, capture_output=True, text=True, timeout=300
    )
    assert plugins.returncode == 0, plugins.stderr
    assert PLUGIN_NAME in plugins.stdout

    operators = subprocess.run(
        [*fiftyone_cli, "operators", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert operators.returncode == 0, operators.stderr
    assert f"{PLUGIN_NAME}/ntt_about" in operators.stdout
