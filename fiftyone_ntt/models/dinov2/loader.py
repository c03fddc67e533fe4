"""Load a DINOv2 backbone (``Dinov2Model`` / ``Dinov2WithRegistersModel``) from a hub id, a
``save_pretrained`` folder or Meta's ``dinov2_vit*14*_pretrain.pth`` (converted by
:mod:`fiftyone_ntt.models.dinov2.conversion`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from fiftyone_ntt.models.checkpoints import (
    classify_source,
    convert_original_file,
    folder_model,
    instantiate_model,
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
    # deferred: transformers loads only when this runs
    from transformers import Dinov2Model, Dinov2WithRegistersModel

    state_dict, arch, skipped = convert_original_file(
        path, "DINOv2", ".pth file", convert_dinov2_state_dict
    )
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
    # deferred: transformers loads only when this runs
    from transformers import Dinov2Model, Dinov2WithRegistersModel

    classes = {"dinov2": Dinov2Model, "dinov2_with_registers": Dinov2WithRegistersModel}
    return folder_model(folder, "DINOv2", classes, "facebook/dinov2-large")
