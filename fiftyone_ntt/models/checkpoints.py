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
  converted on the fly by :mod:`fiftyone_ntt.models.conversion` (docs/method.md §1.1, §1.2).
  EdgeTAM's ``edgetam.pt`` is loaded by :mod:`fiftyone_ntt.models.edgetam` (a SAM 2 file
  with a RepViT trunk; :func:`load_sam2` points there).

Returned models are float32, on the CPU, in eval mode, with gradients off.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch

from fiftyone_ntt.models.conversion import (
    CheckpointError,
    convert_dinov2_state_dict,
    convert_sam2_state_dict,
    dinov2_arch_name,
    hiera_arch_name,
)

__all__ = [
    "CheckpointError",
    "ModelNotAvailableError",
    "classify_source",
    "hub_offline",
    "load_dinov2",
    "load_sam2",
]

from fiftyone_ntt.models.hub import ModelNotAvailableError, hub_offline, resolve_hub_weights

logger = logging.getLogger(__name__)

SourceKind = Literal["hub", "folder", "file"]

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


def _torch_load(path: Path, what: str) -> Any:
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


def _instantiate(
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
    return _finish(model)


def _finish(model: Any) -> Any:
    model.eval()
    model.requires_grad_(False)
    return model


def _from_pretrained(source: str, what: str, build: Callable[[bool], Any]) -> Any:
    """Run ``build(local_files_only=True)`` on a local ``save_pretrained`` folder."""
    try:
        return build(True)
    except OSError as error:
        raise CheckpointError(
            f"{source} is not a loadable {what} folder ({error}); it needs the config.json "
            "and weights written by save_pretrained"
        ) from error


def _local(source: str, kind: SourceKind, what: str) -> tuple[Path, SourceKind, str]:
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


# --------------------------------------------------------------------------------------------
# SAM 2
# --------------------------------------------------------------------------------------------


def _sam2_config_from(config: Any, source: str) -> Any:
    """A ``Sam2Config`` from a hub/folder config (``sam2`` or the video ``sam2_video``)."""
    from transformers import Sam2Config

    model_type = getattr(config, "model_type", None)
    if model_type == "sam2":
        return config
    if model_type == "sam2_video":
        # The video checkpoints carry the image model's sub-configs unchanged.
        def sub(name: str) -> dict[str, Any]:
            data = getattr(config, name).to_dict()
            for meta_key in ("model_type", "transformers_version", "architectures"):
                data.pop(meta_key, None)
            return data

        return Sam2Config(
            vision_config=sub("vision_config"),
            prompt_encoder_config=sub("prompt_encoder_config"),
            mask_decoder_config=sub("mask_decoder_config"),
        )
    raise CheckpointError(
        f"{source!r} is a {model_type!r} model, not SAM 2; pass a SAM 2 / 2.1 hub id "
        "(e.g. 'facebook/sam2-hiera-large'), folder or checkpoint"
    )


def _sam2_version(config: Any, source: str, kind: SourceKind) -> str:
    """SAM 2.0 vs 2.1 for hub/folder models (config flags, then weight names, then hub id)."""
    if getattr(config, "model_type", None) == "sam2_video":
        flag = getattr(config, "enable_occlusion_spatial_embedding", None)
        if flag is not None:
            return "2.1" if flag else "2.0"
    try:
        from transformers.utils import cached_file

        config_file = cached_file(source, "config.json", local_files_only=True)
        folder = Path(config_file).parent if config_file else None
    except Exception:  # best effort only
        folder = None
    if folder is not None:
        names: set[str] = set()
        try:
            from safetensors import safe_open

            for file in folder.glob("*.safetensors"):
                with safe_open(str(file), framework="pt") as handle:
                    names.update(handle.keys())
        except Exception:
            names = set()
        if any(
            "occlusion_spatial_embedding" in n or "temporal_positional_encoding" in n for n in names
        ):
            return "2.1"
        if any(n.startswith("memory_") for n in names):
            return "2.0"
    if kind == "hub":
        name = source.rsplit("/", 1)[-1].lower()
        if name.startswith("sam2.1"):
            return "2.1"
        if name.startswith("sam2-") or name.startswith("sam2_"):
            return "2.0"
    return "unknown"


def load_sam2(source: str | os.PathLike[str]) -> tuple[Any, dict[str, Any]]:
    """Load a SAM 2 / 2.1 image model (``transformers.Sam2Model``) from any source.

    Args:
        source: hub id, ``save_pretrained`` folder, or Meta's ``sam2*_hiera_*.pt``.

    Returns:
        ``(model, info)`` where ``info`` has ``source`` (as given), ``kind``, ``version``
        (``"2.0"``, ``"2.1"`` or ``"unknown"``), ``arch`` (e.g. ``"hiera_large"``) and
        ``weights`` (which files were read, see :func:`_local`).

    Raises:
        CheckpointError: a file/folder/repo that is not a usable SAM 2 checkpoint.
        ModelNotAvailableError: a hub id that is neither cached nor downloadable.
        FileNotFoundError: a path that does not exist.
    """
    text = os.fspath(source)
    kind = classify_source(text, "SAM 2")
    path, local_kind, weights = _local(text, kind, "SAM 2")
    if local_kind == "file":
        model, version, arch = _sam2_from_file(path)
    else:
        model, version, arch = _sam2_from_folder(path)
        if version == "unknown" and kind == "hub":
            version = _sam2_version(None, text, "hub")
    logger.info("Loaded SAM %s %s from %s %s (%s)", version, arch, kind, text, weights)
    return model, {
        "source": text,
        "kind": kind,
        "version": version,
        "arch": arch,
        "weights": weights,
    }


def _sam2_from_file(path: Path) -> tuple[Any, str, str]:
    """Meta's original SAM 2 checkpoint → ``(Sam2Model, version, arch)``."""
    from transformers import Sam2Model

    if path.suffix.lower() == ".safetensors":
        raise CheckpointError(
            f"{path}: a bare .safetensors file has no config; pass the folder that holds "
            "it together with its config.json, or Meta's original .pt file"
        )
    checkpoint = _torch_load(path, "SAM 2")
    try:
        state_dict, arch, skipped = convert_sam2_state_dict(checkpoint)
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}{_other_proposer_hint(checkpoint)}") from None
    model = _instantiate(Sam2Model, arch.to_config(), state_dict, str(path), arch.describe())
    logger.info(
        "Recognised %s in %s (%d video-only tensors ignored)", arch.describe(), path, len(skipped)
    )
    return model, arch.version, arch.spec.arch


