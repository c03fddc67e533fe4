"""Memory banks of a dataset: built from its reference-tagged labels, stored as files,
indexed per dataset.

Where things live:

* the bank file (safetensors, :meth:`fiftyone_ntt.memory_bank.MemoryBank.save`) is
  ``<banks dir>/<dataset id>/<bank key>.safetensors``; the banks dir is
  ``$FIFTYONE_NTT_BANKS_DIR`` if set, else ``<fo.config.default_dataset_dir>/ntt/banks``;
* the index is the dataset-scoped execution store ``"ntt"`` (what operators see as
  ``ctx.store("ntt")``), one key ``"bank:<bank key>"`` per bank holding a JSON summary of
  its latest version (classes, shots, negatives, models, file, size, created, fingerprint)
  and one key ``"bankv:<bank key>:<N>"`` per version
  (:mod:`fiftyone_ntt.fiftyone.banks.history`); keys ``"lock:<field>"`` are the claims of
  running segmentations (:mod:`fiftyone_ntt.fiftyone.runs.job`). From Python use
  :func:`list_banks`, :func:`bank_versions`, :func:`get_bank_info`, :func:`load_bank` and
  :func:`delete_bank`.

Every build of a key makes a new version (old ones stay until deleted). References and
negatives are the labels tagged ``"ntt:ref"`` / ``"ntt:neg"`` in the ground-truth field and
in every other ``Detections`` field (accepted / rejected predictions), each recorded with its
field and label id.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from fiftyone_ntt.fiftyone.banks.history import (
    INSTANCE_KEYS,
    all_versions,
    describe_diff,
    shots_text,
    version_entries,
)
from fiftyone_ntt.fiftyone.banks.keys import bank_path
from fiftyone_ntt.fiftyone.dataset.store import BANK_KEY_PREFIX, execution_store, root_dataset

__all__ = [
    "bank_versions",
    "delete_bank",
    "get_bank_info",
    "list_banks",
    "load_bank",
]


def list_banks(collection: Any) -> list[dict[str, Any]]:
    """Summaries of the dataset's banks (their latest versions), sorted by key.

    Each: ``key``, ``version``, ``num_versions``, ``path``, ``classes``, ``shots`` (per
    class), ``num_references``, ``generated_masks``, ``negatives`` (per class),
    ``num_negatives``, ``global_negatives``, ``fields`` (where references and negatives
    came from), ``models`` (encoder and proposer identity), ``preset``, ``config``,
    ``gt_field``, ``tag``, ``size_bytes``, ``created``, ``fingerprint`` and ``exists``
    (whether the file is still there).
    """
    store = execution_store(collection)
    versions = version_entries(store)
    out = []
    for name in sorted(store.list_keys()):
        if name.startswith(BANK_KEY_PREFIX):
            out.append(_with_status(store.get(name) or {}, versions))
    return out


def _with_status(info: dict[str, Any], versions: dict[str, dict[int, str]]) -> dict[str, Any]:
    info = dict(info)
    info.setdefault("version", 1)
    info["num_versions"] = max(1, len(versions.get(info.get("key"), {})))
    info["exists"] = os.path.isfile(info.get("path", ""))
    return info


def get_bank_info(collection: Any, key: str, version: int | None = None) -> dict[str, Any]:
    """The summary of one bank: its latest version, or version ``version`` (see
    :func:`list_banks`; a version's summary has no ``num_versions``).

    Raises:
        KeyError: no bank of that key, or no such version (the message lists what exists).
    """
    store = execution_store(collection)
    info = store.get(BANK_KEY_PREFIX + key)
    if info is None:
        known = [b["key"] for b in list_banks(collection)]
        raise KeyError(
            f"dataset {root_dataset(collection).name!r} has no memory bank {key!r}; known: {known}"
        )
    if version is None:
        return _with_status(info, version_entries(store, key))
    entries = all_versions(store, key, BANK_KEY_PREFIX + key)
    if int(version) not in entries:
        raise KeyError(
            f"memory bank {key!r} has no version {version} (deleted, or never built); "
            f"versions: {sorted(entries)}"
        )
    entry = version_summary(entries[int(version)])
    entry["exists"] = os.path.isfile(entry.get("path", ""))
    return entry


def load_bank(collection: Any, key: str, version: int | None = None):
    """Load bank ``key`` of the dataset (its latest version, or ``version``), a
    :class:`~fiftyone_ntt.memory_bank.MemoryBank` whose ``origin`` names the key, version
    and file (segmentation runs record them)."""

    # deferred: torch loads only when this runs
    from fiftyone_ntt.memory_bank import BankFormatError, MemoryBank

    info = get_bank_info(collection, key, version)
    path = info["path"]
    if not os.path.isfile(path):
        raise BankFormatError(
            f"the file of memory bank {key!r} version {info.get('version', 1)} is missing "
            f"({path}); rebuild the bank (build_bank or 'Build memory bank'), or delete it "
            "from the dataset (delete_bank)"
        )
    try:
        bank = MemoryBank.load(path)
    except BankFormatError as error:
        raise BankFormatError(f"memory bank {key!r}: {error}") from error
    expected = info.get("fingerprint")
    if expected and bank.fingerprint != expected:
        raise BankFormatError(
            f"the file of memory bank {key!r} version {info.get('version', 1)} ({path}) is "
            f"another bank: the dataset's index says fingerprint {expected[:12]}, the file "
            f"holds {bank.fingerprint[:12]} ({bank.num_references} references of "
            f"{list(bank.class_names)}); it was replaced on disk: restore the file (from a "
            "backup, or the bank you copied over it), or rebuild the bank (build_bank or "
            "'Build memory bank')"
        )
    origin = {"bank_key": key, "bank_version": info.get("version", 1), "path": path}
    return dataclasses.replace(bank, origin=origin)


def delete_bank(
    collection: Any, key: str, delete_file: bool = True, version: int | None = None
) -> bool:
    """Remove bank ``key`` (every version, or only ``version``) from the dataset's index,
    and its files. Deleting the latest version makes the previous one the latest.

    A run that has loaded the version keeps running: the bank is in its memory. Returns
    whether something existed.
    """
    store = execution_store(collection)
    pointer = BANK_KEY_PREFIX + key
    entries = all_versions(store, key, pointer)
    names = version_entries(store, key).get(key, {})
    if version is None:
        doomed = list(entries)
    elif int(version) in entries:
        doomed = [int(version)]
    else:
        return False
    if not doomed and store.get(pointer) is None:
        return False
    for v in doomed:
        if delete_file:
            path = Path(entries[v].get("path", ""))
            if path.is_file():
                path.unlink()
        if v in names:
            store.delete(names[v])
    remaining = {v: e for v, e in entries.items() if v not in doomed}
    if version is None:  # also the claims of builds that died before finishing
        for v, name in names.items():
            if v not in entries:
                store.delete(name)
    if remaining:
        latest = remaining[max(remaining)]
        store.set(pointer, version_summary(latest))
    else:
        store.delete(pointer)
        folder = bank_path(collection, key, 1).parent
        if delete_file and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return True


def version_summary(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k not in INSTANCE_KEYS}


def latest_version(store: Any, key: str) -> int:
    entries = all_versions(store, key, BANK_KEY_PREFIX + key)
    claimed = version_entries(store, key).get(key, {})
    return max([0, *entries, *claimed])


def bank_versions(collection: Any, key: str) -> list[dict[str, Any]]:
    """Every version of bank ``key`` of the collection's dataset, oldest first.

    Each: ``version``, ``created``, ``classes``, ``shots``, ``shots_text`` (classes ×
    shots), ``num_references``, ``num_negatives``, ``negatives`` (per class),
    ``global_negatives``, ``fields``, ``models``, ``size_bytes``, ``path``, ``exists``,
    ``fingerprint``, ``latest`` and ``diff`` against the previous version that still exists
    (see :func:`describe_diff`).

    Raises:
        KeyError: no bank ``key`` on this dataset.
    """
    store = execution_store(collection)
    entries = all_versions(store, key, BANK_KEY_PREFIX + key)
    if not entries:
        get_bank_info(collection, key)  # raises the KeyError listing the known keys
    latest = max(entries)
    out = []
    previous = None
    for version in sorted(entries):
        entry = entries[version]
        row = {k: v for k, v in entry.items() if k not in INSTANCE_KEYS}
        row["version"] = version
        row["shots_text"] = shots_text(entry.get("shots") or {})
        row.setdefault("num_negatives", 0)
        row.setdefault("negatives", {})
        row.setdefault("global_negatives", 0)
        row["exists"] = os.path.isfile(entry.get("path", ""))
        row["latest"] = version == latest
        row["diff"] = describe_diff(previous, entry)
        out.append(row)
        previous = entry
    return out
