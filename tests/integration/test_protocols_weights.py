"""The protocols runner takes Meta's original files (``--sam2``/``--dinov2``), the way users
of the research code have them (``checkpoints/sam2_hiera_large.pt``,
``checkpoints/dinov2/dinov2_vitl14_pretrain.pth``), through ``fiftyone-ntt protocol`` and
``python -m fiftyone_ntt.fiftyone.protocols``. The files hold the tiny architecture under
the real names; the real (tiny) models run, not the fakes."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
import torch
from meta_format import dinov2_hf_to_meta, sam2_hf_to_meta
from test_protocols import _write

from fiftyone_ntt.models.dinov2 import DINOV2_SPECS
from fiftyone_ntt.models.sam2 import HIERA_SPECS
from fiftyone_ntt.models.tiny import (
    TINY_DINOV2_SPEC,
    TINY_HIERA_SPEC,
    tiny_dinov2_model,
    tiny_sam2_model,
)

pytestmark = pytest.mark.integration

PROTOCOLS = ("coco-fsod", "voc", "cd-fsod", "custom")


@pytest.fixture
def checkpoints(tmp_path, monkeypatch):
    monkeypatch.setitem(HIERA_SPECS, TINY_HIERA_SPEC.key, TINY_HIERA_SPEC)
    monkeypatch.setitem(DINOV2_SPECS, TINY_DINOV2_SPEC.key, TINY_DINOV2_SPEC)
    folder = tmp_path / "checkpoints"
    (folder / "dinov2").mkdir(parents=True)
    sam2 = folder / "sam2_hiera_large.pt"
    dinov2 = folder / "dinov2" / "dinov2_vitl14_pretrain.pth"
    torch.save({"model": sam2_hf_to_meta(tiny_sam2_model(seed=3).state_dict())}, sam2)
    torch.save(dinov2_hf_to_meta(tiny_dinov2_model(seed=2).state_dict()), dinov2)
    return sam2, dinov2


@pytest.fixture
def real_models_env(fo_session, tmp_path, monkeypatch):
    monkeypatch.delenv("FIFTYONE_NTT_TEST_MODELS", raising=False)
    monkeypatch.setenv("FIFTYONE_NTT_BANKS_DIR", str(tmp_path / "banks"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing may come from the hub
    prefix = f"ntt-protow-{uuid.uuid4().hex[:8]}"
    yield prefix
    for name in fo_session.list_datasets():
        if name.startswith(prefix):
            fo_session.delete_dataset(name)


def test_protocol_runs_with_meta_original_files(
    real_models_env, checkpoints, tmp_path, fo_session, capsys
):
    from fiftyone_ntt.cli import main
    from fiftyone_ntt.fiftyone.banks.index import load_bank

    sam2, dinov2 = checkpoints
    images = tmp_path / "custom" / "images"
    categories = [{"id": 7, "name": "bird"}, {"id": 9, "name": "boat"}]
    refs = _write(
        tmp_path / "custom" / "refs.json",
        images,
        [("r0.png", 120, 100, [(7, (10, 10, 50, 50), {}), (9, (60, 40, 110, 90), {})])],
        categories,
    )
    for ann in refs["annotations"]:  # box-only boat: SAM 2 masks it
        if ann["category_id"] == 9:
            del ann["segmentation"]
    (tmp_path / "custom" / "refs.json").write_text(json.dumps(refs))
    _write(
        tmp_path / "custom" / "targets.json",
        images,
        [("x0.png", 90, 80, [(7, (5, 5, 40, 40), {}), (9, (45, 30, 85, 75), {})])],
        categories,
    )
    out = tmp_path / "out"
    argv = [
        "protocol",
        "custom",
        str(tmp_path / "custom" / "refs.json"),
        str(tmp_path / "custom" / "targets.json"),
        str(images),
        "--name",
        "toy",
        "--prefix",
        real_models_env,
        "--points-per-side",
        "4",
        "--output-dir",
        str(out),
        "--sam2",
        str(sam2),
        "--dinov2",
        str(dinov2),
    ]
    assert main(argv) == 0, capsys.readouterr().err
    assert "bbox AP" in capsys.readouterr().out
    report = json.loads((out / "toy_report.json").read_text())
    assert report["segment"]["processed"] == 1
    bank = load_bank(fo_session.load_dataset(report["datasets"]["references"]), "toy")
    models = bank.metadata["models"]
    assert models["encoder"]["source"] == str(dinov2)
    assert models["encoder"]["arch"] == "vit_tiny_random"
    assert models["encoder"]["weights"] == "file"
    assert models["proposer"]["source"] == str(sam2)
    assert models["proposer"]["version"] == "2.0"
    assert bank.metadata["config"]["models"]["sam2"] == str(sam2)

    # the same run through python -m: resumed (same models, nothing re-segmented)
    from fiftyone_ntt.cli.protocol import main as protocols_main

    assert protocols_main(argv[1:]) == 0
    report = json.loads((out / "toy_report.json").read_text())
    assert report["bank"]["reused"] is True and report["segment"]["processed"] == 0


def test_protocol_help_lists_the_four_protocols():
    for command in (
        [sys.executable, "-m", "fiftyone_ntt.cli", "protocol", "--help"],
        [sys.executable, "-m", "fiftyone_ntt.fiftyone.protocols", "--help"],
    ):
        proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        for name in PROTOCOLS:
            assert name in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "fiftyone_ntt.cli", "protocol", "custom", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "--sam2" in proc.stdout and "--dinov2" in proc.stdout
