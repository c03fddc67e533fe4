"""Deterministic fake models whose outputs are known by construction.

They implement :class:`~fiftyone_ntt.models.protocols.PatchEncoder` and
:class:`~fiftyone_ntt.models.protocols.MaskProposer` so the matching logic can be tested
without any network weights: images are painted with flat colours from a palette, the fake
encoder's patch feature is the histogram of palette colours in the patch, and the fake proposer
returns the flat-colour region under each prompt point.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["PALETTE", "ColorEncoder", "ColorPropagator", "RegionProposer", "paint"]

#: Flat colours used by the fakes; index 0 is the background.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (128, 128, 128),  # 0 background grey
    (220, 30, 30),  # 1 red
    (30, 180, 30),  # 2 green
    (30, 30, 220),  # 3 blue
    (230, 200, 30),  # 4 yellow
    (200, 30, 200),  # 5 magenta
)


def _palette_index(pixels: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` [0, 1] -> ``(B, H, W)`` index of the nearest palette colour."""
    palette = torch.tensor(PALETTE, dtype=torch.float32, device=pixels.device) / 255.0
    diff = pixels[:, None] - palette[None, :, :, None, None]  # (B, P, 3, H, W)
    return diff.pow(2).sum(dim=2).argmin(dim=1)


def paint(
    size: tuple[int, int], shapes: Sequence[tuple[int, tuple[int, int, int, int]]]
) -> np.ndarray:
    """An RGB uint8 image of flat rectangles.

    Args:
        size: ``(H, W)``.
        shapes: ``(palette_index, (x1, y1, x2, y2))`` rectangles painted in order.
    """
    height, width = size
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = PALETTE[0]
    for color, (x1, y1, x2, y2) in shapes:
        image[y1:y2, x1:x2] = PALETTE[color]
    return image


class ColorEncoder:
    """Patch feature = fraction of each palette colour in the patch, plus ``bias``.

    ``bias`` is added to every channel so that features are never all-zero.
    """

    def __init__(self, patch_size: int = 14, bias: float = 0.0) -> None:
        self.patch_size = patch_size
        self.feature_dim = len(PALETTE)
        self.bias = bias
        self.device = torch.device("cpu")
        self.identity: dict[str, Any] = {
            "family": "fake-color",
            "arch": "histogram",
            "feature_dim": self.feature_dim,
            "patch_size": patch_size,
            "registers": 0,
            "source": "fiftyone_ntt.testing.ColorEncoder",
        }
        self.calls = 0

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        index = _palette_index(pixels.float())
        onehot = F.one_hot(index, self.feature_dim).permute(0, 3, 1, 2).float()
        pooled = F.avg_pool2d(onehot, self.patch_size)  # (B, D, g, g)
        return pooled.permute(0, 2, 3, 1).contiguous() + self.bias


