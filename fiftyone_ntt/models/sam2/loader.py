"""Load a SAM 2 / SAM 2.1 image model (``transformers.Sam2Model``) from a hub id, a
``save_pretrained`` folder or Meta's ``sam2*_hiera_*.pt`` (converted by
:mod:`fiftyone_ntt.models.sam2.conversion`). EdgeTAM's ``edgetam.pt`` is loaded by
:mod:`fiftyone_ntt.models.edgetam` (a SAM 2 file with a RepViT trunk; :func:`load_sam2`
points there)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from fiftyone_ntt.models.checkpoints import (
    CheckpointError,
    SourceKind,
    classify_source,
    convert_original_file,
    finish_model,
    from_pretrained_folder,
    instantiate_model,
    local_weights,
)
from fiftyone_ntt.models.sam2.conversion import (
    SAM2_WRAPPERS,
    convert_sam2_state_dict,
    original_proposer_family,
)
from fiftyone_ntt.models.sam2.specs import hiera_arch_name
from fiftyone_ntt.models.state_dict import unwrap_state_dict

__all__ = ["load_sam2"]

logger = logging.getLogger(__name__)


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
        ``weights`` (which files were read, see :func:`local_weights`).

    Raises:
        CheckpointError: a file/folder/repo that is not a usable SAM 2 checkpoint.
        ModelNotAvailableError: a hub id that is neither cached nor downloadable.
        FileNotFoundError: a path that does not exist.
    """
    text = os.fspath(source)
    kind = classify_source(text, "SAM 2")
    path, local_kind, weights = local_weights(text, kind, "SAM 2")
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

    state_dict, arch, skipped = convert_original_file(
        path, "SAM 2", ".pt file", convert_sam2_state_dict, hint=proposer_file_hint
    )
    model = instantiate_model(Sam2Model, arch.to_config(), state_dict, str(path), arch.describe())
    logger.info(
        "Recognised %s in %s (%d video-only tensors ignored)", arch.describe(), path, len(skipped)
    )
    return model, arch.version, arch.spec.arch


def _sam2_from_folder(folder: Path) -> tuple[Any, str, str]:
    """A ``transformers`` SAM 2 folder → ``(Sam2Model, version, arch)``."""
    from transformers import AutoConfig, Sam2Model

    text = str(folder)

    def build(local_files_only: bool) -> tuple[Any, Any]:
        raw = AutoConfig.from_pretrained(text, local_files_only=local_files_only)
        config = _sam2_config_from(raw, text)
        model = Sam2Model.from_pretrained(text, config=config, local_files_only=local_files_only)
        return model, raw

    model, raw = from_pretrained_folder(text, "SAM 2", build)
    backbone = model.config.vision_config.backbone_config
    arch = hiera_arch_name(backbone.hidden_size, backbone.blocks_per_stage)
    version = _sam2_version(raw, text, "folder")
    return finish_model(model.float()), version, arch


def proposer_file_hint(checkpoint: Any) -> str:
    """For a checkpoint that is not a usable SAM 2 file: what it is (EdgeTAM) or what would
    be accepted, as the tail of an error message (empty when it is a SAM 2 file)."""
    try:
        family = original_proposer_family(unwrap_state_dict(checkpoint, SAM2_WRAPPERS, "SAM 2"))
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
