"""The exact resizing chains of the reference implementation (docs/method.md §1.3, §3, §11.2).

Every interpolation mode here is part of parity: PIL bicubic for the target squash, torch
bicubic without antialias for DINOv2 inputs, torch bilinear for the reference mask and nearest
sampling of that mask on the patch grid.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

__all__ = [
    "area_patch_weights",
    "context_crop_window",
    "image_to_tensor",
    "mask_to_patch_weights",
    "reference_crop",
    "squash_image",
    "to_semantic_input",
]


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """RGB ``uint8`` ``(H, W, 3)`` -> float32 ``(3, H, W)`` in ``[0, 1]``."""
    # x / 255 in float32 is correctly rounded, so it equals the reference's float64 division
    # followed by a cast to float32.
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)


def squash_image(image: np.ndarray, size: int) -> torch.Tensor:
    """The target image squashed to ``size²`` with PIL bicubic (docs/method.md §1.3, §11.2 item 3).

    The aspect ratio is not kept and there is no padding, as in the reference.

    Args:
        image: RGB ``uint8`` ``(H, W, 3)``.
        size: output side (1024 for SAM2).

    Returns:
        float32 ``(3, size, size)`` in ``[0, 1]``.
    """
    pil = Image.fromarray(image)
    if pil.size != (size, size):
        pil = pil.resize((size, size), Image.Resampling.BICUBIC)
    return image_to_tensor(np.array(pil))


def to_semantic_input(squashed: torch.Tensor, size: int) -> torch.Tensor:
    """DINOv2 input of a target: torch bicubic (no antialias) of the squashed image (§1.3).

    Args:
        squashed: ``(3, S, S)`` from :func:`squash_image`.
        size: output side (518).

    Returns:
        ``(1, 3, size, size)`` float32; values may overshoot ``[0, 1]`` slightly, as in the
        reference (no clamping).
    """
    return F.interpolate(
        squashed[None], size=(size, size), mode="bicubic", align_corners=False, antialias=False
    )


def context_crop_window(
    box: tuple[float, float, float, float],
    image_size: tuple[int, int],
    context_ratio: float,
) -> tuple[int, int, int, int]:
    """The square context window around a reference box (docs/method.md §3, step 2).

    The box corners are truncated with ``int()`` first, as the reference does with COCO
    ``(x, y, x + w, y + h)``. The window is then a square of side
    ``max(w, h) * (1 + context_ratio)`` around the box centre, clipped to the image (so it
    can become non-square at the borders).

    Args:
        box: ``XYXY`` pixels.
        image_size: ``(H, W)``.
        context_ratio: 0.2 in the paper's configs.

    Returns:
        ``(x0, y0, x1, y1)`` integer window, ``x1``/``y1`` exclusive.
    """
    height, width = image_size
    x1, y1, x2, y2 = (int(v) for v in box)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    side = max(x2 - x1, y2 - y1) * (1 + context_ratio)
    x0 = max(0, int(cx - side / 2))
    y0 = max(0, int(cy - side / 2))
    x_end = min(width, int(cx + side / 2))
    y_end = min(height, int(cy + side / 2))
    if x_end <= x0 or y_end <= y0:
        raise ValueError(
            f"box {box} gives an empty context crop in a {width}x{height} image; "
            "the box must overlap the image by at least one pixel"
        )
    return x0, y0, x_end, y_end


def reference_crop(
    image: np.ndarray,
    mask: np.ndarray,
    box: tuple[float, float, float, float],
    *,
    context_ratio: float,
    size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop a reference instance and its mask the way ``fill_memory`` does (docs/method.md §3).

    The image is not masked: other objects stay visible in the crop.

    Args:
        image: RGB ``uint8`` ``(H, W, 3)`` at its original size.
        mask: bool ``(H, W)`` instance mask.
        box: ``XYXY`` pixels of the instance.
        context_ratio: enlargement of the square window (0.2).
        size: side of the output (518).

    Returns:
        ``(crop, soft_mask)``: float32 ``(1, 3, size, size)`` from torch bicubic (no
        antialias) and float32 ``(size, size)`` in ``[0, 1]`` from torch bilinear.
    """
    x0, y0, x1, y1 = context_crop_window(box, image.shape[:2], context_ratio)
    crop = image_to_tensor(image[y0:y1, x0:x1])[None]
    crop = F.interpolate(crop, size=(size, size), mode="bicubic", align_corners=False)
    mask_crop = torch.from_numpy(np.ascontiguousarray(mask[y0:y1, x0:x1])).float()[None, None]
    soft = F.interpolate(mask_crop, size=(size, size), mode="bilinear", align_corners=False)
    return crop, soft[0, 0]


def mask_to_patch_weights(soft_mask: torch.Tensor, grid: int) -> torch.Tensor:
    """Soft patch weights: nearest sampling of the soft mask (docs/method.md §3, §11.2 item 4).

    For 518 -> 37 nearest picks pixel ``(14 i, 14 j)``, the top-left pixel of each patch.

    Args:
        soft_mask: ``(S, S)`` float32 in ``[0, 1]``.
        grid: patches per side (37).

    Returns:
        ``(grid * grid,)`` float32 weights in row-major patch order.
    """
    sampled = F.interpolate(soft_mask[None, None], size=(grid, grid), mode="nearest")
    return sampled.reshape(-1)


def area_patch_weights(soft_mask: torch.Tensor, grid: int) -> torch.Tensor:
    """Area-averaged patch weights, used only when nearest sampling misses a thin mask.

    The reference would produce NaN features for such a reference (every sampled weight 0);
    averaging the mask over each patch keeps the instance usable.
    """
    pooled = F.adaptive_avg_pool2d(soft_mask[None, None], (grid, grid))
    return pooled.reshape(-1)
