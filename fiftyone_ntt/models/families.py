"""Which model family a source holds, read without loading its weights: DINOv2 or DINOv3 for
the semantic encoder (:func:`encoder_family`), SAM 2 or EdgeTAM for the mask proposer
(:func:`proposer_family`). :func:`fiftyone_ntt.models.load_encoder` and
:func:`~fiftyone_ntt.models.load_proposer` dispatch on them; a folder says it in its
``config.json``, a checkpoint file by its tensor names (never its file name), a hub id by its
cached ``config.json``, else by its name."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

import torch

from fiftyone_ntt.models.checkpoints import (
    CheckpointError,
    classify_source,
    load_checkpoint_file,
)
from fiftyone_ntt.models.dinov3.conversion import (
    WRAPPERS as DINOV3_WRAPPERS,
)
from fiftyone_ntt.models.dinov3.conversion import (
    looks_like_dinov3,
    normalise_dinov3_keys,
)
from fiftyone_ntt.models.hub import cached_repo_files, hub_config_file
from fiftyone_ntt.models.sam2.conversion import SAM2_WRAPPERS, original_proposer_family
from fiftyone_ntt.models.state_dict import unwrap_state_dict

__all__ = [
    "config_model_type",
    "encoder_family",
    "original_proposer_family",
    "proposer_family",
]

#: ``model_type`` of EdgeTAM's transformers configs (image and video models).
_EDGETAM_TYPES = ("edgetam", "edgetam_video")


def config_model_type(folder: Path) -> str | None:
    """``model_type`` of a folder's ``config.json``; None when it has none or is unreadable."""
    try:
        return json.loads((folder / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None


def _hub_model_type(repo_id: str, *, download: bool) -> str | None:
    """``model_type`` of a hub repo's ``config.json``: from the cache, or (``download``) the
    small file alone."""
    cached = cached_repo_files(repo_id)
    if cached is not None and "config.json" in cached[2]:
        return config_model_type(cached[0])
    if not download:
        return None
    config = hub_config_file(repo_id, "semantic encoder")
    return config_model_type(config.parent) if config is not None else None


def encoder_family(source: str | os.PathLike[str]) -> Literal["dinov2", "dinov3"]:
    """Which semantic encoder a source holds, without loading its weights.

    A folder's ``config.json`` says it; a checkpoint file is DINOv3 when its tensors are
    (RoPE, no ``pos_embed``); a hub id by its cached ``config.json``, else by its name
    (``dinov3``/``dinov2`` in it), else by its ``config.json`` alone (a small download).
    Anything unreadable is treated as DINOv2, whose loader reports bad sources.
    """
    text = os.fspath(source)
    try:
        kind = classify_source(text, "semantic encoder")
    except (ValueError, OSError):
        return "dinov2"
    if kind == "folder":
        model_type = config_model_type(Path(text).expanduser())
        return "dinov3" if model_type == "dinov3_vit" else "dinov2"
    if kind == "file":
        try:
            state = torch.load(
                Path(text).expanduser(), map_location="cpu", weights_only=True, mmap=True
            )
            tensors = unwrap_state_dict(state, DINOV3_WRAPPERS, "DINOv3")
            return "dinov3" if looks_like_dinov3(normalise_dinov3_keys(tensors)) else "dinov2"
        except Exception:  # unreadable or not a state dict: the DINOv2 loader reports it
            return "dinov2"
    name = text.lower()
    try:
        model_type = _hub_model_type(text, download="dinov2" not in name and "dinov3" not in name)
    except Exception:  # best effort: decide by name
        model_type = None
    if model_type is not None:
        return "dinov3" if model_type == "dinov3_vit" else "dinov2"
    return "dinov3" if "dinov3" in name else "dinov2"


def _file_family(path: Path) -> str:
    try:
        state = unwrap_state_dict(
            load_checkpoint_file(path, "mask proposer"), SAM2_WRAPPERS, "SAM 2"
        )
    except CheckpointError:
        return "sam2"
    return original_proposer_family(state) or "sam2"


def proposer_family(source: str | os.PathLike[str]) -> str:
    """``"edgetam"`` or ``"sam2"`` for a source (folder config, the cached hub config, else
    ``edgetam`` in a hub id's name; a file by its tensor names, memory-mapped, so whatever
    it is called). Unreadable or foreign files count as SAM 2's: the SAM 2 loader explains."""
    text = os.fspath(source)
    try:
        kind = classify_source(text, "mask proposer")
    except (ValueError, OSError):
        return "sam2"
    if kind == "folder":
        return "edgetam" if config_model_type(Path(text).expanduser()) in _EDGETAM_TYPES else "sam2"
    if kind == "file":
        return _file_family(Path(text).expanduser())
    try:
        cached = cached_repo_files(text)
    except Exception:  # best effort: decide by name
        cached = None
    if cached is not None and "config.json" in cached[2]:
        return "edgetam" if config_model_type(cached[0]) in _EDGETAM_TYPES else "sam2"
    return "edgetam" if "edgetam" in text.lower() else "sam2"
