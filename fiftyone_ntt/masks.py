"""Mask and box helpers: tight boxes, class-wise NMS, upsampling, pairwise intersections.

Pure torch, no torchvision: the NMS here follows torchvision's CPU kernel exactly (stable
descending sort, ``area = (x2 - x1) * (y2 - y1)``, suppress when IoU ``>`` threshold) so that
results do not depend on whether torchvision is installed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "batched_nms",
    "masks_to_boxes_inclusive",
    "pairwise_intersections",
    "upsample_masks",
]


def masks_to_boxes_inclusive(masks: torch.Tensor) -> torch.Tensor:
    """Tight boxes of masks with **inclusive** max indices (docs/method.md §5.4, §11.2 item 7).

    A mask occupying columns 3..7 gets ``x1 = 3, x2 = 7``. Empty masks get ``(0, 0, 0, 0)``.

    Args:
        masks: ``(N, H, W)`` bool.

    Returns:
        ``(N, 4)`` float32 ``(x1, y1, x2, y2)``.
    """
    n = masks.shape[0]
    if n == 0:
        return torch.zeros((0, 4), dtype=torch.float32, device=masks.device)
    rows = masks.any(dim=2)  # (N, H)
    cols = masks.any(dim=1)  # (N, W)
    height, width = masks.shape[1:]
    row_idx = torch.arange(height, device=masks.device)
    col_idx = torch.arange(width, device=masks.device)
    big = max(height, width)
    y1 = torch.where(rows, row_idx, big).amin(dim=1)
    y2 = torch.where(rows, row_idx, -1).amax(dim=1)
    x1 = torch.where(cols, col_idx, big).amin(dim=1)
    x2 = torch.where(cols, col_idx, -1).amax(dim=1)
    boxes = torch.stack([x1, y1, x2, y2], dim=1).float()
    empty = ~rows.any(dim=1)
    boxes[empty] = 0.0
    return boxes


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """Class-wise greedy NMS, identical in result to ``torchvision.ops.batched_nms``.

    Args:
        boxes: ``(N, 4)`` float32 ``XYXY``.
        scores: ``(N,)`` ranking scores (the reference uses SAM's predicted IoU, §5).
        classes: ``(N,)`` int64; boxes of different classes never suppress each other.
        iou_threshold: a box is suppressed when its IoU with a kept box is ``>`` this.

    Returns:
        ``(K,)`` int64 indices of kept boxes in descending score order (stable for ties).
    """
    n = boxes.shape[0]
    if n == 0:
        return torch.zeros((0,), dtype=torch.int64, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    boxes = boxes[order].float()
    classes = classes[order]
    x1, y1, x2, y2 = boxes.unbind(dim=1)
    areas = (x2 - x1) * (y2 - y1)
    ix1 = torch.maximum(x1[:, None], x1[None, :])
    iy1 = torch.maximum(y1[:, None], y1[None, :])
    ix2 = torch.minimum(x2[:, None], x2[None, :])
    iy2 = torch.minimum(y2[:, None], y2[None, :])
    inter = (ix2 - ix1).clamp(min=0) * (iy2 - iy1).clamp(min=0)
    iou = inter / (areas[:, None] + areas[None, :] - inter)
    # NaN (two zero-area boxes) is never above the threshold, as in torchvision.
    overlapping = (iou > iou_threshold) & (classes[:, None] == classes[None, :])
    overlapping = overlapping.cpu()
    suppressed = torch.zeros(n, dtype=torch.bool)
    keep: list[int] = []
    for i in range(n):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= overlapping[i]
    kept = order[torch.tensor(keep, dtype=torch.int64, device=order.device)]
    if boxes.numel() > _TORCHVISION_VANILLA_NUMEL.get(boxes.device.type, 20000):
        # torchvision switches to a per-class loop for many boxes and orders its result with
        # a (not necessarily stable) descending sort over kept indices in index order; do
        # the same so that ties in the ranking score come out in the same order.
        by_index = kept.sort().values
        return by_index[scores[by_index].sort(descending=True)[1]]
    return kept


#: Above this many box coordinates torchvision's batched_nms uses its per-class loop.
_TORCHVISION_VANILLA_NUMEL = {"cpu": 4000}


def upsample_masks(
    logits: torch.Tensor, size: tuple[int, int], *, chunk_pixels: int = 64_000_000
) -> torch.Tensor:
    """Full-resolution boolean masks: bilinear from low-res logits, then ``> 0`` (§5).

    Upsampling goes straight from the low-res size to ``size`` (no intermediate 1024 step), as
    in the reference. Work is chunked so that memory stays bounded for large images.

    Args:
        logits: ``(N, h, w)`` float32 mask logits.
        size: ``(H, W)`` output size.
        chunk_pixels: at most this many float32 values are materialised at once.

    Returns:
        ``(N, H, W)`` bool.
    """
    n = logits.shape[0]
    height, width = size
    out = torch.zeros((n, height, width), dtype=torch.bool, device=logits.device)
    per_chunk = max(1, chunk_pixels // max(1, height * width))
    for start in range(0, n, per_chunk):
        part = logits[start : start + per_chunk, None].float()
        # antialias=True as in the reference: it changes results when the original image is
        # smaller than the low-res mask (downsampling), and is plain bilinear otherwise.
        up = F.interpolate(
            part, size=(height, width), mode="bilinear", align_corners=False, antialias=True
        )
        out[start : start + per_chunk] = up[:, 0] > 0
    return out


def pairwise_intersections(masks: torch.Tensor) -> torch.Tensor:
    """Pixel counts of ``M_i & M_j`` for all pairs of masks.

    Only the rows and columns covered by any of the masks are used, which is exact and much
    cheaper than the reference's full-image product when masks are small.

    Args:
        masks: ``(N, H, W)`` bool.

    Returns:
        ``(N, N)`` float64 exact counts.
    """
    n = masks.shape[0]
    if n == 0:
        return torch.zeros((0, 0), dtype=torch.float64, device=masks.device)
    rows = masks.any(dim=(0, 2)).nonzero()
    cols = masks.any(dim=(0, 1)).nonzero()
    if len(rows) == 0:
        return torch.zeros((n, n), dtype=torch.float64, device=masks.device)
    window = masks[:, rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    flat = window.reshape(n, -1)
    # float32 products are exact while counts stay below 2**24 pixels; chunk the pixel axis
    # so that every partial sum does, and accumulate in float64.
    total = torch.zeros((n, n), dtype=torch.float64, device=masks.device)
    step = 1 << 23
    for start in range(0, flat.shape[1], step):
        part = flat[:, start : start + step].float()
        total += (part @ part.T).double()
    return total
