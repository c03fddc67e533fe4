"""The memory bank type and its file (public path: :mod:`fiftyone_ntt.memory_bank`): one pooled DINOv2 feature per reference instance (docs/method.md §3, §4;
built by :mod:`fiftyone_ntt.bank_build`): the soft-mask-weighted mean ``ins_avg[c, k]``
(§4.1), the only quantity inference uses of the reference's patch tokens, with class names,
reference ids, which masks came from boxes, the encoder identity, the settings, a format
version and a content fingerprint. Negatives (an extension, not in the paper) are embedded
like references and stored beside them, with their class or none
(:func:`fiftyone_ntt.matching.suppressed_by_negatives`); a bank without them behaves and
fingerprints as before. File format 1 (references only) is still read; 2 adds negatives."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fiftyone_ntt.files import atomic_write

__all__ = [
    "BACKGROUND_LABELS",
    "FORMAT_VERSION",
    "GLOBAL_NEGATIVE",
    "BankFormatError",
    "EncoderMismatchError",
    "MemoryBank",
    "now_iso",
]

FORMAT_NAME = "fiftyone-ntt-memory-bank"
FORMAT_VERSION = 2
#: Versions :meth:`MemoryBank.load` reads (1: before negatives existed).
READABLE_VERSIONS = (1, 2)
#: ``negative_class_ids`` value of a global ("background") negative.
GLOBAL_NEGATIVE = -1
#: Negatives labelled with one of these (and not a class of the bank) are global negatives.
BACKGROUND_LABELS = ("background",)

#: Encoder identity keys that must agree between a bank and the encoder that uses it. The
#: ``source`` (hub id or file path) may differ for the same weights and only warns.
_ENCODER_KEYS = ("family", "arch", "feature_dim", "patch_size", "registers")


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
        negative_features: ``(N, D)`` float32 pooled features of the negatives, computed
            like ``features``; ``None`` means none.
        negative_class_ids: ``(N,)`` int64 class of each negative, or
            :data:`GLOBAL_NEGATIVE` (-1) for a global negative.
        negative_ids: ``N`` stable ids of the negative instances (distinct from
            ``reference_ids``).
        origin: where this copy was loaded from (e.g. a dataset's bank key and version);
            not saved, not part of the content or the fingerprint.
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
    negative_features: np.ndarray | None = None
    negative_class_ids: np.ndarray | None = None
    negative_ids: tuple[str, ...] = ()
    origin: dict[str, Any] = field(default_factory=dict, compare=False)

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
        self._check_negatives(features.shape[1], len(names))
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "class_ids", class_ids)
        object.__setattr__(self, "generated_masks", generated)
        object.__setattr__(self, "class_names", names)
        object.__setattr__(self, "reference_ids", tuple(str(r) for r in self.reference_ids))

    def _check_negatives(self, dim: int, num_classes: int) -> None:
        ids = tuple(str(r) for r in self.negative_ids)
        if self.negative_features is None:
            negatives = np.zeros((0, dim), dtype=np.float32)
        else:
            negatives = np.ascontiguousarray(self.negative_features, dtype=np.float32)
        if negatives.ndim != 2 or negatives.shape[1] != dim:
            raise ValueError(
                f"negative features must be (N, {dim}) like the references, got shape "
                f"{negatives.shape}"
            )
        n = len(negatives)
        if self.negative_class_ids is None:
            classes = np.full(n, GLOBAL_NEGATIVE, dtype=np.int64)
        else:
            classes = np.asarray(self.negative_class_ids, dtype=np.int64).reshape(-1)
        if len(classes) != n or len(ids) != n:
            raise ValueError(
                f"{n} negative features but {len(classes)} negative class ids and "
                f"{len(ids)} negative ids"
            )
        if len(set(ids)) != n:
            raise ValueError("negative ids must be unique within a bank")
        both = sorted(set(ids) & {str(r) for r in self.reference_ids})
        if both:
            raise ValueError(
                f"instances {both[:5]} are both references and negatives; an instance is one "
                "or the other: untag one of the two"
            )
        if n and (classes.min() < GLOBAL_NEGATIVE or classes.max() >= num_classes):
            raise ValueError(
                f"negative class ids {sorted(set(classes.tolist()))} out of range for "
                f"{num_classes} classes (-1 is a global negative)"
            )
        if not np.isfinite(negatives).all():
            raise ValueError("negative features contain NaN or infinity")
        object.__setattr__(self, "negative_features", negatives)
        object.__setattr__(self, "negative_class_ids", classes)
        object.__setattr__(self, "negative_ids", ids)

    # ----------------------------------------------------------------------------- queries
    @property
    def num_references(self) -> int:
        return len(self.features)

    @property
    def feature_dim(self) -> int:
        return int(self.features.shape[1])

    @property
    def num_negatives(self) -> int:
        return len(self.negative_ids)

    def negatives_per_class(self) -> dict[str, int]:
        """Number of class negatives of each class that has some, in class order; global
        negatives are counted by :attr:`num_global_negatives`."""
        ids = self.negative_class_ids[self.negative_class_ids >= 0]
        counts = np.bincount(ids, minlength=len(self.class_names))
        return {name: int(c) for name, c in zip(self.class_names, counts) if c}

    @property
    def num_global_negatives(self) -> int:
        return int((self.negative_class_ids == GLOBAL_NEGATIVE).sum())

    def negative_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The negatives as matching uses them.

        Returns:
            ``(vectors, class_ids)``: ``(N, D)`` float32 L2-normalised features (each
            negative on its own: negatives are never averaged) and ``(N,)`` int64 classes
            (-1: global).
        """
        vectors = F.normalize(torch.from_numpy(self.negative_features), dim=1)
        return vectors, torch.from_numpy(self.negative_class_ids)

    def shots_per_class(self) -> dict[str, int]:
        """Number of references of each class, in class order."""
        counts = np.bincount(self.class_ids, minlength=len(self.class_names))
        return {name: int(c) for name, c in zip(self.class_names, counts)}

    def prototypes(self) -> torch.Tensor:
        """Class prototypes ``P_c = normalize(mean_k ins_avg[c, k])`` (docs/method.md §4).

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
        if self.num_negatives:
            # only when there are negatives: older banks keep their fingerprint
            digest.update(self.negative_features.tobytes())
            digest.update(self.negative_class_ids.tobytes())
            digest.update(json.dumps(list(self.negative_ids)).encode())
        return digest.hexdigest()

    def check_encoder(self, identity: dict[str, Any], feature_dim: int | None = None) -> None:
        """Refuse to use this bank with an encoder other than the one that built it.

        Args:
            identity: the encoder's identity (``encoder.identity``).
            feature_dim: the width of the encoder's features (``encoder.feature_dim``);
                default the identity's ``feature_dim``. The bank's own features must have
                that width, whatever its encoder record says: otherwise matching fails in a
                matrix product, far from the cause.

        Raises:
            EncoderMismatchError: names both encoders (and widths) and the fix.
        """
        width = identity.get("feature_dim") if feature_dim is None else feature_dim
        widths_differ = width is not None and int(width) != self.feature_dim
        ours = {k: self.encoder.get(k) for k in _ENCODER_KEYS}
        theirs = {k: identity.get(k) for k in _ENCODER_KEYS}
        if ours != theirs:
            # Another encoder: name both first (the usual case, and the fix is the same
            # whatever the widths); add the widths when they differ too.
            widths = (
                f" ({self.feature_dim}-wide features here, {int(width)}-wide from the encoder)"
                if widths_differ
                else ""
            )
            raise EncoderMismatchError(
                f"memory bank was built with {_describe(self.encoder)} but the segmenter uses "
                f"{_describe(identity)}{widths}; rebuild the bank with this encoder or choose "
                f"{self.encoder.get('source', _describe(self.encoder))}"
            )
        if widths_differ:
            # Same encoder record, other width: the record does not describe the features.
            raise EncoderMismatchError(
                f"memory bank{self._where()} holds {self.feature_dim}-wide features (built with "
                f"{_describe(self.encoder)}) but the encoder in use, {_describe(identity)}, "
                f"gives {int(width)}-wide features; rebuild the bank with this encoder, or use "
                f"the encoder that built it ({self.encoder.get('source', '?')})"
            )
        if self.encoder.get("source") != identity.get("source"):
            warnings.warn(
                f"memory bank was built from {self.encoder.get('source')!r}, the encoder was "
                f"loaded from {identity.get('source')!r}; same architecture, so make sure the "
                "weights are the same",
                stacklevel=2,
            )

    def _where(self) -> str:
        path = self.origin.get("path")
        return f" {str(path)!r}" if path else ""

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
        other_neg = other.negative_class_ids
        other_neg = np.where(other_neg >= 0, remap[np.maximum(other_neg, 0)], GLOBAL_NEGATIVE)
        return MemoryBank(
            features=np.concatenate([self.features, other.features]),
            class_ids=np.concatenate([self.class_ids, remap[other.class_ids]]),
            class_names=tuple(names),
            reference_ids=self.reference_ids + other.reference_ids,
            generated_masks=np.concatenate([self.generated_masks, other.generated_masks]),
            encoder=dict(self.encoder),
            settings=dict(self.settings),
            metadata={**other.metadata, **self.metadata},
            created=now_iso(),
            negative_features=np.concatenate([self.negative_features, other.negative_features]),
            negative_class_ids=np.concatenate([self.negative_class_ids, other_neg]),
            negative_ids=self.negative_ids + other.negative_ids,
        )

    def without(self, reference_ids: Iterable[str]) -> MemoryBank:
        """A new bank without some references or negatives (by id); classes left without
        reference are dropped, with their negatives."""
        drop = {str(r) for r in reference_ids}
        unknown = drop - set(self.reference_ids) - set(self.negative_ids)
        if unknown:
            raise KeyError(f"reference ids {sorted(unknown)} are not in this bank")
        keep = np.array([r not in drop for r in self.reference_ids], dtype=bool)
        used = sorted(set(self.class_ids[keep].tolist()))
        remap = {old: new for new, old in enumerate(used)}
        remap[GLOBAL_NEGATIVE] = GLOBAL_NEGATIVE
        keep_neg = np.array(
            [
                r not in drop and int(c) in remap
                for r, c in zip(self.negative_ids, self.negative_class_ids)
            ],
            dtype=bool,
        ).reshape(-1)
        return MemoryBank(
            features=self.features[keep],
            class_ids=np.array([remap[c] for c in self.class_ids[keep].tolist()], dtype=np.int64),
            class_names=tuple(self.class_names[i] for i in used),
            reference_ids=tuple(r for r, k in zip(self.reference_ids, keep) if k),
            generated_masks=self.generated_masks[keep],
            encoder=dict(self.encoder),
            settings=dict(self.settings),
            metadata=dict(self.metadata),
            created=now_iso(),
            negative_features=self.negative_features[keep_neg],
            negative_class_ids=np.array(
                [remap[int(c)] for c in self.negative_class_ids[keep_neg]], dtype=np.int64
            ),
            negative_ids=tuple(r for r, k in zip(self.negative_ids, keep_neg) if k),
        )

    # --------------------------------------------------------------------------- file I/O
    def save(self, path: str | os.PathLike) -> Path:
        """Write the bank to one safetensors file (atomically). Returns the path."""
        from safetensors.numpy import save

        path = Path(path)
        header = {
            "class_names": list(self.class_names),
            "reference_ids": list(self.reference_ids),
            "encoder": self.encoder,
            "settings": self.settings,
            "metadata": self.metadata,
            "created": self.created,
            "fingerprint": self.fingerprint,
            "negative_ids": list(self.negative_ids),
        }
        tensors = {
            "features": self.features,
            "class_ids": self.class_ids,
            "generated_masks": self.generated_masks.astype(np.uint8),
            "negative_features": self.negative_features,
            "negative_class_ids": self.negative_class_ids,
        }
        metadata = {
            "format": FORMAT_NAME,
            "format_version": str(FORMAT_VERSION),
            "bank": json.dumps(header),
        }
        # save() to bytes, not save_file(): safetensors >= 0.8 creates the file with mode
        # 0o600, whatever the umask (issue 19.10); a bank is a few MB.
        data = save(tensors, metadata=metadata)
        with atomic_write(path) as tmp:
            tmp.write_bytes(data)
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
        if version not in {str(v) for v in READABLE_VERSIONS}:
            raise BankFormatError(
                f"memory bank {str(path)!r} has format version {version}, this fiftyone-ntt "
                f"reads versions {READABLE_VERSIONS[0]} to {FORMAT_VERSION}; rebuild the bank "
                "with this version"
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
                # version 1 has no negatives: None gives an empty set
                negative_features=tensors.get("negative_features"),
                negative_class_ids=tensors.get("negative_class_ids"),
                negative_ids=tuple(header.get("negative_ids", ())),
                origin={"path": str(path)},
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
        recorded = bank.encoder.get("feature_dim") if isinstance(bank.encoder, dict) else None
        if recorded is not None and recorded != bank.feature_dim:
            raise BankFormatError(
                f"memory bank {str(path)!r} holds {bank.feature_dim}-wide features but records "
                f"its encoder as {_describe(bank.encoder)} ({recorded}-wide); the file was "
                "written inconsistently: rebuild the bank"
            )
        return bank


def _describe(identity: dict[str, Any]) -> str:
    parts = [str(identity.get("family", "?")), str(identity.get("arch", "?"))]
    if identity.get("registers"):
        parts.append(f"reg{identity['registers']}")
    parts.append(f"dim {identity.get('feature_dim', '?')}")
    return " ".join(parts)


def now_iso() -> str:
    """The current UTC time as an ISO string (seconds), the ``created`` of a bank."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
