"""Find and load model weights: hub ids, local folders, and Meta's original checkpoint files.

Three kinds of ``source`` are accepted for both models (``ModelConfig.sam2`` /
``ModelConfig.dinov2``):

* a Hugging Face hub id (``"facebook/sam2-hiera-large"``): weights download into the
  standard HF cache on first use; later runs read the cache without touching the network.
  With ``HF_HUB_OFFLINE=1`` only the cache is read. Repos with ``transformers`` files are
  loaded from those; repos with only Meta's original checkpoint (the SAM 2.0 repos) from
  that file, converted (:mod:`fiftyone_ntt.models.hub`). ``info["weights"]`` records which.
* a local folder written by ``save_pretrained`` (``config.json`` + weights).
* one of Meta's original files: SAM 2 ``sam2_hiera_*.pt`` / ``sam2.1_hiera_*.pt`` (a dict
  with key ``"model"``) or DINOv2 ``dinov2_vit*14*_pretrain.pth`` (a plain state dict),
  converted on the fly by the family's conversion (:mod:`fiftyone_ntt.models.sam2.conversion`,
  :mod:`fiftyone_ntt.models.dinov2.conversion`) (docs/method.md §1.1, §1.2).
  EdgeTAM's ``edgetam.pt`` is loaded by :mod:`fiftyone_ntt.models.edgetam` (a SAM 2 file
  with a RepViT trunk; :func:`~fiftyone_ntt.models.sam2.load_sam2` points there).

Returned models are float32, on the CPU, in eval mode, with gradients off.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import torch

from fiftyone_ntt.models.hub import ModelNotAvailableError, hub_offline, resolve_hub_weights
from fiftyone_ntt.models.state_dict import CheckpointError

__all__ = [
    "CheckpointError",
    "ModelNotAvailableError",
    "SourceKind",
    "classify_source",
    "convert_original_file",
    "finish_model",
    "folder_model",
    "from_pretrained_folder",
    "hub_offline",
    "instantiate_model",
    "load_checkpoint_file",
    "local_weights",
]

SourceKind = Literal["hub", "folder", "file"]

T = TypeVar("T")

_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors", ".pkl")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def classify_source(source: str | os.PathLike[str], what: str) -> SourceKind:
    """Decide whether ``source`` is a hub id, a local folder or a checkpoint file.

    Args:
        source: the string from ``ModelConfig``.
        what: ``"SAM 2"`` or ``"DINOv2"``, for messages.

    Raises:
        FileNotFoundError: it looks like a path (a checkpoint suffix, ``./``, ``/``, ``~``)
            but nothing is there.
        ValueError: empty, or neither an existing path nor a valid hub id.
    """
    text = os.fspath(source).strip() if isinstance(source, (str, os.PathLike)) else ""
    if not text:
        raise ValueError(f"{what} source {source!r} is empty; give a hub id, folder or file")
    path = Path(text).expanduser()
    if path.is_dir():
        return "folder"
    if path.is_file():
        return "file"
    looks_like_path = (
        text.lower().endswith(_CHECKPOINT_SUFFIXES)
        or text.startswith(("/", "./", "../", "~", "\\"))
        or (len(text) > 1 and text[1] == ":")
        or text.count("/") > 1
    )
    if looks_like_path:
        raise FileNotFoundError(
            f"{what} checkpoint {text!r} does not exist (resolved to {path.resolve()}); "
            "check the path, or give a Hugging Face hub id instead"
        )
    if not _HUB_ID.match(text):
        raise ValueError(
            f"{what} source {text!r} is neither an existing file/folder nor a hub id "
            "like 'facebook/sam2-hiera-large'"
        )
    return "hub"


def load_checkpoint_file(path: Path, what: str) -> Any:
    """``torch.load`` a checkpoint safely (``weights_only``), memory-mapped when possible."""
    errors: list[BaseException] = []
    for mmap in (True, False):
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except Exception as error:  # torch raises many types for non-checkpoint files
            errors.append(error)
    raise CheckpointError(
        f"{path} could not be read as a PyTorch {what} checkpoint ({errors[-1]}); expected "
        f"Meta's original file, a Hugging Face folder, or a hub id"
    ) from errors[-1]


def instantiate_model(
    model_cls: type, config: Any, state_dict: dict[str, torch.Tensor], where: str, desc: str
) -> Any:
    """Build ``model_cls(config)`` without random init and load ``state_dict`` strictly."""
    with torch.device("meta"):
        model = model_cls(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{where}: recognised {desc}, but the tensors do not fit that model: "
            f"missing {missing[:6]}{' ...' if len(missing) > 6 else ''}, "
            f"unexpected {unexpected[:6]}{' ...' if len(unexpected) > 6 else ''}"
        )
    wrong = [
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if wrong:
        raise CheckpointError(
            f"{where}: recognised {desc}, but {len(wrong)} tensor shape(s) do not match: "
            + "; ".join(wrong[:6])
        )
    model.load_state_dict(state_dict, strict=True, assign=True)
    return finish_model(model)


def finish_model(model: Any) -> Any:
    model.eval()
    model.requires_grad_(False)
    return model


def from_pretrained_folder(source: str, what: str, build: Callable[[bool], Any]) -> Any:
    """Run ``build(local_files_only=True)`` on a local ``save_pretrained`` folder."""
    try:
        return build(True)
    except OSError as error:
        raise CheckpointError(
            f"{source} is not a loadable {what} folder ({error}); it needs the config.json "
            "and weights written by save_pretrained"
        ) from error


def convert_original_file(
    path: Path,
    what: str,
    original: str,
    convert: Callable[[Any], T],
    hint: str | Callable[[Any], str] = "",
) -> T:
    """``convert`` applied to Meta's original ``what`` checkpoint at ``path`` (the file
    loaders of every family read their files through this).

    Args:
        original: how the original file is called in the message for a bare
            ``.safetensors`` (which has no config), e.g. ``".pth file"``, ``"edgetam.pt"``.
        hint: appended to a conversion error (after the file's path and the error), or a
            function of the loaded checkpoint that returns it.

    Raises:
        CheckpointError: a bare ``.safetensors`` file, an unreadable file, or one
            ``convert`` refuses (the message names the file).
    """
    if path.suffix.lower() == ".safetensors":
        raise CheckpointError(
            f"{path}: a bare .safetensors file has no config; pass the folder that holds it "
            f"together with its config.json, or Meta's original {original}"
        )
    checkpoint = load_checkpoint_file(path, what)
    try:
        return convert(checkpoint)
    except CheckpointError as error:
        extra = hint(checkpoint) if callable(hint) else hint
        raise CheckpointError(f"{path}: {error}{extra}") from None


def folder_model(
    folder: Path, what: str, classes: Mapping[str, Any], example: str, kind: str | None = None
) -> Any:
    """The model of a ``transformers`` ``save_pretrained`` folder whose config's
    ``model_type`` is one of ``classes`` (model type → model class), float32, in eval mode.

    Raises:
        CheckpointError: a folder of another model (the message says which, ``kind`` naming
            the wanted one, and offers ``example`` as a hub id), or one that cannot load.
    """
    # deferred: transformers loads only when this runs
    from transformers import AutoConfig

    text = str(folder)

    def build(local_files_only: bool) -> Any:
        config = AutoConfig.from_pretrained(text, local_files_only=local_files_only)
        model_type = getattr(config, "model_type", None)
        if model_type not in classes:
            raise CheckpointError(
                f"{text!r} is a {model_type!r} model, not {kind or what}; pass a {what} hub "
                f"id (e.g. {example!r}), folder or checkpoint"
            )
        return classes[model_type].from_pretrained(
            text, config=config, local_files_only=local_files_only
        )

    return finish_model(from_pretrained_folder(text, what, build).float())


def local_weights(source: str, kind: SourceKind, what: str) -> tuple[Path, SourceKind, str]:
    """The local file or folder for ``source``: hub ids are resolved (and downloaded when
    needed) by :func:`fiftyone_ntt.models.hub.resolve_hub_weights`.

    Returns:
        ``(path, "file" | "folder", weights tag)``; the tag is ``"file"``, ``"folder"``,
        ``"hub:transformers"`` or ``"hub:original:<file name>"`` (plus ``@<revision>``).
    """
    if kind != "hub":
        return Path(source).expanduser(), kind, kind
    weights = resolve_hub_weights(source, what)
    tag = weights.tag + (f"@{weights.revision}" if weights.revision else "")
    return weights.path, ("file" if weights.layout == "original" else "folder"), tag