class RegionProposer:
    """Proposes the flat-colour region under each prompt point.

    Each connected region of one palette colour (at the 256 x 256 mask resolution) is a
    proposal. Its predicted IoU is ``iou_by_color[color]`` (default 0.9 for objects, 0.2 for
    the background, which the 0.4 filter then drops). Alternatively ``regions`` gives the
    proposals explicitly: a point gets the first region (``(mask, iou)``, mask bool 256 x 256)
    that contains it, and the background otherwise.
    """

    def __init__(
        self,
        iou_by_color: dict[int, float] | None = None,
        regions: Sequence[tuple[np.ndarray, float]] | None = None,
        background_iou: float = 0.2,
    ) -> None:
        self.input_size = 1024
        self.mask_size = 256
        self.device = torch.device("cpu")
        self.identity: dict[str, Any] = {"family": "fake-region", "source": "testing"}
        self.iou_by_color = dict(iou_by_color or {})
        self.regions = list(regions) if regions is not None else None
        self.background_iou = background_iou

    def embed(self, pixels: torch.Tensor) -> dict[str, Any]:
        small = F.interpolate(pixels[None].float(), size=(self.mask_size,) * 2, mode="nearest")
        colors = _palette_index(small)[0].numpy()
        if self.regions is not None:
            regions = [(np.asarray(m, dtype=bool), float(iou)) for m, iou in self.regions]
        else:
            from scipy import ndimage

            regions = []
            for color in np.unique(colors).tolist():
                labels, count = ndimage.label(colors == color)
                default = self.background_iou if color == 0 else 0.9
                iou = self.iou_by_color.get(color, default)
                regions += [(labels == k, iou) for k in range(1, count + 1)]
        return {"regions": regions, "colors": colors}

    def _region_at(self, embedding: dict[str, Any], x: float, y: float) -> tuple[np.ndarray, float]:
        scale = self.mask_size / self.input_size
        col = min(self.mask_size - 1, int(x * scale))
        row = min(self.mask_size - 1, int(y * scale))
        for mask, iou in embedding["regions"]:
            if mask[row, col]:
                return mask, iou
        background = np.zeros((self.mask_size,) * 2, dtype=bool)
        return background, self.background_iou

    def propose(
        self, embedding: dict[str, Any], points: torch.Tensor, iou_threshold: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        index, logits, ious = [], [], []
        for i, (x, y) in enumerate(points.tolist()):
            mask, iou = self._region_at(embedding, x, y)
            if iou > iou_threshold:
                index.append(i)
                logits.append(np.where(mask, 4.0, -4.0).astype(np.float32))
                ious.append(iou)
        if not index:
            empty = torch.zeros((0, self.mask_size, self.mask_size))
            return torch.zeros(0, dtype=torch.int64), empty, torch.zeros(0)
        return (
            torch.tensor(index, dtype=torch.int64),
            torch.from_numpy(np.stack(logits)),
            torch.tensor(ious, dtype=torch.float32),
        )

    def segment_boxes(
        self, embedding: dict[str, Any], boxes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Non-background cells inside each box."""
        scale = self.mask_size / self.input_size
        colors = embedding["colors"]
        out = []
        for x1, y1, x2, y2 in boxes.tolist():
            mask = np.zeros_like(colors, dtype=bool)
            r1, r2 = int(y1 * scale), int(np.ceil(y2 * scale))
            c1, c2 = int(x1 * scale), int(np.ceil(x2 * scale))
            mask[r1:r2, c1:c2] = colors[r1:r2, c1:c2] != 0
            out.append(np.where(mask, 4.0, -4.0).astype(np.float32))
        return torch.from_numpy(np.stack(out)), torch.full((len(out),), 0.9)


class ColorPropagator:
    """A deterministic fake :class:`~fiftyone_ntt.tracking.protocol.Propagator`: each object
    keeps the palette colour under its mask, and on the next frame becomes the connected region
    of that colour overlapping its previous mask most (empty when none overlaps: lost).

    Attributes:
        max_objects: the cap (``seed`` refuses more).
        sessions: videos started; ``seeds`` and ``steps``: calls, for tests.
    """

    def __init__(self, max_objects: int = 16) -> None:
        self.max_objects = max_objects
        self.identity: dict[str, Any] = {"family": "fake-color-propagator", "source": "testing"}
        self.sessions = 0
        self.seeds = 0
        self.steps = 0
        self._objects: dict[int, tuple[int, np.ndarray]] = {}

    def start_video(self) -> None:
        self.sessions += 1
        self._objects = {}

    def seed(self, image: np.ndarray, masks: Mapping[int, np.ndarray]) -> None:
        if len(masks) > self.max_objects:
            raise ValueError(f"{len(masks)} objects > max_objects={self.max_objects}")
        self.seeds += 1
        colors = _image_palette_index(image)
        self._objects = {}
        for track_id, mask in masks.items():
            mask = np.asarray(mask, dtype=bool)
            if mask.any():
                color = int(np.bincount(colors[mask], minlength=len(PALETTE)).argmax())
                self._objects[int(track_id)] = (color, mask)

    def propagate(self, image: np.ndarray) -> dict[int, np.ndarray]:
        from scipy import ndimage

        self.steps += 1
        colors = _image_palette_index(image)
        out: dict[int, np.ndarray] = {}
        for track_id, (color, previous) in self._objects.items():
            labels, _ = ndimage.label(colors == color)
            overlap = np.bincount(labels[previous], minlength=labels.max() + 1)
            overlap[0] = 0
            mask = labels == overlap.argmax() if overlap.max() > 0 else np.zeros_like(previous)
            out[track_id] = mask
            if mask.any():
                self._objects[track_id] = (color, mask)
        return out

    def end_video(self) -> None:
        self._objects = {}


def _image_palette_index(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` index of the nearest palette colour of an RGB uint8 image."""
    pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255
    return _palette_index(pixels)[0].numpy()
