"""The memory bank: one pooled DINOv2 feature per reference instance (method §3, §4).

The reference stores every patch token of every reference (3.4 GB for 20 classes x 30 shots)
and post-processes them into quantities of which inference uses exactly one: the per-instance
soft-mask-weighted mean ``ins_avg[c, k]`` (method §4 step 1). We store only that, plus what is
needed to use the bank safely: class names, reference ids, which masks were generated from
boxes, the encoder identity, the settings, a format version and a content fingerprint.
20 classes x 30 shots x 1024 float32 = 2.4 MB.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

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
    "FORMAT_VERSION",
    "BankFormatError",
    "EncoderMismatchError",
    "MemoryBank",
    "build_memory_bank",
    "masks_from_boxes",
]

FORMAT_NAME = "fiftyone-ntt-memory-bank"
FORMAT_VERSION = 1

#: Encoder identity keys that must agree between a bank and the encoder that uses it. The
#: ``source`` (hub id or file path) may differ for the same weights and only warns.
_ENCODER_KEYS = ("family", "arch", "feature_dim", "patch_size", "registers")

ProgressFn = Callable[[int, int], None]


class BankFormatError(ValueError):
    """A file is missing, truncated, not a memory bank, or of another format version."""


class EncoderMismatchError(ValueError):
    """A bank is used with an encoder other than the one that built it."""


@dataclass(frozen=True)
class MemoryBank:
    """Reference features and their provenance.

    Attributes:
        features: ``(R, D)`` float32 per-reference pooled features ``ins_avg`` (§4.1), not
            normalised.
        class_ids: ``(R,)`` int64 indices into ``class_names``.
        class_names: the classes, in label order (label ``i`` is ``class_names[i]``).
        reference_ids: ``R`` stable ids of the reference instances.
        generated_masks: ``(R,)`` bool, True where the mask came from SAM2 box prompting.
        encoder: identity of the encoder that computed the features.
        settings: the reference-side settings (crop context ratio and size).
        metadata: free JSON data (e.g. COCO category ids, dataset name).
        created: ISO timestamp (not part of the fingerprint).
    """

    features: np.ndarray
    class_ids: np.ndarray
    class_names: tuple[str, ...]
    reference_ids: tuple[str, ...]
    generated_masks: np.ndarray
    encoder: dict[str, Any]
    settings: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    created: str = ""

    def __post_init__(self) -> None:
        features = np.ascontiguousarray(self.features, dtype=np.float32)
        if features.ndim != 2:
            raise ValueError(f"features must be (R, D), got shape {features.shape}")
        n = len(features)
        class_ids = np.asarray(self.class_ids, dtype=np.int64).reshape(-1)
        generated = np.asarray(self.generated_masks, dtype=bool).reshape(-1)
        if len(class_ids) != n or len(self.reference_ids) != n or len(generated) != n:
            raise ValueError(
                f"{n} features but {len(class_ids)} class ids, {len(self.reference_ids)} "
                f"reference ids and {len(generated)} mask flags"
            )
        if len(set(self.reference_ids)) != n:
            raise ValueError("reference ids must be unique within a bank")
        names = tuple(self.class_names)
        if len(set(names)) != len(names):
            raise ValueError(f"class names must be unique, got {list(names)}")
        if n and (class_ids.min() < 0 or class_ids.max() >= len(names)):
            raise ValueError("class ids out of range of class_names")
        if not np.isfinite(features).all():
            raise ValueError("bank features contain NaN or infinity")
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "class_ids", class_ids)
        object.__setattr__(self, "generated_masks", generated)
        object.__setattr__(self, "class_names", names)
        object.__setattr__(self, "reference_ids", tuple(str(r) for r in self.reference_ids))

    # ----------------------------------------------------------------------------- queries
    @property
    def num_references(self) -> int:
        return len(self.features)

    @property
    def feature_dim(self) -> int:
        return int(self.features.shape[1])

    def shots_per_class(self) -> dict[str, int]:
        """Number of references of each class, in class order."""
        counts = np.bincount(self.class_ids, minlength=len(self.class_names))
        return {name: int(c) for name, c in zip(self.class_names, counts)}

    def prototypes(self) -> torch.Tensor:
        """Class prototypes ``P_c = normalize(mean_k ins_avg[c, k])`` (method §4).

        Each reference counts equally within its class, and classes may have different
        numbers of references (the reference code produced NaNs then, §11.1).

        Returns:
            ``(C, D)`` float32, L2-normalised.

        Raises:
            ValueError: a class has no reference.
        """
        empty = [n for n, c in self.shots_per_class().items() if c == 0]
        if empty:
            raise ValueError(
                f"classes {empty} have no reference in this bank; add references or remove "
                "the classes"
            )
        feats = torch.from_numpy(self.features)
        ids = torch.from_numpy(self.class_ids)
        sums = torch.zeros((len(self.class_names), feats.shape[1]), dtype=torch.float32)
        sums.index_add_(0, ids, feats)
        counts = torch.bincount(ids, minlength=len(self.class_names)).float()
        return F.normalize(sums / counts[:, None], dim=1)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the content (features, classes, ids, encoder, settings)."""
        digest = hashlib.sha256()
        digest.update(self.features.tobytes())
        digest.update(self.class_ids.tobytes())
        digest.update(self.generated_masks.tobytes())
        digest.update(
            json.dumps(
                {
                    "class_names": self.class_names,
                    "reference_ids": self.reference_ids,
                    "encoder": self.encoder,
                    "settings": self.settings,
                    "metadata": self.metadata,
                },
                sort_keys=True,
            ).encode()
        )
        return digest.hexdigest()

    def check_encoder(self, identity: dict[str, Any]) -> None:
        """Refuse to use this bank with an encoder other than the one that built it.

        Raises:
            EncoderMismatchError: names both encoders and the fix.
        """
        ours = {k: self.encoder.get(k) for k in _ENCODER_KEYS}
        theirs = {k: identity.get(k) for k in _ENCODER_KEYS}
        if ours != theirs:
            raise EncoderMismatchError(
                f"memory bank was built with {_describe(self.encoder)} but the segmenter uses "
                f"{_describe(identity)}; rebuild the bank with this encoder or choose "
                f"{self.encoder.get('source', _describe(self.encoder))}"
            )
        if self.encoder.get("source") != identity.get("source"):
            warnings.warn(
                f"memory bank was built from {self.encoder.get('source')!r}, the encoder was "
                f"loaded from {identity.get('source')!r}; same architecture, so make sure the "
                "weights are the same",
                stacklevel=2,
            )

    # ------------------------------------------------------------------------------ edits
    def merged(self, other: MemoryBank) -> MemoryBank:
        """A new bank with the references of both (classes united, order kept)."""
        if {k: self.encoder.get(k) for k in _ENCODER_KEYS} != {
            k: other.encoder.get(k) for k in _ENCODER_KEYS
        }:
            raise EncoderMismatchError(
                f"cannot merge banks of {_describe(self.encoder)} and {_describe(other.encoder)}"
            )
        if self.settings != other.settings:
            raise ValueError(
                f"cannot merge banks built with different settings: {self.settings} vs "
                f"{other.settings}"
            )
        names = list(self.class_names)
        for name in other.class_names:
            if name not in names:
                names.append(name)
        remap = np.array([names.index(n) for n in other.class_names], dtype=np.int64)
        return MemoryBank(
            features=np.concatenate([self.features, other.features]),
            class_ids=np.concatenate([self.class_ids, remap[other.class_ids]]),
            class_names=tuple(names),
            reference_ids=self.reference_ids + other.reference_ids,
            generated_masks=np.concatenate([self.generated_masks, other.generated_masks]),
            encoder=dict(self.encoder),
            settings=dict(self.settings),
            metadata={**other.metadata, **self.metadata},
            created=_now(),
        )

    def without(self, reference_ids: Iterable[str]) -> MemoryBank:
        """A new bank without some references; classes left empty are dropped."""
        drop = {str(r) for r in reference_ids}
        unknown = drop - set(self.reference_ids)
        if unknown:
            raise KeyError(f"reference ids {sorted(unknown)} are not in this bank")
        keep = np.array([r not in drop for r in self.reference_ids], dtype=bool)
        used = sorted(set(self.class_ids[keep].tolist()))
        remap = {old: new for new, old in enumerate(used)}
        return MemoryBank(
            features=self.features[keep],
            class_ids=np.array([remap[c] for c in self.class_ids[keep].tolist()], dtype=np.int64),
            class_names=tuple(self.class_names[i] for i in used),
            reference_ids=tuple(r for r, k in zip(self.reference_ids, keep) if k),
            generated_masks=self.generated_masks[keep],
            encoder=dict(self.encoder),
            settings=dict(self.settings),
            metadata=dict(self.metadata),
            created=_now(),
        )

    # --------------------------------------------------------------------------- file I/O
    def save(self, path: str | os.PathLike) -> Path:
        """Write the bank to one safetensors file (atomically). Returns the path."""
        from safetensors.numpy import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = {
            "class_names": list(self.class_names),
            "reference_ids": list(self.reference_ids),
            "encoder": self.encoder,
            "settings": self.settings,
            "metadata": self.metadata,
            "created": self.created,
            "fingerprint": self.fingerprint,
        }
        tensors = {
            "features": self.features,
            "class_ids": self.class_ids,
            "generated_masks": self.generated_masks.astype(np.uint8),
        }
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            save_file(
                tensors,
                tmp,
                metadata={
                    "format": FORMAT_NAME,
                    "format_version": str(FORMAT_VERSION),
                    "bank": json.dumps(header),
                },
            )
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> MemoryBank:
        """Read a bank written by :meth:`save`, verifying format, version and fingerprint.

        Raises:
            BankFormatError: missing, truncated, foreign or corrupted file, or another
                format version.
        """
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise BankFormatError(f"memory bank file {str(path)!r} does not exist")
        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as error:
            raise BankFormatError(
                f"{str(path)!r} is not a readable memory bank ({error}); it may be truncated "
                "or another kind of file: rebuild the bank"
            ) from error
        if meta.get("format") != FORMAT_NAME:
            raise BankFormatError(
                f"{str(path)!r} is a safetensors file but not a fiftyone-ntt memory bank; "
                "build one with build_memory_bank or `fiftyone-ntt build-bank`"
            )
        version = meta.get("format_version")
        if version != str(FORMAT_VERSION):
            raise BankFormatError(
                f"memory bank {str(path)!r} has format version {version}, this fiftyone-ntt "
                f"reads version {FORMAT_VERSION}; rebuild the bank with this version"
            )
        try:
            header = json.loads(meta["bank"])
            bank = cls(
                features=tensors["features"],
                class_ids=tensors["class_ids"],
                class_names=tuple(header["class_names"]),
                reference_ids=tuple(header["reference_ids"]),
                generated_masks=tensors["generated_masks"].astype(bool),
                encoder=header["encoder"],
                settings=header["settings"],
                metadata=header.get("metadata", {}),
                created=header.get("created", ""),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise BankFormatError(
                f"memory bank {str(path)!r} is incomplete or corrupted ({error}); rebuild it"
            ) from error
        if header.get("fingerprint") != bank.fingerprint:
            raise BankFormatError(
                f"memory bank {str(path)!r} does not match its fingerprint (corrupted or "
                "edited); rebuild it"
            )
        return bank


def _describe(identity: dict[str, Any]) -> str:
    parts = [str(identity.get("family", "?")), str(identity.get("arch", "?"))]
    if identity.get("registers"):
        parts.append(f"reg{identity['registers']}")
    parts.append(f"dim {identity.get('feature_dim', '?')}")
    return " ".join(parts)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------- build
def masks_from_boxes(
    image: np.ndarray,
    boxes: Sequence[tuple[float, float, float, float]],
    proposer: MaskProposer,
) -> list[np.ndarray]:
    """Full-resolution masks of boxes by SAM2 box prompting (for box-only references).

    The image is squashed to the proposer's input size (as for targets); boxes are scaled
    into that space; the low-res logits are upsampled bilinearly to the image size and
    thresholded at 0. A box whose mask comes out empty falls back to the box rectangle, as
    the reference's SAM box-to-mask script does (method §2.3).

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
) -> MemoryBank:
    """Embed reference instances into a memory bank (method §3, §4).

    For each reference: a square crop ``(1 + context_ratio)`` times the box's long side around
    its centre, torch-bicubic to ``reference_size``; the mask cropped the same way and
    bilinearly resized (soft); DINOv2 patch tokens of the crop; the mask nearest-sampled on
    the patch grid; ``ins = sum(m * f) / sum(m)``.

    Args:
        references: the examples; any number per class.
        encoder: the semantic encoder.
        proposer: needed only when some references have no mask (box prompting).
        config: pipeline settings (reference_context_ratio, reference_size).
        class_names: label order of the bank; default: order of first appearance. Every
            class must have at least one reference.
        metadata: free JSON data stored with the bank.
        progress: called as ``progress(done, total)`` after each reference.
        batch_size: crops per encoder call (speed only).

    Raises:
        ValueError: no references, a class without references, a reference of an unknown
            class, or a box-only reference without a proposer.
    """
    config = config or NTTConfig()
    refs = list(references)
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

    index = {n: k for k, n in enumerate(names)}
    return MemoryBank(
        features=torch.stack(features).numpy(),
        class_ids=np.array([index[r.class_name] for r in refs], dtype=np.int64),
        class_names=tuple(names),
        reference_ids=tuple(r.ref_id for r in refs),
        generated_masks=np.array(generated, dtype=bool),
        encoder=dict(encoder.identity),
        settings={
            "reference_context_ratio": config.reference_context_ratio,
            "reference_size": reference_size,
        },
        metadata=dict(metadata or {}),
        created=_now(),
    )
