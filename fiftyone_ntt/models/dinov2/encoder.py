"""DINOv2 patch features (docs/method.md §1.2) over ``transformers`` ``Dinov2Model`` /
``Dinov2WithRegistersModel``: ImageNet normalisation, last layer after the final LayerNorm,
CLS and register tokens dropped, not L2-normalised.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from fiftyone_ntt.models import resolve_device, resolve_precision
from fiftyone_ntt.models.dinov2.conversion import dinov2_arch_name
from fiftyone_ntt.models.imagenet import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["IDENTITY_VERSION", "Dinov2Encoder", "square_patch_size"]

#: Version of the layout of :attr:`Dinov2Encoder.identity` (bump when keys change).
IDENTITY_VERSION = 1


def square_patch_size(patch: int | list[int] | tuple[int, ...], family: str) -> int:
    """The side in pixels of a ViT config's patch (an int, or a square pair)."""
    if isinstance(patch, (list, tuple)):
        if len(set(patch)) != 1:
            raise ValueError(f"non-square {family} patches {patch} are not supported")
        patch = patch[0]
    return int(patch)


class Dinov2Encoder:
    """A :class:`~fiftyone_ntt.models.protocols.PatchEncoder` over a DINOv2 backbone.

    At 518² a 37×37 checkpoint (every released DINOv2) uses its positional embedding as is:
    ``transformers`` only interpolates when the token count or aspect differs, exactly like
    Meta's ``interpolate_pos_encoding`` (§1.2), so no interpolation happens on the paper path.

    Attributes:
        patch_size: 14 for DINOv2.
        feature_dim: channels ``D``.
        registers: register tokens of the backbone (dropped from the output).
        mean, std: per-channel normalisation applied to the ``[0, 1]`` input (ImageNet's).
        device: where :meth:`encode` runs and where its output lives.
        precision: effective precision (``"float32"`` unless half precision on CUDA).
        identity: ``{"family", "arch", "feature_dim", "patch_size", "registers", "source",
            "precision", "identity_version"}``.
        model: the wrapped ``transformers`` module.
    """

    #: ``identity["family"]``, the family's name in messages, and the identity layout.
    FAMILY = "dinov2"
    FAMILY_NAME = "DINOv2"
    IDENTITY_VERSION = IDENTITY_VERSION

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
        """Wrap a loaded backbone.

        Args:
            model: a ``Dinov2Model`` or ``Dinov2WithRegistersModel`` (a subclass says which
                models it takes: :meth:`_registers`).
            source: where the weights came from (hub id or path), recorded in ``identity``.
            device: see :func:`fiftyone_ntt.models.resolve_device`.
            precision: ``"float32"``, or ``"bfloat16"``/``"float16"`` autocast on CUDA.
            arch: name for ``identity`` (default: recognised from the config, :meth:`_arch_name`).
            mean, std: normalisation of the weights' inputs (ImageNet's for DINOv2).
        """
        registers = self._registers(model)
        self.device = resolve_device(device)
        self._autocast = resolve_precision(precision, self.device)
        self.precision = precision if self._autocast is not None else "float32"
        config = model.config
        self.patch_size = square_patch_size(config.patch_size, self.FAMILY_NAME)
        self.feature_dim = int(config.hidden_size)
        self.registers = registers
        self.model = model.to(self.device).eval()
        self.model.requires_grad_(False)
        self.mean, self.std = tuple(mean), tuple(std)
        self._mean = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(self.std, device=self.device).view(1, 3, 1, 1)
        self.identity: dict[str, Any] = {
            "family": self.FAMILY,
            "arch": arch or self._arch_name(config),
            "feature_dim": self.feature_dim,
            "patch_size": self.patch_size,
            "registers": self.registers,
            "source": str(source),
            "precision": self.precision,
            "identity_version": self.IDENTITY_VERSION,
        }

    def _registers(self, model: Any) -> int:
        """The backbone's register tokens; a TypeError for a model of another family."""
        from transformers import Dinov2Model, Dinov2WithRegistersModel

        if not isinstance(model, (Dinov2Model, Dinov2WithRegistersModel)):
            raise TypeError(
                f"model must be a transformers Dinov2Model or Dinov2WithRegistersModel, "
                f"got {type(model).__name__}"
            )
        if isinstance(model, Dinov2WithRegistersModel):
            return int(model.config.num_register_tokens)
        return 0

    def _arch_name(self, config: Any) -> str:
        """Our name for the backbone's size, recognised from its config."""
        return dinov2_arch_name(config.hidden_size, config.num_hidden_layers)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(arch={self.identity['arch']!r}, "
            f"registers={self.registers}, "
            f"device={str(self.device)!r}, precision={self.precision!r})"
        )

    def _autocast_context(self) -> contextlib.AbstractContextManager[Any]:
        if self._autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self._autocast)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """Patch features of a batch of images.

        Args:
            pixels: ``(B, 3, H, W)`` float RGB nominally in ``[0, 1]``, not normalised
                (values slightly outside ``[0, 1]`` from bicubic resizing pass through, §1.3).
                Square ``S × S`` in the pipeline (518² → 37×37); sides that are not multiples
                of the patch size lose their remainder, as in the patch convolution.

        Returns:
            ``(B, H // patch, W // patch, D)`` float32 on :attr:`device`: last-layer tokens
            after the final LayerNorm, CLS and registers dropped, not L2-normalised (§1.2).

        Raises:
            ValueError: wrong rank, channel count, or an image smaller than one patch.
        """
        if not torch.is_tensor(pixels) or pixels.ndim != 4 or pixels.shape[1] != 3:
            shape = tuple(pixels.shape) if torch.is_tensor(pixels) else type(pixels).__name__
            raise ValueError(f"pixels must be a (B, 3, H, W) tensor, got {shape}")
        batch, _, height, width = pixels.shape
        rows, cols = height // self.patch_size, width // self.patch_size
        if rows == 0 or cols == 0:
            raise ValueError(
                f"pixels of {height}×{width} are smaller than one {self.patch_size}-px patch"
            )
        x = pixels.to(device=self.device, dtype=torch.float32)
        # §1.2: ImageNet normalisation of the [0, 1] image happens inside the encoder.
        x = (x - self._mean) / self._std
        with torch.inference_mode(), self._autocast_context():
            hidden = self.model(pixel_values=x).last_hidden_state
        # Token order is [CLS, registers..., patches...] (row-major patches).
        patches = hidden[:, 1 + self.registers :, :]
        if patches.shape[1] != rows * cols:
            raise RuntimeError(
                f"{self.FAMILY_NAME} returned {patches.shape[1]} patch tokens for a "
                f"{rows}×{cols} grid"
            )
        # Copied outside inference mode so callers get an ordinary tensor they may modify.
        return patches.reshape(batch, rows, cols, self.feature_dim).to(torch.float32, copy=True)
