"""Validated data types with fixed conventions.

Conventions, fixed once for the whole library (FiftyOne's relative boxes and box-cropped masks
appear only in the FiftyOne adapter):

* images: RGB ``uint8`` arrays of shape ``(H, W, 3)``;
* boxes: absolute pixel ``XYXY`` floats, ``x2``/``y2`` exclusive (a one-pixel object at
  column 5 spans ``[5, 6)``);
* masks: full-image boolean arrays of shape ``(H, W)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Predictions", "Reference"]


@dataclass
class Reference:
    """One annotated example instance of a class.

    Attributes:
        image: RGB ``uint8`` array ``(H, W, 3)``.
        class_name: the class this instance shows.
        ref_id: a stable identifier (a COCO annotation id, a FiftyOne label id, ...).
        mask: full-image boolean mask ``(H, W)``, or ``None`` when only a box is known
            (the mask is then made by SAM2 box prompting when the bank is built).
        box: ``XYXY`` pixel box; derived from ``mask`` when not given.
    """

    image: np.ndarray
    class_name: str
    ref_id: str
    mask: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None

    def __post_init__(self) -> None:
        image = np.asarray(self.image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"reference {self.ref_id!r}: image must be an RGB uint8 array (H, W, 3), got "
                f"dtype {image.dtype} shape {image.shape}; convert it with "
                "fiftyone_ntt.images.to_rgb_uint8"
            )
        self.image = image
        if not isinstance(self.class_name, str) or not self.class_name:
            raise ValueError(f"reference {self.ref_id!r}: class_name must be a non-empty string")
        self.ref_id = str(self.ref_id)
        height, width = image.shape[:2]
        if self.mask is not None:
            mask = np.asarray(self.mask)
            if mask.shape != (height, width):
                raise ValueError(
                    f"reference {self.ref_id!r}: mask shape {mask.shape} differs from the "
                    f"image size {(height, width)}; pass a full-image mask"
                )
            mask = mask.astype(bool, copy=False)
            if not mask.any():
                raise ValueError(
                    f"reference {self.ref_id!r}: mask is empty; draw the instance or give "
                    "only its box"
                )
            self.mask = mask
            if self.box is None:
                ys, xs = np.nonzero(mask)
                self.box = (
                    float(xs.min()),
                    float(ys.min()),
                    float(xs.max() + 1),
                    float(ys.max() + 1),
                )
        if self.box is None:
            raise ValueError(f"reference {self.ref_id!r}: give a mask, a box, or both")
        x1, y1, x2, y2 = (float(v) for v in self.box)
        x1, x2 = max(0.0, x1), min(float(width), x2)
        y1, y2 = max(0.0, y1), min(float(height), y2)
        if not (x2 > x1 and y2 > y1):
            raise ValueError(
                f"reference {self.ref_id!r}: box {tuple(self.box)} has no area inside the "
                f"{width}x{height} image; fix the annotation"
            )
        self.box = (x1, y1, x2, y2)


@dataclass
class Predictions:
    """Detections of one image, in descending score order.

    Attributes:
        masks: ``(N, H, W)`` bool, full resolution.
        boxes: ``(N, 4)`` float32 ``XYXY`` pixels, ``x2``/``y2`` exclusive (tight around the
            mask).
        scores: ``(N,)`` float32 in ``[0, 1]``.
        class_ids: ``(N,)`` int64 indices into ``class_names``.
        class_names: the bank's classes, in bank order.
        features: ``(N, D)`` float32, the L2-normalised pooled semantic feature each
            detection was matched with (docs/method.md §15), or ``None`` (the default: kept
            only with :attr:`fiftyone_ntt.config.NTTConfig.keep_features`).
    """

    masks: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    class_names: Sequence[str] = field(default_factory=tuple)
    features: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.masks = np.asarray(self.masks, dtype=bool)
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        self.class_ids = np.asarray(self.class_ids, dtype=np.int64).reshape(-1)
        self.class_names = tuple(self.class_names)
        n = len(self.scores)
        if self.masks.ndim != 3 or len(self.masks) != n:
            raise ValueError(f"masks must be (N, H, W) with N={n}, got {self.masks.shape}")
        if len(self.boxes) != n or len(self.class_ids) != n:
            raise ValueError(
                f"boxes {self.boxes.shape}, scores {self.scores.shape} and class_ids "
                f"{self.class_ids.shape} must have the same length"
            )
        if n and (self.class_ids.min() < 0 or self.class_ids.max() >= len(self.class_names)):
            raise ValueError(
                f"class_ids {self.class_ids.tolist()} out of range for {len(self.class_names)} "
                "class names"
            )
        if self.features is not None:
            self.features = np.asarray(self.features, dtype=np.float32)
            if self.features.ndim != 2 or len(self.features) != n:
                raise ValueError(
                    f"features must be (N, D) with N={n}, got {self.features.shape}; pass one "
                    "vector per detection, or None"
                )

    @classmethod
    def empty(
        cls,
        height: int,
        width: int,
        class_names: Sequence[str] = (),
        feature_dim: int | None = None,
    ) -> Predictions:
        """No detections for an image of ``height x width`` pixels (with an empty
        ``(0, feature_dim)`` feature array when ``feature_dim`` is given)."""
        features = None if feature_dim is None else np.zeros((0, feature_dim), np.float32)
        return cls(
            masks=np.zeros((0, height, width), dtype=bool),
            boxes=np.zeros((0, 4), dtype=np.float32),
            scores=np.zeros((0,), dtype=np.float32),
            class_ids=np.zeros((0,), dtype=np.int64),
            class_names=class_names,
            features=features,
        )

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of the image the masks cover."""
        return int(self.masks.shape[1]), int(self.masks.shape[2])

    @property
    def labels(self) -> list[str]:
        """Class name of each detection."""
        return [self.class_names[i] for i in self.class_ids.tolist()]

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, index: np.ndarray | slice | Sequence[int]) -> Predictions:
        """A subset (bool mask, integer indices or slice), same class names."""
        if isinstance(index, slice):
            sel = index
        else:
            sel = np.asarray(index)
            if sel.dtype == bool and sel.shape != self.scores.shape:
                raise IndexError(f"bool index of shape {sel.shape} for {len(self)} detections")
        return Predictions(
            masks=self.masks[sel],
            boxes=self.boxes[sel],
            scores=self.scores[sel],
            class_ids=self.class_ids[sel],
            class_names=self.class_names,
            features=None if self.features is None else self.features[sel],
        )
