"""Load a DINOv3 ViT (``transformers.DINOv3ViTModel``) from a hub id
(``"facebook/dinov3-vitl16-pretrain-lvd1689m"``; the official repositories are gated: accept
the licence on the hub and log in once), a local ``save_pretrained`` folder, or Meta's original
``dinov3_vit*16*_pretrain_*.pth`` (converted by :mod:`fiftyone_ntt.models.dinov3.conversion`),
and wrap it as a :class:`~fiftyone_ntt.models.dinov3.encoder.Dinov3Encoder`."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from fiftyone_ntt.models import load_adapter
from fiftyone_ntt.models.checkpoints import (
    classify_source,
    convert_original_file,
    folder_model,
    instantiate_model,
    local_weights,
)
from fiftyone_ntt.models.dinov3.conversion import convert_dinov3_state_dict, dinov3_arch_name
from fiftyone_ntt.models.dinov3.encoder import Dinov3Encoder
from fiftyone_ntt.models.imagenet import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["load_dinov3", "load_dinov3_encoder"]

logger = logging.getLogger(__name__)


def _normalisation(folder: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean/std from a folder's ``preprocessor_config.json`` when it has one (the satellite
    SAT-493M weights use their own); ImageNet's otherwise (the LVD-1689M web weights)."""
    try:
        file = Path(folder) / "preprocessor_config.json"
        if file.is_file():
            data = json.loads(file.read_text())
            mean, std = data.get("image_mean"), data.get("image_std")
            if isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std) == 3:
                return tuple(float(v) for v in mean), tuple(float(v) for v in std)
    except (OSError, ValueError, TypeError):  # best effort: the LVD-1689M default below
        pass
    return IMAGENET_MEAN, IMAGENET_STD


def _materialise_rope(model: Any) -> None:
    """Compute the RoPE frequencies, a non-persistent buffer left on the meta device when
    the model is built without random init (Meta's ``periods`` are its reciprocals)."""
    config = model.config
    head_dim = config.hidden_size // config.num_attention_heads
    exponents = torch.arange(0, 1, 4 / head_dim, dtype=torch.float32)
    model.rope_embeddings.inv_freq = 1 / config.rope_theta**exponents
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"DINOv3 tensors left uninitialised after loading: {left[:5]}")


def load_dinov3(source: str | os.PathLike[str]) -> tuple[Any, dict[str, Any]]:
    """Load a DINOv3 ViT (``transformers.DINOv3ViTModel``) from any source.

    Args:
        source: hub id, ``save_pretrained`` folder, or Meta's ``dinov3_vit*16*.pth``.

    Returns:
        ``(model, info)``; ``info`` has ``source``, ``kind``, ``arch``, ``registers``,
        ``mean``, ``std`` and ``weights`` (which files were read).

    Raises:
        CheckpointError: a file/folder that is not a usable DINOv3 ViT checkpoint.
        ModelNotAvailableError: a hub id that is neither cached nor downloadable (the
            official repos are gated: accept the licence and log in first).
        FileNotFoundError: a path that does not exist.
    """

    text = os.fspath(source)
    kind = classify_source(text, "DINOv3")
    path, local_kind, weights = local_weights(text, kind, "DINOv3")
    if local_kind == "file":
        model = _dinov3_from_file(path)
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    else:
        model = _dinov3_from_folder(path)
        mean, std = _normalisation(str(path))
    config = model.config
    arch = dinov3_arch_name(
        config.hidden_size, config.num_hidden_layers, bool(config.use_gated_mlp)
    )
    logger.info("Loaded DINOv3 %s from %s %s (%s)", arch, kind, text, weights)
    return model, {
        "source": text,
        "kind": kind,
        "arch": arch,
        "registers": int(config.num_register_tokens or 0),
        "mean": mean,
        "std": std,
        "weights": weights,
    }


def _dinov3_from_file(path: Path) -> Any:
    """Meta's original DINOv3 ViT checkpoint → ``DINOv3ViTModel``."""
    # deferred: transformers loads only when this runs
    from transformers import DINOv3ViTModel

    state_dict, arch, skipped = convert_original_file(
        path, "DINOv3", ".pth file", convert_dinov3_state_dict
    )
    model = instantiate_model(
        DINOv3ViTModel, arch.to_config(), state_dict, str(path), arch.describe()
    )
    _materialise_rope(model)
    logger.info("Recognised %s in %s (%d tensors skipped)", arch.describe(), path, len(skipped))
    return model


def _dinov3_from_folder(folder: Path) -> Any:
    """A ``transformers`` DINOv3 ViT folder → the model."""
    # deferred: transformers loads only when this runs
    from transformers import DINOv3ViTModel

    return folder_model(
        folder,
        "DINOv3",
        {"dinov3_vit": DINOv3ViTModel},
        "facebook/dinov3-vitl16-pretrain-lvd1689m",
        kind="a DINOv3 ViT",
    )


def load_dinov3_encoder(
    source: str | os.PathLike[str],
    *,
    device: str | torch.device = "auto",
    precision: str = "float32",
) -> Dinov3Encoder:
    """:func:`load_dinov3` wrapped as a :class:`Dinov3Encoder`."""
    return load_adapter(
        load_dinov3,
        lambda model, info, resolved: Dinov3Encoder(
            model,
            source=info["source"],
            device=resolved,
            precision=precision,
            arch=info["arch"],
            mean=info["mean"],
            std=info["std"],
        ),
        source,
        device,
        precision,
    )
