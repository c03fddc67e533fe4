"""The semantic vectors behind predictions and banks, for maps and similarity search
(docs/method.md §15).

Every vector here is the L2-normalised pooled feature matching compares (§4, §5): a
prediction's is the one it was matched with (kept with
:attr:`~fiftyone_ntt.config.NTTConfig.keep_features`), a reference's or a negative's is its
bank feature, normalised as :meth:`~fiftyone_ntt.bank_file.MemoryBank.prototypes` and
:meth:`~fiftyone_ntt.bank_file.MemoryBank.negative_vectors` normalise them. Stored vectors
are float16 (:func:`compact`): half the bytes of float32, and the same nearest neighbours
(docs/benchmarks.md, "Embeddings").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the bank module loads torch; labels.py (loaded with the plugin) needs none
    from fiftyone_ntt.bank_file import MemoryBank

__all__ = [
    "NEGATIVE",
    "REFERENCE",
    "STORED_DTYPE",
    "BankVectors",
    "bank_vectors",
    "compact",
    "expand",
]

#: Roles of the bank's entries on a map.
REFERENCE = "reference"
NEGATIVE = "negative"
#: The dtype vectors are stored in.
STORED_DTYPE = np.float16
#: Class name a global negative (not of one class) gets on a map.
_GLOBAL_NAME = "background"


def compact(vectors: np.ndarray) -> np.ndarray:
    """Vectors as stored: float16, contiguous (unit vectors lose ~1e-3 per component)."""
    return np.ascontiguousarray(np.asarray(vectors, dtype=np.float32).astype(STORED_DTYPE))


def expand(vectors: np.ndarray) -> np.ndarray:
    """Stored vectors back as float32 for computing."""
    return np.asarray(vectors, dtype=np.float32)


def _normalised(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


@dataclass(frozen=True)
class BankVectors:
    """Each reference and negative of a bank with its vector, keyed by its label id.

    Attributes:
        ids: the label ids (``bank.reference_ids`` then ``bank.negative_ids``).
        roles: :data:`REFERENCE` or :data:`NEGATIVE` per id.
        labels: class name per id (``"background"`` for a global negative).
        vectors: ``(len(ids), D)`` float32 L2-normalised.
    """

    ids: tuple[str, ...]
    roles: tuple[str, ...]
    labels: tuple[str, ...]
    vectors: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def by_id(self) -> dict[str, np.ndarray]:
        """``{label id: vector}``."""
        return dict(zip(self.ids, self.vectors))


def bank_vectors(bank: MemoryBank) -> BankVectors:
    """The vector of every reference and negative of ``bank``, keyed by its label id (the
    ``ref_id`` it was built from: a FiftyOne label id for banks built from a dataset)."""
    # deferred: the bank module loads torch (a caller with a bank has loaded it already)
    from fiftyone_ntt.bank_file import GLOBAL_NEGATIVE

    names = bank.class_names
    ids = list(bank.reference_ids)
    roles = [REFERENCE] * len(ids)
    labels = [names[c] for c in bank.class_ids.tolist()]
    parts = [_normalised(bank.features)]
    if bank.num_negatives:
        ids += list(bank.negative_ids)
        roles += [NEGATIVE] * bank.num_negatives
        labels += [
            _GLOBAL_NAME if c == GLOBAL_NEGATIVE else names[c]
            for c in bank.negative_class_ids.tolist()
        ]
        parts.append(_normalised(bank.negative_features))
    return BankVectors(tuple(ids), tuple(roles), tuple(labels), np.concatenate(parts))
