"""``fiftyone-ntt predict --preset paper`` on a machine whose hub cache holds what the real
repos hold: ``facebook/sam2-hiera-large`` only Meta's ``sam2_hiera_large.pt`` (tiny
architecture under the real name), ``facebook/dinov2-large`` transformers files. Offline."""

from __future__ import annotations

import json

import pytest
from fake_hub import add_dinov2_repo, add_sam2_repo
from test_cli import _write_split

from fiftyone_ntt.cli import main
from fiftyone_ntt.models import conversion
from fiftyone_ntt.models.tiny import (
    TINY_DINOV2_SPEC,
    TINY_HIERA_SPEC,
    tiny_dinov2_model,
    tiny_sam2_model,
)

pytestmark = [
    pytest.mark.unit,
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]


@pytest.fixture
def paper_cache(tmp_path, monkeypatch):
    monkeypatch.setitem(conversion.HIERA_SPECS, TINY_HIERA_SPEC.key, TINY_HIERA_SPEC)
    monkeypatch.setitem(conversion.DINOV2_SPECS, TINY_DINOV2_SPEC.key, TINY_DINOV2_SPEC)
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    add_sam2_repo(cache, "facebook/sam2-hiera-large", tiny_sam2_model(seed=3))
    add_dinov2_repo(cache, "facebook/dinov2-large", tiny_dinov2_model(seed=2))
    return cache


def test_predict_preset_paper_from_an_original_only_sam2_repo(paper_cache, tmp_path, capsys):
    coco = _write_split(tmp_path / "imgs", [(150, 70), (100, 120)], 0, 0)
    (tmp_path / "gt.json").write_text(json.dumps(coco))
    bank, out = tmp_path / "bank.safetensors", tmp_path / "results.json"
    common = ["--preset", "paper"]
    code = main(
        [
            "build-bank",
            str(tmp_path / "gt.json"),
            "--images",
            str(tmp_path / "imgs"),
            "--out",
            str(bank),
            *common,
        ]
    )
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    code = main(
        [
            "predict",
            str(bank),
            "--targets",
            str(tmp_path / "gt.json"),
            "--images",
            str(tmp_path / "imgs"),
            "--out",
            str(out),
            "--points-per-side",
            "4",
            *common,
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    assert "from hub facebook/sam2-hiera-large (hub:original:sam2_hiera_large.pt@" in err
    assert "from hub facebook/dinov2-large (hub:transformers@" in err
    results = json.loads(out.read_text())
    assert {r["image_id"] for r in results} <= {1, 2} and results
    assert all(len(r["bbox"]) == 4 and "segmentation" in r for r in results)
