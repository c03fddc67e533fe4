"""Load a DINOv2 backbone (``Dinov2Model`` / ``Dinov2WithRegistersModel``) from a hub id, a
``save_pretrained`` folder or Meta's ``dinov2_vit*14*_pretrain.pth`` (converted by
:mod:`fiftyone_ntt.models.dinov2.conversion`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from fiftyone_ntt.models.checkpoints import (
    CheckpointError,
    classify_source,
    finish_model,
    from_pretrained_folder,
    instantiate_model,
    load_checkpoint_file,
    local_weights,
)
from fiftyone_ntt.models.dinov2.conversion import convert_dinov2_state_dict, dinov2_arch_name

__all__ = ["load_dinov2"]

logger = logging.getLogger(__name__)


def load_dinov2(source: str | os.PathLike[str]) -> tuple[Any, dict[str, Any]]:
    """Load a DINOv2 backbone (``Dinov2Model`` or ``Dinov2WithRegistersModel``).

    Args:
        source: hub id, ``save_pretrained`` folder, or Meta's ``dinov2_vit*14*_pretrain.pth``.

    Returns:
        ``(model, info)`` where ``info`` has ``source``, ``kind``, ``arch``, ``registers``
        and ``weights`` (which files were read, see :func:`local_weights`).

    Raises:
        CheckpointError: a file/folder/repo that is not a usable DINOv2 checkpoint.
        ModelNotAvailableError: a hub id that is neither cached nor downloadable.
        FileNotFoundError: a path that does not exist.
    """
    text = os.fspath(source)
    kind = classify_source(text, "DINOv2")
    path, local_kind, weights = local_weights(text, kind, "DINOv2")
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
        state_dict, arch, skipped = convert_dinov2_state_dict(load_checkpoint_file(path, "DINOv2"))
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None
    cls = Dinov2WithRegistersModel if arch.registers else Dinov2Model
    model = instantiate_model(cls, arch.to_config(), state_dict, str(path), arch.describe())
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

    return finish_model(from_pretrained_folder(text, "DINOv2", build).float())
