"""A DINOv2 encoder's identity read from its config or checkpoint, without its weights.

A memory bank only works with the encoder that built it (``MemoryBank.check_encoder``).
Loading DINOv2 ViT-L takes ~10 s, so the command line compares the identity first, from
``config.json`` (folders, hub repos: cache first, else that one small file) or from the
tensor shapes of Meta's checkpoint (memory-mapped, nothing converted).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fiftyone_ntt.models.checkpoints import classify_source
from fiftyone_ntt.models.dinov2.conversion import dinov2_arch_name, peek_dinov2_architecture
from fiftyone_ntt.models.dinov3.conversion import (
    dinov3_identity_from_checkpoint,
    dinov3_identity_from_config,
)
from fiftyone_ntt.models.hub import cached_hub_weights, hub_config_file

__all__ = ["peek_encoder_identity"]


def peek_encoder_identity(source: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The identity keys a bank checks (``family``, ``arch``, ``feature_dim``,
    ``patch_size``, ``registers``) of a DINOv2 source, without loading its weights.

    Args:
        source: hub id, ``save_pretrained`` folder, or Meta's ``dinov2_vit*14*_pretrain.pth``.

    Returns:
        The identity, plus ``source``; ``None`` when it cannot be read cheaply (no config,
        not cached and offline, an unknown format): loading the model then decides.
    """
    text = os.fspath(source)
    try:
        kind = classify_source(text, "DINOv2")
    except (OSError, ValueError):
        return None
    try:
        if kind == "file":
            identity = _from_checkpoint(Path(text).expanduser())
        elif kind == "folder":
            identity = _from_config(Path(text).expanduser() / "config.json")
        else:
            identity = _from_hub(text)
    except Exception:  # a peek only: the real load reports problems properly
        return None
    if identity is not None:
        identity["source"] = text
    return identity


def _from_hub(repo_id: str) -> dict[str, Any] | None:
    cached = cached_hub_weights(repo_id)
    if cached is not None and cached.layout == "original":
        return _from_checkpoint(cached.path)
    config = hub_config_file(repo_id, "DINOv2")
    return _from_config(config) if config is not None else None


def _from_config(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    config = json.loads(path.read_text())
    model_type = config.get("model_type")
    if model_type == "dinov3_vit":
        return dinov3_identity_from_config(config)
    if model_type not in ("dinov2", "dinov2_with_registers"):
        return None
    patch = config.get("patch_size", 14)
    if isinstance(patch, list):
        patch = patch[0]
    registers = int(config.get("num_register_tokens", 0) or 0)
    if model_type == "dinov2":
        registers = 0
    return {
        "family": "dinov2",
        "arch": dinov2_arch_name(int(config["hidden_size"]), int(config["num_hidden_layers"])),
        "feature_dim": int(config["hidden_size"]),
        "patch_size": int(patch),
        "registers": registers,
    }


def _from_checkpoint(path: Path) -> dict[str, Any] | None:
    import torch

    checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    dinov3 = dinov3_identity_from_checkpoint(checkpoint)
    if dinov3 is not None:
        return dinov3
    arch = peek_dinov2_architecture(checkpoint)
    return {
        "family": "dinov2",
        "arch": arch.spec.arch,
        "feature_dim": arch.spec.hidden_size,
        "patch_size": arch.patch_size,
        "registers": arch.registers,
    }