def _other_proposer_hint(checkpoint: Any) -> str:
    """For a file that is not SAM 2: say what it is (EdgeTAM) or what would be accepted."""
    from fiftyone_ntt.models.conversion_specs import _unwrap
    from fiftyone_ntt.models.edgetam_conversion import original_proposer_family

    try:
        family = original_proposer_family(_unwrap(checkpoint, ("model", "state_dict"), "SAM 2"))
    except CheckpointError:
        family = None
    if family == "edgetam":
        return (
            "; it is Meta's EdgeTAM checkpoint (a RepViT trunk): load it with load_proposer "
            "or fiftyone_ntt.models.edgetam.load_edgetam"
        )
    if family == "sam2":
        return ""
    return (
        "; pass Meta's sam2*_hiera_*.pt / sam2.1_hiera_*.pt or EdgeTAM's edgetam.pt, a "
        "save_pretrained folder, or a hub id"
    )


def _sam2_from_folder(folder: Path) -> tuple[Any, str, str]:
    """A ``transformers`` SAM 2 folder → ``(Sam2Model, version, arch)``."""
    from transformers import AutoConfig, Sam2Model

    text = str(folder)

    def build(local_files_only: bool) -> tuple[Any, Any]:
        raw = AutoConfig.from_pretrained(text, local_files_only=local_files_only)
        config = _sam2_config_from(raw, text)
        model = Sam2Model.from_pretrained(text, config=config, local_files_only=local_files_only)
        return model, raw

    model, raw = _from_pretrained(text, "SAM 2", build)
    backbone = model.config.vision_config.backbone_config
    arch = hiera_arch_name(backbone.hidden_size, backbone.blocks_per_stage)
    version = _sam2_version(raw, text, "folder")
    return _finish(model.float()), version, arch


