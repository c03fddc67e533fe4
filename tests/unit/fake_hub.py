"""Fake Hugging Face hub caches (``HF_HUB_CACHE`` layout) that mirror the real repos' files.

``models--<org>--<name>/refs/main`` holds a commit hash and
``models--<org>--<name>/snapshots/<hash>/`` the files, as ``huggingface_hub`` writes them
(real files instead of symlinks into ``blobs/``, which the hub also does where symlinks are
unavailable). The weights are the tiny random models under the real file names, so loading
from the cache exercises exactly the code a real cache would, without a download.

File lists, from the public repo listings:

* ``facebook/sam2-hiera-{tiny,small,base-plus,large}`` (SAM 2.0): Meta's original only —
  ``sam2_hiera_<size>.pt`` (dict with key ``"model"``), ``sam2_hiera_<s>.yaml``, README;
* ``facebook/sam2.1-hiera-*``: ``config.json`` + ``model.safetensors`` and Meta's
  ``sam2.1_hiera_<size>.pt`` + yaml;
* ``facebook/dinov2-*``: ``config.json``, ``model.safetensors``, ``pytorch_model.bin``,
  ``preprocessor_config.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from meta_format import dinov2_hf_to_meta, sam2_hf_to_meta

REVISION = "0123456789abcdef0123456789abcdef01234567"

_SAM2_SIZES = {"tiny": "t", "small": "s", "base-plus": "b+", "large": "l"}

#: repo id -> ("sam2-original" | "sam2-both" | "dinov2", original file name or None)
MIRRORED: dict[str, tuple[str, str | None]] = {}
for _size, _short in _SAM2_SIZES.items():
    _name = _size.replace("-", "_")
    MIRRORED[f"facebook/sam2-hiera-{_size}"] = ("sam2-original", f"sam2_hiera_{_name}.pt")
    MIRRORED[f"facebook/sam2.1-hiera-{_size}"] = ("sam2-both", f"sam2.1_hiera_{_name}.pt")
for _size in ("small", "base", "large", "giant"):
    MIRRORED[f"facebook/dinov2-{_size}"] = ("dinov2", None)


def snapshot(cache: Path, repo_id: str, revision: str = REVISION) -> Path:
    """Create (or return) the snapshot folder of ``repo_id`` with ``refs/main``."""
    root = cache / ("models--" + repo_id.replace("/", "--"))
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(revision)
    folder = root / "snapshots" / revision
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".gitattributes").write_text("*.pt filter=lfs diff=lfs merge=lfs -text\n")
    (folder / "README.md").write_text(f"# {repo_id}\n(fake cache for tests)\n")
    return folder


def _yaml_name(repo_id: str) -> str:
    name = repo_id.rsplit("/", 1)[-1]  # sam2-hiera-large / sam2.1-hiera-large
    prefix, size = name.split("-hiera-")
    return f"{prefix.replace('-', '_')}_hiera_{_SAM2_SIZES[size]}.yaml"


def add_sam2_repo(cache: Path, repo_id: str, model: Any, version: str | None = None) -> Path:
    """A SAM 2 repo as the real one is laid out, holding ``model``'s weights."""
    layout, original = MIRRORED[repo_id]
    version = version or ("2.1" if "sam2.1" in repo_id else "2.0")
    folder = snapshot(cache, repo_id)
    (folder / _yaml_name(repo_id)).write_text("# Meta's Hydra config (not read)\n")
    torch.save({"model": sam2_hf_to_meta(model.state_dict(), version)}, folder / original)
    if layout == "sam2-both":
        model.save_pretrained(folder)  # config.json + model.safetensors
        (folder / "preprocessor_config.json").write_text(json.dumps({"do_resize": True}))
    return folder


def add_dinov2_repo(cache: Path, repo_id: str, model: Any) -> Path:
    """A DINOv2 repo (transformers files, safetensors and the older .bin)."""
    folder = snapshot(cache, repo_id)
    model.save_pretrained(folder)
    # The older PyTorch copy of the same weights (transformers 5 only writes safetensors).
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    (folder / "preprocessor_config.json").write_text(json.dumps({"crop_size": 224}))
    return folder


def write_meta_dinov2(path: Path, model: Any) -> Path:
    """Meta's ``dinov2_vit*14_pretrain.pth`` layout of ``model`` at ``path``."""
    torch.save(dinov2_hf_to_meta(model.state_dict()), path)
    return path
