"""Building memory banks: the pooled DINOv2 feature under each instance mask (docs/method.md §3,
§4.1), for references and negatives alike.

Positives and negatives of a memory bank are embedded by exactly the same code, so that their
vectors live in the same space and compare like with like at inference. The bank type is
:class:`fiftyone_ntt.memory_bank.MemoryBank` (which holds the file format and the constants).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

import numpy as np
import torch

from fiftyone_ntt.bank_file import BACKGROUND_LABELS, GLOBAL_NEGATIVE, MemoryBank, now_iso
from fiftyone_ntt.config import NTTConfig, encoder_input_size
from fiftyone_ntt.models.protocols import MaskProposer, PatchEncoder
from fiftyone_ntt.preprocess import (
    area_patch_weights,
    mask_to_patch_weights,
    reference_crop,
    squash_image,
)
from fiftyone_ntt.types import Reference

__all__ = [
    "build_memory_bank",
    "embed_references",
    "masks_from_boxes",
    "split_negatives",
]

ProgressFn = Callable[[int, int], None]


def masks_from_boxes(
    image: np.ndarray,
    boxes: Sequence[tuple[float, float, float, float]],
    proposer: MaskProposer,
) -> list[np.ndarray]:
    """Full-resolution masks of boxes by SAM2 box prompting (for box-only references).

    The image is squashed to the proposer's input size (as for targets); boxes are scaled
    into that space; the low-res logits are upsampled bilinearly to the image size and
    thresholded at 0. A box whose mask comes out empty falls back to the box rectangle, as
    the reference's SAM box-to-mask script does (docs/method.md §2.3).

    Args:
        image: RGB ``uint8`` ``(H, W, 3)``.
        boxes: ``XYXY`` pixel boxes.
        proposer: the mask proposer.

    Returns:
        One bool ``(H, W)`` mask per box.
    """
    from fiftyone_ntt.masks import upsample_masks

    height, width = image.shape[:2]
    size = proposer.input_size
    with torch.inference_mode():
        embedding = proposer.embed(squash_image(image, size).to(proposer.device))
        scale = torch.tensor([size / width, size / height, size / width, size / height])
        prompt = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4) * scale
        logits, _ = proposer.segment_boxes(embedding, prompt.to(proposer.device))
        masks = upsample_masks(logits.float().cpu(), (height, width)).numpy()
    out = []
    for mask, (x1, y1, x2, y2) in zip(masks, boxes):
        if not mask.any():
            mask = np.zeros((height, width), dtype=bool)
            mask[
                int(y1) : max(int(y1) + 1, int(np.ceil(y2))),
                int(x1) : max(int(x1) + 1, int(np.ceil(x2))),
            ] = True
        out.append(mask)
    return out


def embed_references(
    refs: Sequence[Reference],
    encoder: PatchEncoder,
    proposer: MaskProposer | None,
    config: NTTConfig,
    *,
    progress: ProgressFn | None = None,
    batch_size: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """``ins = sum(m * f) / sum(m)`` of each reference (docs/method.md §3, §4.1).

    For each reference: a square crop ``(1 + context_ratio)`` times the box's long side around
    its centre, torch-bicubic to ``reference_size``; the mask cropped the same way and
    bilinearly resized (soft); DINOv2 patch tokens of the crop; the mask nearest-sampled on
    the patch grid. Box-only references get a mask from SAM2 box prompting first (each image
    embedded once).

    Args:
        refs: the instances.
        encoder: the semantic encoder.
        proposer: needed only when some references have no mask.
        config: ``reference_context_ratio`` and ``reference_size``.
        progress: called as ``progress(done, total)`` after each reference.
        batch_size: crops per encoder call (speed only).

    Returns:
        ``(features, generated)``: ``(R, D)`` float32 (not normalised), and ``(R,)`` bool,
        True where the mask was generated from the box.

    Raises:
        ValueError: a box-only reference without a proposer, or a mask that misses the crop.
    """
    needs_masks = [r for r in refs if r.mask is None]
    if needs_masks and proposer is None:
        raise ValueError(
            f"{len(needs_masks)} references have only a box (e.g. {needs_masks[0].ref_id!r}); "
            "pass a mask proposer (SAM2) to generate their masks"
        )
    reference_size = encoder_input_size(config.reference_size, encoder.patch_size, "reference_size")
    grid = reference_size // encoder.patch_size
    features: list[torch.Tensor] = []
    generated: list[bool] = []
    pending: list[tuple[torch.Tensor, torch.Tensor]] = []

    def flush() -> None:
        crops = torch.cat([c for c, _ in pending]).to(encoder.device)
        with torch.inference_mode():
            tokens = encoder.encode(crops).float().cpu()  # (B, g, g, D)
        for (_, weights), tok in zip(pending, tokens):
            flat = tok.reshape(grid * grid, -1)
            features.append((weights @ flat) / weights.sum())
        pending.clear()

    # Group box-only references by image so each image is embedded by SAM2 once.
    generated_masks: dict[int, np.ndarray] = {}
    by_image: dict[int, list[int]] = {}
    for i, ref in enumerate(refs):
        if ref.mask is None:
            by_image.setdefault(id(ref.image), []).append(i)
    for indices in by_image.values():
        image = refs[indices[0]].image
        masks = masks_from_boxes(image, [refs[i].box for i in indices], proposer)
        generated_masks.update(zip(indices, masks))

    for i, ref in enumerate(refs):
        mask = ref.mask if ref.mask is not None else generated_masks[i]
        generated.append(ref.mask is None)
        crop, soft = reference_crop(
            ref.image,
            mask,
            ref.box,
            context_ratio=config.reference_context_ratio,
            size=reference_size,
        )
        weights = mask_to_patch_weights(soft, grid)
        if float(weights.sum()) <= 0:
            # Nearest sampling missed a very thin mask; the reference would produce NaN.
            weights = area_patch_weights(soft, grid)
        if float(weights.sum()) <= 0:
            raise ValueError(
                f"reference {ref.ref_id!r}: the mask does not cover the crop around its box "
                f"{ref.box}; check that mask and box belong together"
            )
        pending.append((crop, weights))
        if len(pending) >= batch_size:
            flush()
        if progress is not None:
            progress(i + 1, len(refs))
    if pending:
        flush()
    if not features:
        return np.zeros((0, encoder.feature_dim), dtype=np.float32), np.zeros(0, dtype=bool)
    return torch.stack(features).numpy(), np.array(generated, dtype=bool)


# ---------------------------------------------------------------------------------- build
def split_negatives(
    negatives: Iterable[Reference],
    class_names: Sequence[str],
    background_labels: Collection[str] = BACKGROUND_LABELS,
) -> tuple[list[Reference], dict[str, int]]:
    """Separate the negatives a bank of ``class_names`` can use from the others.

    A negative is usable when its class is one of ``class_names`` (a class negative) or one
    of ``background_labels`` (a global negative). A negative of any other class has no
    prototype to compete with and would do nothing: callers report it as skipped.

    Returns:
        ``(usable, skipped)``: the usable negatives in order, and ``{class: count}`` of the
        others.
    """
    names = set(class_names)
    usable, skipped = [], {}
    for neg in negatives:
        if neg.class_name in names or neg.class_name in background_labels:
            usable.append(neg)
        else:
            skipped[neg.class_name] = skipped.get(neg.class_name, 0) + 1
    return usable, skipped


def build_memory_bank(
    references: Iterable[Reference],
    encoder: PatchEncoder,
    proposer: MaskProposer | None = None,
    *,
    config: NTTConfig | None = None,
    class_names: Sequence[str] | None = None,
    metadata: dict[str, Any] | None = None,
    progress: ProgressFn | None = None,
    batch_size: int = 8,
    negatives: Iterable[Reference] = (),
    background_labels: Collection[str] = BACKGROUND_LABELS,
) -> MemoryBank:
    """Embed reference instances (and negatives) into a memory bank (docs/method.md §3, §4).

    See :func:`fiftyone_ntt.bank_embed.embed_references` for what is computed per instance;
    negatives are embedded identically.

    Args:
        references: the examples; any number per class.
        encoder: the semantic encoder.
        proposer: needed only when some references or negatives have no mask.
        config: pipeline settings (reference_context_ratio, reference_size).
        class_names: label order of the bank; default: order of first appearance. Every
            class must have at least one reference.
        metadata: free JSON data stored with the bank.
        progress: called as ``progress(done, total)`` after each instance.
        batch_size: crops per encoder call (speed only).
        negatives: instances that look like a class but are not it: a negative of a bank
            class is a class negative, one labelled with a ``background_labels`` name is a
            global negative (use :func:`split_negatives` to leave out the others).
        background_labels: the labels of global negatives.

    Raises:
        ValueError: no references, a class without references, a reference or negative of
            an unknown class, or a box-only instance without a proposer.
    """

    config = config or NTTConfig()
    refs = list(references)
    negs = list(negatives)
    if not refs:
        raise ValueError("no references given; tag or sample at least one instance per class")
    seen = list(dict.fromkeys(r.class_name for r in refs))
    names = list(class_names) if class_names is not None else seen
    unknown = sorted(set(seen) - set(names))
    if unknown:
        raise ValueError(f"references of classes {unknown} are not in class_names {names}")
    missing = [n for n in names if n not in seen]
    if missing:
        raise ValueError(
            f"classes {missing} have no reference; add at least one instance of each or "
            "leave them out of class_names"
        )
    _, skipped = split_negatives(negs, names, background_labels)
    if skipped:
        raise ValueError(
            f"negatives of classes {sorted(skipped)} match no class of the bank {names} and no "
            f"background label {list(background_labels)}; add references of those classes, "
            "or leave the negatives out (split_negatives)"
        )

    total = len(refs) + len(negs)

    def negative_progress(done: int, _: int) -> None:
        if progress is not None:
            progress(len(refs) + done, total)

    features, generated = embed_references(
        refs,
        encoder,
        proposer,
        config,
        progress=(lambda done, _: progress(done, total)) if progress else None,
        batch_size=batch_size,
    )
    neg_features, _ = embed_references(
        negs, encoder, proposer, config, progress=negative_progress, batch_size=batch_size
    )
    index = {n: k for k, n in enumerate(names)}
    return MemoryBank(
        features=features,
        class_ids=np.array([index[r.class_name] for r in refs], dtype=np.int64),
        class_names=tuple(names),
        reference_ids=tuple(r.ref_id for r in refs),
        generated_masks=generated,
        encoder=dict(encoder.identity),
        settings={
            "reference_context_ratio": config.reference_context_ratio,
            "reference_size": encoder_input_size(
                config.reference_size, encoder.patch_size, "reference_size"
            ),
        },
        metadata=dict(metadata or {}),
        created=now_iso(),
        negative_features=neg_features,
        negative_class_ids=np.array(
            [index.get(n.class_name, GLOBAL_NEGATIVE) for n in negs], dtype=np.int64
        ),
        negative_ids=tuple(n.ref_id for n in negs),
    )
