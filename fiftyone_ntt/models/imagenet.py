"""ImageNet statistics, applied to a [0, 1] image by both models (method §1.1, §1.2) and by
the DINOv3 web weights (LVD-1689M)."""

from __future__ import annotations

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
