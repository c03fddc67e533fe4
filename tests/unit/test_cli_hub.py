"""``fiftyone-ntt predict --preset paper`` on a machine whose hub cache holds what the real
repos hold: ``facebook/sam2-hiera-large`` only Meta's ``sam2_hiera_large.pt`` (tiny
architecture under the real name), ``facebook/dinov2-large`` transformers files. Offline."""

from __future__ import annotations

import json
import logging

import pytest
from fake_hub import add_dinov2_repo, add_sam2_repo
from test_cli import _write_split

from fiftyone_ntt.cli import main
from fiftyone_ntt.models.dinov2 import DINOV2_SPECS
from fiftyone_ntt.models.sam2 import HIERA_SPECS
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
    monkeypatch.setitem(HIERA_SPECS, TINY_HIERA_SPEC.key, TINY_HIERA_SPEC)
    monkeypatch.setitem(DINOV2_SPECS, TINY_DINOV2_SPEC.key, TINY_DINOV2_SPEC)
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    add_sam2_repo(cache, "facebook/sam2-hiera-large", tiny_sam2_model(seed=3))
    add_dinov2_repo(cache, "facebook/dinov2-large", tiny_dinov2_model(seed=2))
    return cache


def test_predict_preset_paper_from_an_original_only_sam2_repo(
    paper_cache, tmp_path, capsys, caplog
):
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
    caplog.set_level(logging.INFO, logger="fiftyone_ntt.models")
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
    # Which files were read, as logged (and printed unless --quiet).
    assert "from hub facebook/sam2-hiera-large (hub:original:sam2_hiera_large.pt@" in caplog.text
    assert "from hub facebook/dinov2-large (hub:transformers@" in caplog.text
    results = json.loads(out.read_text())
    assert {r["image_id"] for r in results} <= {1, 2} and results
    assert all(len(r["bbox"]) == 4 and "segmentation" in r for r in results)


def test_models_lists_presets_cache_status_and_sizes(paper_cache, capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_key = {(r["preset"], r["role"]): r for r in rows}
    paper_sam = by_key[("paper", "SAM 2")]
    assert paper_sam["model"] == "facebook/sam2-hiera-large"
    assert paper_sam["cached"] is True and paper_sam["files"] == "sam2_hiera_large.pt"
    assert paper_sam["download_size"] == 898_000_000 and paper_sam["size"] == "898 MB"
    assert by_key[("paper", "DINOv2")]["cached"] is True
    default_sam = by_key[("default", "SAM 2")]
    assert default_sam["model"] == "facebook/sam2.1-hiera-large"
    assert default_sam["cached"] is False and default_sam["files"] == "transformers"
    assert main(["models", "--preset", "paper"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0].split() == ["preset", "model", "role", "files", "download", "cached"]
    assert text[1].split() == [
        "paper",
        "facebook/sam2-hiera-large",
        "SAM",
        "2",
        "sam2_hiera_large.pt",
        "898",
        "MB",
        "yes",
    ]


def test_download_preset_fetches_into_the_shared_cache(tmp_path, monkeypatch, capsys):
    import huggingface_hub
    from fake_hub import snapshot

    remote = tmp_path / "remote"
    add_sam2_repo(remote, "facebook/sam2-hiera-large", tiny_sam2_model(seed=3))
    add_dinov2_repo(remote, "facebook/dinov2-large", tiny_dinov2_model(seed=2))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "shared"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    fetched = []

    def listing(self, repo_id, **kwargs):
        snap = next((remote / ("models--" + repo_id.replace("/", "--")) / "snapshots").iterdir())
        return sorted(p.name for p in snap.iterdir())

    def download(repo_id, filename, *, cache_dir, **kwargs):
        src = next((remote / ("models--" + repo_id.replace("/", "--")) / "snapshots").iterdir())
        target = snapshot(cache_dir, repo_id) / filename
        target.write_bytes((src / filename).read_bytes())
        fetched.append((repo_id, filename, str(cache_dir)))
        return str(target)

    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", listing)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    assert main(["--quiet", "download", "--preset", "paper"]) == 0
    shared = str(tmp_path / "shared" / "hub")
    assert fetched == [
        ("facebook/sam2-hiera-large", "sam2_hiera_large.pt", shared),
        ("facebook/dinov2-large", "config.json", shared),
        ("facebook/dinov2-large", "model.safetensors", shared),
    ]
    assert "HF_HUB_OFFLINE=1" in capsys.readouterr().err
    assert main(["--quiet", "download", "--preset", "paper"]) == 0
    assert len(fetched) == 3  # cached now
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["models", "--json", "--preset", "paper"]) == 0
    assert all(r["cached"] for r in json.loads(capsys.readouterr().out))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["download"], "nothing to download"),
        (["download", "--preset", "no-such"], "unknown preset 'no-such'"),
        (["models", "--preset", "no-such"], "unknown preset 'no-such'"),
        (["download", "./local_sam2.pt"], "does not exist"),
    ],
)
def test_models_and_download_errors(monkeypatch, capsys, argv, message):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert main(argv) == 2
    assert message in capsys.readouterr().err
