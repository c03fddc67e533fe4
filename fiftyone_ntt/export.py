"""Side-by-side pictures of ground truth and predictions, for reports and papers.

The layout follows the research code's visualisation (docs/method.md §8): the original image twice,
ground truth on the left, predictions on the right, separated by a 10-px white band. Each
instance gets its mask contour (thickness ``max(2, 0.003 W)``), its box (thickness
``max(2, 0.004 W)``) and a filled tag above the box with the class name, plus ``=<score·100>``
for predictions; predictions at or below ``threshold`` are not drawn. Colours come from a
fixed palette indexed by the label's position in ``labels``.

Only numpy and PIL are used (no cv2): a contour is the mask XOR its erosion. Nothing here
imports FiftyOne; :mod:`fiftyone_ntt.fiftyone.evaluation.export` is the wrapper for views.
"""

from __future__ import annotations

import colorsys
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "PALETTE",
    "SEPARATOR",
    "Instance",
    "contour",
    "draw_instances",
    "label_color",
    "save_side_by_side",
    "side_by_side",
]

#: Width of the white band between the two panels, in pixels.
SEPARATOR = 10


def _make_palette(n: int = 80) -> tuple[tuple[int, int, int], ...]:
    colors = []
    for i in range(n):
        hue = (i * 0.618033988749895) % 1.0
        saturation = 0.85 if i % 2 == 0 else 0.65
        value = 0.95 if i % 3 else 0.75
        r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
        colors.append((int(r * 255), int(g * 255), int(b * 255)))
    return tuple(colors)


#: A fixed 80-colour palette (label index -> RGB), the same in every picture.
PALETTE: tuple[tuple[int, int, int], ...] = _make_palette()


@dataclass
class Instance:
    """One object to draw.

    Attributes:
        label: class name.
        box: absolute ``(x1, y1, x2, y2)`` pixels (exclusive ``x2``/``y2``), or None.
        mask: full-image ``(H, W)`` bool mask, or None.
        score: confidence (predictions), None for ground truth.
    """

    label: str
    box: Sequence[float] | None = None
    mask: np.ndarray | None = None
    score: float | None = None


def label_color(label: str, labels: Sequence[str]) -> tuple[int, int, int]:
    """The palette colour of ``label``: ``PALETTE[labels.index(label) % 80]``."""
    labels = list(labels)
    index = labels.index(label) if label in labels else len(labels)
    return PALETTE[index % len(PALETTE)]


def _erode(mask: np.ndarray, iterations: int) -> np.ndarray:
    """Binary erosion with a 3x3 square, ``iterations`` times; outside the image counts as
    background, so objects touching the border get a contour there too."""
    out = mask.astype(bool)
    for _ in range(max(1, int(iterations))):
        padded = np.pad(out, 1, constant_values=False)
        eroded = np.ones_like(out)
        h, w = out.shape
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                eroded &= padded[dy : dy + h, dx : dx + w]
        out = eroded
    return out


