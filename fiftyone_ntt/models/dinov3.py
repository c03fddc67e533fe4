"""DINOv3 ViT patch features over ``transformers`` ``DINOv3ViTModel``, behind the same
:class:`~fiftyone_ntt.models.protocols.PatchEncoder` protocol as DINOv2.

What is computed is what §1.2 prescribes for DINOv2, with DINOv3's backbone: the image is
normalised with the weights' mean/std (ImageNet for the LVD-1689M web models), the last layer's
tokens after the final LayerNorm are taken, CLS and the 4 register tokens are dropped, and the
patch tokens are not L2-normalised.

Patch 16 and RoPE positions: DINOv3 has no learned positional table, so any multiple of 16
works without interpolation. The pipeline feeds it ``37 × 16 = 592`` px by default (see
:func:`fiftyone_ntt.config.encoder_input_size`), which keeps the paper's 37×37 feature grid.

Sources (:func:`load_dinov3`): a hub id (``"facebook/dinov3-vitl16-pretrain-lvd1689m"``; the
official repositories are gated: accept the licence on the hub and log in once), a local
``save_pretrained`` folder, or Meta's original ``dinov3_vit*16*_pretrain_*.pth``
(:mod:`fiftyone_ntt.models.dinov3_conversion`).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Literal

import torch

from fiftyone_ntt.models.dinov2 import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Dinov2Encoder,
    square_patch_size,
)
from fiftyone_ntt.models.dinov3_conversion import (
    convert_dinov3_state_dict,
    dinov3_arch_name,
    looks_like_dinov3,
)

__all__ = ["Dinov3Encoder", "encoder_family", "load_dinov3", "load_dinov3_encoder"]

logger = logging.getLogger(__name__)

#: Version of the layout of :attr:`Dinov3Encoder.identity` (bump when keys change).
IDENTITY_VERSION = 1


class Dinov3Encoder(Dinov2Encoder):
    """A :class:`~fiftyone_ntt.models.protocols.PatchEncoder` over a ``DINOv3ViTModel``.

    Encoding is inherited from :class:`~fiftyone_ntt.models.dinov2.Dinov2Encoder`: the token
    order ``[CLS, registers..., patches...]`` and the final LayerNorm are the same.

    Attributes:
        patch_size: 16 for every released DINOv3 ViT.
        feature_dim: channels ``D`` (1024 for ViT-L).
        registers: register ("storage") tokens, dropped from the output (4 when released).
        mean, std: per-channel normalisation applied to the ``[0, 1]`` input.
        identity: ``{"family": "dinov3", "arch", "feature_dim", "patch_size", "registers",
            "source", "precision", "identity_version"}``; banks record it.
    """

    def __init__(
        self,
        model: Any,
        *,
        source: str,
        device: str | torch.device = "cpu",
        precision: str = "float32",
        arch: str | None = None,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        """Wrap a loaded ``DINOv3ViTModel``.

        Args:
            model: the backbone.
            source: where the weights came from (hub id or path), recorded in ``identity``.
            device: see :func:`fiftyone_ntt.models.resolve_device`.
            precision: ``"float32"``, or ``"bfloat16"``/``"float16"`` autocast on CUDA.
            arch: name for ``identity`` (default: recognised from width/depth/MLP).
            mean, std: normalisation of the weights (ImageNet for LVD-1689M; the satellite
                SAT-493M weights use their own, read from the hub's preprocessor config).
        """
        from transformers import DINOv3ViTModel

        from fiftyone_ntt.models import resolve_device, resolve_precision

        if not isinstance(model, DINOv3ViTModel):
            raise TypeError(
                f"model must be a transformers DINOv3ViTModel, got {type(model).__name__}"
            )
        self.device = resolve_device(device)
        self._autocast = resolve_precision(precision, self.device)
        self.precision = precision if self._autocast is not None else "float32"
        config = model.config
        self.patch_size = square_patch_size(config.patch_size, "DINOv3")
        self.feature_dim = int(config.hidden_size)
        self.registers = int(config.num_register_tokens or 0)
        self.model = model.to(self.device).eval()
        self.model.requires_grad_(False)
        self.mean, self.std = tuple(mean), tuple(std)
        self._mean = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(self.std, device=self.device).view(1, 3, 1, 1)
        self.identity: dict[str, Any] = {
            "family": "dinov3",
            "arch": arch
            or dinov3_arch_name(
                config.hidden_size, config.num_hidden_layers, bool(config.use_gated_mlp)
            ),
            "feature_dim": self.feature_dim,
            "patch_size": self.patch_size,
            "registers": self.registers,
            "source": str(source),
            "precision": self.precision,
            "identity_version": IDENTITY_VERSION,
        }

    def __repr__(self) -> str:
        return (
            f"Dinov3Encoder(arch={self.identity['arch']!r}, registers={self.registers}, "
            f"device={str(self.device)!r}, precision={self.precision!r})"
        )


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _config_model_type(folder: Path) -> str | None:
    try:
        return json.loads((folder / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None


def _hub_model_type(repo_id: str, *, download: bool) -> str | None:
    """``model_type`` of a hub repo's ``config.json``: from the cache, or (``download``) the
    small file alone."""
    from fiftyone_ntt.models.hub import cached_repo_files, hub_config_file

    cached = cached_repo_files(repo_id)
    if cached is not None and "config.json" in cached[2]:
        return _config_model_type(cached[0])
    if not download:
        return None
    config = hub_config_file(repo_id, "semantic encoder")
    return _config_model_type(config.parent) if config is not None else None


def encoder_family(source: str | os.PathLike[str]) -> Literal["dinov2", "dinov3"]:
    """Which semantic encoder a source holds, without loading its weights.

    A folder's ``config.json`` says it; a checkpoint file is DINOv3 when its tensors are
    (RoPE, no ``pos_embed``); a hub id by its cached ``config.json``, else by its name
    (``dinov3``/``dinov2`` in it), else by its ``config.json`` alone (a small download).
    Anything unreadable is treated as DINOv2, whose loader reports bad sources.
    """
    from fiftyone_ntt.models.checkpoints import classify_source

    text = os.fspath(source)
    try:
        kind = classify_source(text, "semantic encoder")
    except (ValueError, OSError):
        return "dinov2"
    if kind == "folder":
        model_type = _config_model_type(Path(text).expanduser())
        return "dinov3" if model_type == "dinov3_vit" else "dinov2"
    if kind == "file":
        from fiftyone_ntt.models.dinov3_conversion import _normalise_keys, _unwrap

        try:
            state = torch.load(
                Path(text).expanduser(), map_location="cpu", weights_only=True, mmap=True
            )
            return "dinov3" if looks_like_dinov3(_normalise_keys(_unwrap(state))) else "dinov2"
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
    from fiftyone_ntt.models.checkpoints import _local, classify_source

    text = os.fspath(source)
    kind = classify_source(text, "DINOv3")
    path, local_kind, weights = _local(text, kind, "DINOv3")
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
    from transformers import DINOv3ViTModel

    from fiftyone_ntt.models.checkpoints import CheckpointError, _instantiate, _torch_load

    if path.suffix.lower() == ".safetensors":
        raise CheckpointError(
            f"{path}: a bare .safetensors file has no config; pass the folder that holds "
            "it together with its config.json, or Meta's original .pth file"
        )
    try:
        state_dict, arch, skipped = convert_dinov3_state_dict(_torch_load(path, "DINOv3"))
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None
    model = _instantiate(DINOv3ViTModel, arch.to_config(), state_dict, str(path), arch.describe())
    _materialise_rope(model)
    logger.info("Recognised %s in %s (%d tensors skipped)", arch.describe(), path, len(skipped))
    return model


def _dinov3_from_folder(folder: Path) -> Any:
    """A ``transformers`` DINOv3 ViT folder → the model."""
    from transformers import AutoConfig, DINOv3ViTModel

    from fiftyone_ntt.models.checkpoints import CheckpointError, _finish, _from_pretrained

    text = str(folder)

    def build(local_files_only: bool) -> Any:
        config = AutoConfig.from_pretrained(text, local_files_only=local_files_only)
        model_type = getattr(config, "model_type", None)
        if model_type != "dinov3_vit":
            raise CheckpointError(
                f"{text!r} is a {model_type!r} model, not a DINOv3 ViT; pass a DINOv3 hub id "
                "(e.g. 'facebook/dinov3-vitl16-pretrain-lvd1689m'), folder or checkpoint"
            )
        return DINOv3ViTModel.from_pretrained(
            text, config=config, local_files_only=local_files_only
        )

    return _finish(_from_pretrained(text, "DINOv3", build).float())


def load_dinov3_encoder(
    source: str | os.PathLike[str],
    *,
    device: str | torch.device = "auto",
    precision: str = "float32",
) -> Dinov3Encoder:
    """:func:`load_dinov3` wrapped as a :class:`Dinov3Encoder`."""
    from fiftyone_ntt.models import resolve_device, resolve_precision

    resolved = resolve_device(device)
    resolve_precision(precision, resolved)  # validate before the (slow) load
    model, info = load_dinov3(source)
    encoder = Dinov3Encoder(
        model,
        source=info["source"],
        device=resolved,
        precision=precision,
        arch=info["arch"],
        mean=info["mean"],
        std=info["std"],
    )
    encoder.identity["weights"] = info["weights"]  # not among the keys a bank must match
    return encoder
