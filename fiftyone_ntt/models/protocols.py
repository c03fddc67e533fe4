"""The two small interfaces the pipeline needs from models.

The core (``memory_bank``, ``segmenter``) reaches models only through these protocols, so the
matching logic can be tested with deterministic fakes and the real models with tiny random
configs. Real implementations: :mod:`fiftyone_ntt.models.dinov2` and
:mod:`fiftyone_ntt.models.sam2`.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

__all__ = ["MaskProposer", "PatchEncoder"]


@runtime_checkable
class PatchEncoder(Protocol):
    """A semantic encoder that turns an image into a grid of patch features (DINOv2).

    Attributes:
        patch_size: pixels per patch side (14 for DINOv2).
        feature_dim: channels ``D`` of a patch feature (1024 for ViT-L).
        device: where :meth:`encode` runs; inputs may live anywhere.
        identity: JSON-serialisable description of the weights and settings, stored in
            memory banks so that a bank is only used with the encoder that built it
            (e.g. ``{"family": "dinov2", "arch": "vit_large", "registers": 0,
            "feature_dim": 1024, "patch_size": 14, "source": "facebook/dinov2-large"}``).
    """

    patch_size: int
    feature_dim: int
    device: torch.device
    identity: dict[str, Any]

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """Patch features of a batch of square images.

        Args:
            pixels: ``(B, 3, S, S)`` float32 RGB, nominally in ``[0, 1]`` and **not**
                normalised (values slightly outside ``[0, 1]`` from bicubic resizing are passed
                through unchanged, as the reference does; §1.3). The encoder applies its own
                normalisation (ImageNet mean/std for DINOv2).

        Returns:
            ``(B, S // patch_size, S // patch_size, D)`` float32 last-layer patch tokens after
            the final LayerNorm, CLS and register tokens dropped, not L2-normalised (§1.2).
        """
        ...


@runtime_checkable
class MaskProposer(Protocol):
    """A promptable segmenter (SAM2) that proposes masks from points and segments boxes.

    Attributes:
        input_size: side of the square image :meth:`embed` takes (1024 for SAM2).
        mask_size: side of the low-resolution mask logits it returns (256 for SAM2).
        device: where it runs.
        identity: JSON-serialisable description of the weights (e.g. ``{"family": "sam2",
            "version": "2.0", "arch": "hiera_large", "source": "facebook/sam2-hiera-large"}``).
    """

    input_size: int
    mask_size: int
    device: torch.device
    identity: dict[str, Any]

    def embed(self, pixels: torch.Tensor) -> Any:
        """Embed one image once, for many prompts.

        Args:
            pixels: ``(3, input_size, input_size)`` float32 RGB in ``[0, 1]``, not normalised.

        Returns:
            An opaque embedding for :meth:`propose` and :meth:`segment_boxes`.
        """
        ...

    def propose(
        self, embedding: Any, points: torch.Tensor, iou_threshold: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One mask per single positive point prompt, filtered by predicted IoU (§5).

        Each point is its own prompt. Of the three multimask outputs (tokens 1..3) the one
        with the highest predicted IoU is kept; proposals with predicted IoU ``<=
        iou_threshold`` are dropped. For SAM2 the image embedding is used **without** the
        no-memory embedding (§1.1, §11.2 item 1).

        Args:
            embedding: from :meth:`embed`.
            points: ``(N, 2)`` float32 ``(x, y)`` in input-image pixels (``0..input_size``).
            iou_threshold: keep proposals whose predicted IoU is strictly greater.

        Returns:
            ``(index, logits, iou)``: ``index`` ``(K,)`` int64 positions into ``points`` in
            increasing order; ``logits`` ``(K, mask_size, mask_size)`` float32 mask logits;
            ``iou`` ``(K,)`` float32 predicted IoU.
        """
        ...

    def segment_boxes(
        self, embedding: Any, boxes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One mask per box prompt, as SAM2's image predictor does with
        ``multimask_output=False`` (used to make masks for box-only references).

        Args:
            embedding: from :meth:`embed`.
            boxes: ``(N, 4)`` float32 ``XYXY`` in input-image pixels.

        Returns:
            ``(logits, iou)``: ``(N, mask_size, mask_size)`` float32 and ``(N,)`` float32.
        """
        ...