def contour(mask: np.ndarray, thickness: int = 2) -> np.ndarray:
    """The inner contour of a binary mask, ``thickness`` pixels wide: ``mask XOR erode(mask)``."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask of shape {mask.shape}; give a (H, W) mask")
    return mask ^ _erode(mask, thickness)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def draw_instances(
    image: np.ndarray,
    instances: Sequence[Instance],
    labels: Sequence[str],
    *,
    threshold: float | None = None,
) -> np.ndarray:
    """Draw contours, boxes and tags of ``instances`` on a copy of an RGB ``uint8`` image.

    Args:
        image: ``(H, W, 3)`` RGB.
        instances: what to draw; those with a score ``<= threshold`` are skipped.
        labels: the label order that fixes the colours.
        threshold: score threshold for instances that have a score (None: draw all).
    """
    from PIL import Image, ImageDraw

    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image of shape {image.shape}; give an RGB (H, W, 3) image")
    height, width = image.shape[:2]
    contour_px = max(2, int(0.003 * width))
    box_px = max(2, int(0.004 * width))
    font = _font(max(8, int(0.02 * width)))
    shown = [
        inst
        for inst in instances
        if threshold is None or inst.score is None or inst.score > threshold
    ]
    out = image.copy()
    for inst in shown:  # contours first, so boxes and tags stay readable on top
        if inst.mask is None:
            continue
        mask = np.asarray(inst.mask, dtype=bool)
        if mask.shape != (height, width):
            raise ValueError(f"mask of shape {mask.shape} for an image of {(height, width)}")
        out[contour(mask, contour_px)] = label_color(inst.label, labels)
    canvas = Image.fromarray(out)
    draw = ImageDraw.Draw(canvas)
    for inst in shown:
        color = label_color(inst.label, labels)
        box = inst.box
        if box is None and inst.mask is not None and np.asarray(inst.mask).any():
            ys, xs = np.nonzero(inst.mask)
            box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        if box is None:
            continue
        x1, y1, x2, y2 = (float(v) for v in box)
        draw.rectangle([x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)], outline=color, width=box_px)
        text = inst.label if inst.score is None else f"{inst.label}={int(inst.score * 100)}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tw, th = right - left + 4, bottom - top + 4
        ty = y1 - th if y1 - th >= 0 else y1
        draw.rectangle([x1, ty, x1 + tw, ty + th], fill=color)
        draw.text((x1 + 2 - left, ty + 2 - top), text, fill=(255, 255, 255), font=font)
    return np.asarray(canvas)


def side_by_side(
    image: np.ndarray,
    ground_truth: Sequence[Instance],
    predictions: Sequence[Instance],
    *,
    labels: Sequence[str] | None = None,
    threshold: float = 0.5,
) -> np.ndarray:
    """``(H, 2 W + 10, 3)``: ground truth on the left, predictions above ``threshold`` on the
    right, a white 10-px separator between them (docs/method.md §8).

    Args:
        image: RGB ``uint8`` ``(H, W, 3)``.
        ground_truth: ground-truth instances (scores ignored).
        predictions: predicted instances with scores.
        labels: label order for the colours (default: sorted labels of both sides).
        threshold: predictions with a score ``<= threshold`` are not drawn (the research
            code's ``vis_thr``, default 0.5).
    """
    if labels is None:
        labels = sorted({i.label for i in ground_truth} | {i.label for i in predictions})
    gt = [Instance(i.label, i.box, i.mask, None) for i in ground_truth]
    left = draw_instances(image, gt, labels)
    right = draw_instances(image, predictions, labels, threshold=threshold)
    height = left.shape[0]
    band = np.full((height, SEPARATOR, 3), 255, dtype=np.uint8)
    return np.concatenate([left, band, right], axis=1)


def save_side_by_side(path: str | os.PathLike, picture: np.ndarray) -> Path:
    """Write a picture made by :func:`side_by_side` as PNG (folders created)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(picture, dtype=np.uint8)).save(path, format="PNG")
    return path


def instances_from_coco(
    annotations: Sequence[Mapping[str, Any]],
    names: Mapping[int, str],
    height: int,
    width: int,
) -> list[Instance]:
    """Instances of COCO annotations or results (``bbox`` xywh, optional ``segmentation``,
    optional ``score``) of one image."""
    from fiftyone_ntt.coco import annotation_to_mask

    out = []
    for ann in annotations:
        x, y, w, h = (float(v) for v in ann["bbox"])
        mask = annotation_to_mask(ann, height, width) if ann.get("segmentation") else None
        score = ann.get("score")
        out.append(
            Instance(
                label=names.get(int(ann["category_id"]), str(ann["category_id"])),
                box=(x, y, x + w, y + h),
                mask=None if mask is None else mask.astype(bool),
                score=None if score is None else float(score),
            )
        )
    return out
