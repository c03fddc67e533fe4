"""Memory banks, the public path (the README's imports): the bank type and its file format
(:mod:`fiftyone_ntt.bank_file`) and building one (:mod:`fiftyone_ntt.bank_build`). Each
lives in its own module; this one only gathers them, so neither imports the other's path
back."""

from fiftyone_ntt.bank_build import (
    build_memory_bank,
    embed_references,
    masks_from_boxes,
    split_negatives,
)
from fiftyone_ntt.bank_file import (
    BACKGROUND_LABELS,
    FORMAT_NAME,
    FORMAT_VERSION,
    GLOBAL_NEGATIVE,
    READABLE_VERSIONS,
    BankFormatError,
    EncoderMismatchError,
    MemoryBank,
    now_iso,
)

__all__ = [
    "BACKGROUND_LABELS",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "GLOBAL_NEGATIVE",
    "READABLE_VERSIONS",
    "BankFormatError",
    "EncoderMismatchError",
    "MemoryBank",
    "build_memory_bank",
    "embed_references",
    "masks_from_boxes",
    "now_iso",
    "split_negatives",
]
