"""Memory banks, the public path for users (the README's imports, and the parity tests'):
the bank type and its file format (:mod:`fiftyone_ntt.bank_file`) and building one
(:mod:`fiftyone_ntt.bank_build`). Each lives in its own module and the package's own code
imports those; this module only gathers their public names for users, so neither module
imports the other's path back."""

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