# --------------------------------------------------------------------------------------------
# DINOv2
# --------------------------------------------------------------------------------------------


def load_dinov2(source: str | os.PathLike[str]) -> tuple[Any, dict[str, Any]]:
    """Load a DINOv2 backbone (``Dinov2Model`` or ``Dinov2WithRegistersModel``).

    Args:
        source: hub id, ``save_pretrained`` folder, or Meta's ``dinov2_vit*14*_pretrain.pth``.

    Returns:
        ``(model, info)`` where ``info`` has ``source``, ``kind``, ``arch``, ``registers``
        and ``weights`` (which files were read, see :func:`_local`).

    Raises:
        CheckpointError: a file/folder/repo that is not a usable DINOv2 checkpoint.
        ModelNotAvailableError: a hub id that is neither cached nor downloadable.
        FileNotFoundError: a path that does not exist.
    """
    text = os.fspath(source)
    kind = classify_source(text, "DINOv2")
    path, local_kind, weights = _local(text, kind, "DINOv2")
    if local_kind == "file":
        model = _dinov2_from_file(path)
    else:
        model = _dinov2_from_folder(path)
    config = model.config
    registers = int(getattr(config, "num_register_tokens", 0) or 0)
    arch = dinov2_arch_name(config.hidden_size, config.num_hidden_layers)
    logger.info(
        "Loaded DINOv2 %s (%d registers) from %s %s (%s)", arch, registers, kind, text, weights
    )
    return model, {
        "source": text,
        "kind": kind,
        "arch": arch,
        "registers": registers,
        "weights": weights,
    }


def _dinov2_from_file(path: Path) -> Any:
    """Meta's original DINOv2 checkpoint → a ``transformers`` DINOv2 model."""
    from transformers import Dinov2Model, Dinov2WithRegistersModel

    if path.suffix.lower() == ".safetensors":
        raise CheckpointError(
            f"{path}: a bare .safetensors file has no config; pass the folder that holds "
            "it together with its config.json, or Meta's original .pth file"
        )
    try:
        state_dict, arch, skipped = convert_dinov2_state_dict(_torch_load(path, "DINOv2"))
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None
    cls = Dinov2WithRegistersModel if arch.registers else Dinov2Model
    model = _instantiate(cls, arch.to_config(), state_dict, str(path), arch.describe())
    logger.info(
        "Recognised %s in %s%s",
        arch.describe(),
        path,
        f" ({len(skipped)} training-head tensors ignored)" if skipped else "",
    )
    return model


def _dinov2_from_folder(folder: Path) -> Any:
    """A ``transformers`` DINOv2 folder → the model."""
    from transformers import AutoConfig, Dinov2Model, Dinov2WithRegistersModel

    text = str(folder)

    def build(local_files_only: bool) -> Any:
        config = AutoConfig.from_pretrained(text, local_files_only=local_files_only)
        model_type = getattr(config, "model_type", None)
        if model_type == "dinov2":
            cls = Dinov2Model
        elif model_type == "dinov2_with_registers":
            cls = Dinov2WithRegistersModel
        else:
            raise CheckpointError(
                f"{text!r} is a {model_type!r} model, not DINOv2; pass a DINOv2 hub id "
                "(e.g. 'facebook/dinov2-large'), folder or checkpoint"
            )
        return cls.from_pretrained(text, config=config, local_files_only=local_files_only)

    return _finish(_from_pretrained(text, "DINOv2", build).float())
