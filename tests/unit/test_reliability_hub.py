"""Bad input at the weights surface (issue 9 §3, issue 14): table-driven, on the command line.

Each case runs ``fiftyone-ntt`` against a fake hub cache (offline unless the case stubs the
transport) and asserts exit code 2, a ``fiftyone-ntt: error:`` line that names the value and
the fix, no traceback, and that nothing the user owns changed: the COCO file, the bank, the
images and the hub cache are hash-identical afterwards. No database is involved, so the
file lives with the unit tests.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx2
import pytest
import torch
from fake_hub import add_dinov2_repo, add_sam2_repo, snapshot, write_meta_dinov2
from test_cli import TINY, _write_split

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


def _tree_hash(*roots: Path) -> str:
    digest = hashlib.sha256()
    for root in roots:
        for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
            digest.update(str(path).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("rel_hub")
    coco = _write_split(root / "imgs", [(150, 70), (100, 120)], 0, 0)
    (root / "gt.json").write_text(json.dumps(coco))
    masked = dict(coco, annotations=[a for a in coco["annotations"] if "segmentation" in a])
    masked["categories"] = [c for c in coco["categories"] if c["id"] != 7]
    (root / "masked.json").write_text(json.dumps(masked))  # no box-only refs: no SAM 2 needed
    bank = root / "bank.safetensors"
    args = ["--quiet", "build-bank", str(root / "masked.json"), "--images", str(root / "imgs")]
    assert main([*args, "--out", str(bank), *TINY]) == 0
    return root


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setitem(HIERA_SPECS, TINY_HIERA_SPEC.key, TINY_HIERA_SPEC)
    monkeypatch.setitem(DINOV2_SPECS, TINY_DINOV2_SPEC.key, TINY_DINOV2_SPEC)
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def _online(monkeypatch, *, listing=None, error=None):
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE")

    def list_repo_files(self, repo_id, **kwargs):
        if error is not None:
            raise error
        return listing

    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", list_repo_files)


def _response(status):
    return httpx2.Response(status, request=httpx2.Request("GET", "https://huggingface.co/api/m"))


def _predict(data, tmp, sam2="tiny", dinov2="tiny"):
    return [
        "predict",
        str(data / "bank.safetensors"),
        str(data / "imgs" / "img_01.png"),
        "--out",
        str(tmp / "r.json"),
        "--sam2",
        sam2,
        "--dinov2",
        dinov2,
        "--points-per-side",
        "4",
    ]


def _build(data, tmp, dinov2):
    args = ["build-bank", str(data / "masked.json"), "--images", str(data / "imgs")]
    return [*args, "--out", str(tmp / "b.safetensors"), "--dinov2", dinov2, "--sam2", "tiny"]


# --- the cases: (id, setup(data, tmp, cache, monkeypatch) -> argv, expected fragments) ----


def _unknown_family_file(data, tmp, cache, mp):
    path = tmp / "resnet50.pt"
    torch.save(
        {"model": {"conv1.weight": torch.zeros(4, 3, 7, 7), "fc.bias": torch.zeros(4)}}, path
    )
    return _predict(data, tmp, sam2=str(path))


def _dinov2_file_as_sam2(data, tmp, cache, mp):
    path = write_meta_dinov2(tmp / "sam2_hiera_large.pt", tiny_dinov2_model())
    return _predict(data, tmp, sam2=str(path))


def _gated(data, tmp, cache, mp):
    from huggingface_hub.errors import GatedRepoError

    _online(mp, error=GatedRepoError("403 gated", response=_response(403)))
    return _build(data, tmp, "facebook/dinov3-vitl16-pretrain-lvd1689m")


def _network(data, tmp, cache, mp):
    _online(mp, error=httpx2.ConnectError("[Errno 111] Connection refused"))
    return _predict(data, tmp, sam2="facebook/sam2-hiera-large")


def _neither_format(data, tmp, cache, mp):
    _online(mp, listing=["README.md", "config.json", "model.onnx"])
    return _predict(data, tmp, sam2="someone/sam2-onnx")


def _missing_repo(data, tmp, cache, mp):
    from huggingface_hub.errors import RepositoryNotFoundError

    _online(mp, error=RepositoryNotFoundError("404", response=_response(404)))
    return _predict(data, tmp, sam2="facebook/sam2-hiera-gigantic")


def _not_cached_offline(data, tmp, cache, mp):
    return _predict(data, tmp, sam2="facebook/sam2-hiera-large")


def _config_without_weights_offline(data, tmp, cache, mp):
    folder = snapshot(cache, "facebook/sam2.1-hiera-large")
    (folder / "config.json").write_text(json.dumps({"model_type": "sam2"}))
    return _predict(data, tmp, sam2="facebook/sam2.1-hiera-large")


def _wrong_family_repo(data, tmp, cache, mp):
    add_dinov2_repo(cache, "facebook/dinov2-large", tiny_dinov2_model())
    return _predict(data, tmp, sam2="facebook/dinov2-large")


def _sam2_repo_as_dinov2(data, tmp, cache, mp):
    add_sam2_repo(cache, "facebook/sam2-hiera-large", tiny_sam2_model())
    return _build(data, tmp, "facebook/sam2-hiera-large")


def _bank_encoder_mismatch_before_load(data, tmp, cache, mp):
    # Only config.json of a ViT-L is cached (no weights): refused from the config alone.
    folder = snapshot(cache, "facebook/dinov2-large")
    config = {"model_type": "dinov2", "hidden_size": 1024, "num_hidden_layers": 24}
    (folder / "config.json").write_text(json.dumps({**config, "patch_size": 14}))
    return _predict(data, tmp, dinov2="facebook/dinov2-large")


def _bank_encoder_mismatch_original_file(data, tmp, cache, mp):
    path = write_meta_dinov2(tmp / "d.pth", tiny_dinov2_model(registers=4))
    return _predict(data, tmp, dinov2=str(path))


CASES = [
    ("unknown-family checkpoint", _unknown_family_file, ["resnet50.pt", "not a SAM 2 checkpoint"]),
    ("DINOv2 file given as SAM 2", _dinov2_file_as_sam2, ["not a SAM 2 checkpoint"]),
    (
        "gated repo",
        _gated,
        ["gated repository", "accept its licence", "huggingface-cli login", "HF_TOKEN"],
    ),
    ("network failure", _network, ["network error: ConnectError", "--sam2 checkpoints/"]),
    ("repo with neither format", _neither_format, ["'someone/sam2-onnx' holds neither"]),
    ("missing repo", _missing_repo, ["'facebook/sam2-hiera-gigantic' does not exist"]),
    ("not cached, offline", _not_cached_offline, ["not in the local Hugging Face cache"]),
    (
        "cached config without weights, offline",
        _config_without_weights_offline,
        ["facebook/sam2.1-hiera-large", "offline mode is on"],
    ),
    ("DINOv2 repo given as SAM 2", _wrong_family_repo, ["'dinov2' model, not SAM 2"]),
    ("SAM 2 repo given as DINOv2", _sam2_repo_as_dinov2, ["not a DINOv2 checkpoint"]),
    (
        "bank/encoder mismatch from hub config",
        _bank_encoder_mismatch_before_load,
        ["memory bank was built with dinov2 vit_tiny_random", "vit_large", "not loaded"],
    ),
    (
        "bank/encoder mismatch from original file",
        _bank_encoder_mismatch_original_file,
        ["memory bank was built with", "reg4", "not loaded"],
    ),
]


@pytest.mark.parametrize(("setup", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_weights_input(data, env, tmp_path, monkeypatch, capsys, setup, expected):
    argv = setup(data, tmp_path, env, monkeypatch)
    before = _tree_hash(data, env)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("fiftyone-ntt: error: ") or "\nfiftyone-ntt: error: " in err, err
    for fragment in expected:
        assert fragment in err, (fragment, err)
    assert "Traceback" not in err
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "b.safetensors").exists()
    assert _tree_hash(data, env) == before


def _count_cases() -> dict[str, int]:
    """How many bad-input cases this file covers (reported in the issue)."""
    return {"weights and hub": len(CASES)}


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(_count_cases()))
