"""DINOv3 ViT patch features over ``transformers`` ``DINOv3ViTModel``, behind the same
:class:`~fiftyone_ntt.models.protocols.PatchEncoder` protocol as DINOv2.

What is computed is what §1.2 prescribes for DINOv2, with DINOv3's backbone: the image is
normalised with the weights' mean/std (ImageNet for the LVD-1689M web models), the last layer's
tokens after the final LayerNorm are taken, CLS and the 4 register tokens are dropped, and the
patch tokens are not L2-normalised.

Patch 16 and RoPE positions: DINOv3 has no learned positional table, so any multiple of 16
works without interpolation. The pipeline feeds it ``37 × 16 = 592`` px by default (see
:func:`fiftyone_ntt.config.encoder_input_size`), which keeps the paper's 37×37 feature grid.
Loading: :mod:`fiftyone_ntt.models.dinov3.loader`.
"""

from __future__ import annotations

from typing import Any

from fiftyone_ntt.models.dinov2.encoder import Dinov2Encoder
from fiftyone_ntt.models.dinov3.conversion import dinov3_arch_name

__all__ = ["Dinov3Encoder"]

#: Version of the layout of :attr:`Dinov3Encoder.identity` (bump when keys change).
IDENTITY_VERSION = 1


class Dinov3Encoder(Dinov2Encoder):
    """A :class:`~fiftyone_ntt.models.protocols.PatchEncoder` over a ``DINOv3ViTModel``.

    Wrapping and encoding are inherited from
    :class:`~fiftyone_ntt.models.dinov2.encoder.Dinov2Encoder`: the token order
    ``[CLS, registers..., patches...]`` and the final LayerNorm are the same. ``mean`` /
    ``std`` are the weights' normalisation (ImageNet for LVD-1689M; the satellite SAT-493M
    weights use their own, read from the hub's preprocessor config by the loader).

    Attributes:
        patch_size: 16 for every released DINOv3 ViT.
        feature_dim: channels ``D`` (1024 for ViT-L).
        registers: register ("storage") tokens, dropped from the output (4 when released).
        mean, std: per-channel normalisation applied to the ``[0, 1]`` input.
        identity: ``{"family": "dinov3", "arch", "feature_dim", "patch_size", "registers",
            "source", "precision", "identity_version"}``; banks record it.
    """

    FAMILY = "dinov3"
    FAMILY_NAME = "DINOv3"
    IDENTITY_VERSION = IDENTITY_VERSION

    def _registers(self, model: Any) -> int:
        from transformers import DINOv3ViTModel

        if not isinstance(model, DINOv3ViTModel):
            raise TypeError(
                f"model must be a transformers DINOv3ViTModel, got {type(model).__name__}"
            )
        return int(model.config.num_register_tokens or 0)

    def _arch_name(self, config: Any) -> str:
        return dinov3_arch_name(
            config.hidden_size, config.num_hidden_layers, bool(config.use_gated_mlp)
        )
