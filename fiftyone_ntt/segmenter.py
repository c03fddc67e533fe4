"""The inference pipeline: image + memory bank -> instance predictions (docs/method.md §5).

No file or database I/O happens here; callers pass decoded images.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from fiftyone_ntt.config import NTTConfig, encoder_input_size
from fiftyone_ntt.loader import batched, prefetched
from fiftyone_ntt.masks import batched_nms, masks_to_boxes_inclusive, upsample_masks
from fiftyone_ntt.matching import (
    assign_classes,
    class_threshold_vector,
    pool_mask_features,
    soft_merge_decay,
    suppressed_by_negatives,
)
from fiftyone_ntt.memory_bank import MemoryBank
from fiftyone_ntt.models.allocator import reuse_large_buffers
from fiftyone_ntt.models.batch_embed import embed_images
from fiftyone_ntt.models.protocols import MaskProposer, PatchEncoder
from fiftyone_ntt.preprocess import squash_image, to_semantic_input
from fiftyone_ntt.types import Predictions

__all__ = [
    "PreparedImage",
    "Segmenter",
    "StageTimer",
    "default_batch_images",
    "point_grid",
]


def point_grid(points_per_side: int, size: int) -> torch.Tensor:
    """The reference's edge-to-edge prompt grid (docs/method.md §5, §11.2 item 2).

    ``g = linspace(0, size - 1, n) + 0.5``; points are ``(x = g_i, y = g_j)`` ordered
    x-major (``meshgrid(indexing="ij")``). The prompt encoder adds its own +0.5 later. This is
    not SAM's automatic-mask-generator grid (which is offset by half a cell).

    Returns:
        ``(n * n, 2)`` float32 ``(x, y)`` in input pixels.
    """
    g = torch.linspace(0, size - 1, points_per_side, dtype=torch.float32) + 0.5
    xs, ys = torch.meshgrid(g, g, indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)


def default_batch_images(device: torch.device | str) -> int:
    """Images per model call when the user does not say: 1 on a CPU (a batch only adds
    memory there: the matrix products are already large), 4 on a CUDA GPU (fills the GPU
    with the Large models in ~10 GB, see docs/benchmarks.md), 1 elsewhere."""
    return 4 if torch.device(device).type == "cuda" else 1


@dataclass(frozen=True)
class PreparedImage:
    """The model inputs of one image (docs/method.md §1.3), made before the models run.

    Attributes:
        squashed: ``(3, S, S)`` float32 in ``[0, 1]``, the SAM 2 input (``S`` = 1024).
        semantic: ``(1, 3, s, s)`` float32, the DINOv2 input (``s`` = 518).
        height, width: the original image size in pixels (predictions come back at it).
    """

    squashed: torch.Tensor
    semantic: torch.Tensor
    height: int
    width: int


def _check_image(image: np.ndarray) -> None:
    if (
        not isinstance(image, np.ndarray)
        or image.ndim != 3
        or image.shape[2] != 3
        or image.dtype != np.uint8
    ):
        raise ValueError(
            f"image must be RGB uint8 (H, W, 3), got dtype {getattr(image, 'dtype', None)} "
            f"shape {getattr(image, 'shape', None)}; convert it with "
            "fiftyone_ntt.images.to_rgb_uint8"
        )


@dataclass
class StageTimer:
    """Accumulates wall time per pipeline stage (seconds), for benchmarks."""

    seconds: dict[str, float] = field(default_factory=dict)
    synchronize: Callable[[], None] | None = None

    @contextmanager
    def __call__(self, name: str):
        if self.synchronize:
            self.synchronize()
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.synchronize:
                self.synchronize()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


@contextmanager
def _no_timer(name: str):
    yield


class Segmenter:
    """Segments the classes of a memory bank in new images.

    Args:
        encoder: the semantic encoder that built ``bank`` (checked).
        proposer: the mask proposer (SAM2).
        bank: reference features; its class order is the label order of predictions.
        config: hyper-parameters; defaults are the paper's.

    Example:
        >>> segmenter = Segmenter(encoder, proposer, bank)
        >>> predictions = segmenter.predict(image)  # RGB uint8 (H, W, 3)
    """

    def __init__(
        self,
        encoder: PatchEncoder,
        proposer: MaskProposer,
        bank: MemoryBank,
        config: NTTConfig | None = None,
    ) -> None:
        self.config = config or NTTConfig()
        # the bank's features must be as wide as the encoder's (not only its record)
        bank.check_encoder(encoder.identity, getattr(encoder, "feature_dim", None))
        patch = encoder.patch_size
        reference_size = encoder_input_size(self.config.reference_size, patch, "reference_size")
        if bank.settings.get("reference_size") not in (None, reference_size):
            raise ValueError(
                f"memory bank was built with reference_size={bank.settings['reference_size']} "
                f"but the config says {reference_size}; use the same value"
            )
        self.semantic_size = encoder_input_size(self.config.semantic_size, patch)
        self.encoder = encoder
        self.proposer = proposer
        self.bank = bank
        self.prototypes = bank.prototypes().to(encoder.device)
        # negatives (not in the paper): without any, inference is exactly the paper's
        self.negatives = None
        if bank.num_negatives:
            self.negatives = tuple(t.to(encoder.device) for t in bank.negative_vectors())
        # per-class score cuts (docs/method.md §16.1); None: the paper's "no threshold"
        self.class_thresholds = None
        if self.config.class_score_thresholds:
            thresholds = class_threshold_vector(
                bank.class_names, self.config.class_score_thresholds
            )
            self.class_thresholds = thresholds.to(encoder.device)
        self.points = point_grid(self.config.points_per_side, proposer.input_size)
        if "cpu" in (torch.device(encoder.device).type, torch.device(proposer.device).type):
            # CPU inference allocates the same large tensors for every block and image: keep
            # them in the heap for reuse (same results; models/allocator.py).
            reuse_large_buffers()

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.bank.class_names

    def prepare(self, image: np.ndarray, *, pin_memory: bool = False) -> PreparedImage:
        """The model inputs of one image (docs/method.md §1.3); thread-safe, no model is called.

        Args:
            image: RGB ``uint8`` ``(H, W, 3)``, any size.
            pin_memory: page-lock the tensors (faster, asynchronous copies to a GPU).
        """
        _check_image(image)
        squashed = squash_image(image, self.proposer.input_size)
        semantic = to_semantic_input(squashed, self.semantic_size)
        if pin_memory:
            squashed, semantic = squashed.pin_memory(), semantic.pin_memory()
        return PreparedImage(squashed, semantic, int(image.shape[0]), int(image.shape[1]))

    @property
    def pin_memory(self) -> bool:
        """Whether prepared images should be page-locked (the models run on CUDA)."""
        return "cuda" in (self.encoder.device.type, self.proposer.device.type)

    def predict(self, image: np.ndarray, *, timer: StageTimer | None = None) -> Predictions:
        """Detections of the bank's classes in one image.

        Args:
            image: RGB ``uint8`` ``(H, W, 3)``, any size.
            timer: optional per-stage timing.

        Returns:
            Predictions in descending score order (possibly empty).
        """
        return self.predict_batch([image], timer=timer)[0]

    def predict_batch(
        self, images: Sequence[np.ndarray], *, timer: StageTimer | None = None
    ) -> list[Predictions]:
        """Detections in several images, both encoders running once on the whole batch.

        Images of different sizes may share a batch: each is squashed to the fixed model
        sizes (§1.3) and its predictions come back at its own size. The predictions equal
        :meth:`predict` of each image alone, up to float rounding of batched matrix
        products (unit tests check identical labels and masks, scores to 1e-5).

        Args:
            images: RGB ``uint8`` ``(H, W, 3)`` arrays.
            timer: optional per-stage timing (summed over the batch).

        Returns:
            One :class:`Predictions` per image, in input order.
        """
        stage = timer or _no_timer
        for image in images:
            _check_image(image)
        with stage("preprocess"):
            prepared = [self.prepare(image) for image in images]
        return self.predict_prepared(prepared, timer=timer)

    def predict_prepared(
        self, prepared: Sequence[PreparedImage], *, timer: StageTimer | None = None
    ) -> list[Predictions]:
        """:meth:`predict_batch` for images already passed through :meth:`prepare` (e.g. in a
        loader thread, see :meth:`predict_many`)."""
        if not prepared:
            return []
        with torch.inference_mode():
            return self._predict_prepared(list(prepared), timer or _no_timer)

    def predict_many(
        self,
        images: Iterable[np.ndarray],
        *,
        batch_images: int = 1,
        prefetch: int = 2,
        timer: StageTimer | None = None,
    ) -> Iterator[Predictions]:
        """Predictions of a stream of images, ``batch_images`` at a time, the next images
        being prepared in a background thread (page-locked when the models run on CUDA).

        Args:
            images: RGB ``uint8`` arrays (e.g. a generator that reads files).
            batch_images: images per model call (see :func:`default_batch_images`).
            prefetch: images prepared ahead beyond the next batch (0: in this thread).
            timer: optional per-stage timing of the model stages (preparing happens in the
                loader thread and is not timed).
        """
        pin = self.pin_memory
        # the next whole batch is prepared while the models run on this one
        depth = prefetch + batch_images - 1 if prefetch > 0 else 0
        stream = prefetched(images, lambda image: self.prepare(image, pin_memory=pin), depth=depth)
        for batch in batched((p for _, p in stream), batch_images):
            yield from self.predict_prepared(batch, timer=timer)

    def _predict_prepared(self, prepared: list[PreparedImage], stage) -> list[Predictions]:
        with stage("dinov2"):
            device = self.encoder.device
            semantic = torch.cat([p.semantic.to(device, non_blocking=True) for p in prepared])
            features = self.encoder.encode(semantic).float()  # (B, g, g, D)

        with stage("sam2_encoder"):
            device = self.proposer.device
            squashed = torch.stack([p.squashed.to(device, non_blocking=True) for p in prepared])
            embeddings = embed_images(self.proposer, squashed)

        return [
            self._predict_one(features[i], embeddings[i], p.height, p.width, stage)
            for i, p in enumerate(prepared)
        ]

    def _predict_one(
        self, features: torch.Tensor, embedding: Any, height: int, width: int, stage
    ) -> Predictions:
        cfg = self.config
        names = self.bank.class_names
        # keep_features: empty results carry a (0, D) feature array too (docs/method.md §15)
        dim = int(self.prototypes.shape[1]) if cfg.keep_features else None

        with stage("sam2_decoder"):
            logits_parts, iou_parts = [], []
            points = self.points.to(self.proposer.device)
            for start in range(0, len(points), cfg.points_batch_size):
                _, logits, iou = self.proposer.propose(
                    embedding, points[start : start + cfg.points_batch_size], cfg.pred_iou_threshold
                )
                logits_parts.append(logits.float())
                iou_parts.append(iou.float())
            logits = torch.cat(logits_parts).to(features.device)
            sam_iou = torch.cat(iou_parts).to(features.device)
            low_res = logits > 0
        if len(logits) == 0:
            return Predictions.empty(height, width, names, dim)

        with stage("matching"):
            # An empty low-res mask pools 0/0 = NaN, exactly as in the reference: its label
            # comes from the same top-k, its zero-area box never suppresses anything in NMS,
            # it still takes an NMS slot, and the score filter drops it (docs/method.md §11.1).
            pooled = pool_mask_features(features, low_res)
            class_ids, scores = assign_classes(pooled, self.prototypes)
            if self.negatives is not None:
                keep = ~suppressed_by_negatives(
                    pooled, class_ids, scores, *self.negatives, cfg.negative_margin
                )
                logits, sam_iou, low_res = logits[keep], sam_iou[keep], low_res[keep]
                pooled, class_ids, scores = pooled[keep], class_ids[keep], scores[keep]

        with stage("nms"):
            boxes = masks_to_boxes_inclusive(low_res)
            keep = batched_nms(boxes, sam_iou, class_ids, cfg.nms_iou_threshold)[: cfg.nms_keep]
            keep = keep[scores[keep] > 0]
        if len(keep) == 0:
            return Predictions.empty(height, width, names, dim)
        logits, pooled, class_ids, scores = (
            logits[keep],
            pooled[keep],
            class_ids[keep],
            scores[keep],
        )

        with stage("upsample"):
            masks = upsample_masks(logits, (height, width))
            # A tiny low-res mask can vanish at a small original size; the reference then
            # emits NaN-scored empty detections (docs/method.md §11.1). Drop them.
            visible = masks.flatten(1).any(dim=1)
            masks, pooled = masks[visible], pooled[visible]
            class_ids, scores = class_ids[visible], scores[visible]
        if len(masks) == 0:
            return Predictions.empty(height, width, names, dim)

        with stage("merging"):
            decay = soft_merge_decay(masks, pooled, class_ids, cfg.merge_decay_exponent)
            scores = scores * decay
            # argsort as the reference does (same tie order on the same platform).
            order = torch.argsort(scores, descending=True)[: cfg.max_detections]
            if cfg.score_threshold is not None:
                order = order[scores[order] >= cfg.score_threshold]
            if self.class_thresholds is not None:
                cuts = self.class_thresholds.to(scores.device)[class_ids[order]]
                order = order[scores[order] >= cuts]
            masks, scores, class_ids = masks[order], scores[order], class_ids[order]
            # the exact vectors each kept detection was matched with (docs/method.md §15)
            features = pooled[order].cpu().numpy() if cfg.keep_features else None
            boxes = masks_to_boxes_inclusive(masks)
            boxes[:, 2:] += 1  # exclusive x2/y2: the library's convention (types.py)

        return Predictions(
            masks=masks.cpu().numpy(),
            boxes=boxes.cpu().numpy(),
            scores=scores.cpu().numpy(),
            class_ids=class_ids.cpu().numpy(),
            class_names=names,
            features=features,
        )
