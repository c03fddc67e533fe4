"""Bank keys and files: the folder of all bank files, the key rule and the file of each
version.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import fiftyone as fo

from fiftyone_ntt.fiftyone.dataset.store import root_dataset

BANKS_DIR_ENV = "FIFTYONE_NTT_BANKS_DIR"


_BANK_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def banks_dir() -> Path:
    """The folder holding the bank files of all datasets."""
    env = os.environ.get(BANKS_DIR_ENV)
    if env:
        return Path(env).expanduser()

    return Path(fo.config.default_dataset_dir) / "ntt" / "banks"


def validate_bank_key(key: str) -> str:
    """Return ``key`` if it is a valid bank key, else raise a ValueError saying why."""
    if not isinstance(key, str) or not _BANK_KEY.match(key):
        raise ValueError(
            f"bank key {key!r} is not valid; use 1-100 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return key


def bank_path(collection: Any, key: str, version: int | None = None) -> Path:
    """The file of version ``version`` of bank ``key`` of the collection's dataset (without
    version: the file of a bank built before versions existed)."""
    folder = banks_dir() / str(root_dataset(collection)._doc.id)
    if version is None:
        return folder / f"{validate_bank_key(key)}.safetensors"
    return folder / validate_bank_key(key) / f"v{int(version)}.safetensors"
