"""Versions of a dataset's memory banks: every build of a key is a new version.

Index entries in the dataset's execution store ``"ntt"``:

* ``"bank:<key>"``: the summary of the latest version (what :func:`list_banks` shows and
  :func:`load_bank` loads by default), with ``version``;
* ``"bankv:<key>:<N>"``: the summary of version ``N``, plus ``reference_ids`` and
  ``negative_ids`` (``{label id: field}``), from which the differences between versions are
  computed.

Files: version ``N`` of ``key`` is ``<banks dir>/<dataset id>/<key>/v<N>.safetensors``. A bank
built before versions existed has only ``"bank:<key>"`` and the file
``<banks dir>/<dataset id>/<key>.safetensors``: it reads as version 1, and the next build
makes version 2. Old versions stay until deleted (:func:`delete_bank` with ``version``).
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any

__all__ = [
    "INSTANCE_KEYS",
    "describe_diff",
    "instance_contents",
    "version_entries",
    "version_store_key",
]

#: Keys of a version entry that list its instances (left out of summaries).
INSTANCE_KEYS = ("reference_ids", "negative_ids", "reference_labels", "reference_digests")

VERSION_PREFIX = "bankv:"
_VERSION_KEY = re.compile(r"^bankv:(?P<key>.+):(?P<version>\d+)$")


def version_store_key(key: str, version: int) -> str:
    return f"{VERSION_PREFIX}{key}:{int(version)}"


def version_entries(store: Any, key: str | None = None) -> dict[str, dict[int, str]]:
    """``{bank key: {version: store key}}`` of the version entries in the store."""
    out: dict[str, dict[int, str]] = {}
    for name in store.list_keys():
        match = _VERSION_KEY.match(name)
        if match and (key is None or match["key"] == key):
            out.setdefault(match["key"], {})[int(match["version"])] = name
    return out


def instance_contents(bank: Any) -> dict[str, dict[str, str]]:
    """``reference_labels`` (``{id: class}``) and ``reference_digests`` (``{id: hash of its
    feature}``, which changes with its mask, box or image) of a bank's references: what
    :func:`describe_diff` compares between versions of the same reference ids."""
    labels, digests = {}, {}
    for ref_id, class_id, feature in zip(bank.reference_ids, bank.class_ids, bank.features):
        labels[ref_id] = bank.class_names[int(class_id)]
        digests[ref_id] = hashlib.sha256(feature.tobytes()).hexdigest()[:16]
    return {"reference_labels": labels, "reference_digests": digests}


def _changes(previous: dict[str, Any], current: dict[str, Any]) -> tuple[dict[str, Any], list]:
    """Renamed classes, relabelled and changed references between two entries (for the
    reference ids in both)."""
    before, after = previous.get("reference_labels"), current.get("reference_labels")
    if before is None or after is None:  # an entry of an older version of this code
        return {"renamed": {}, "relabelled": {}, "changed": []}, []
    common = [r for r in after if r in before]
    moves: dict[str, set[str]] = {}
    for r in common:
        moves.setdefault(before[r], set()).add(after[r])
    old_classes, new_classes = set(before.values()), set(after.values())
    renamed = {
        old: next(iter(new))
        for old, new in moves.items()
        if len(new) == 1
        and old not in new
        and old not in new_classes
        and next(iter(new)) not in old_classes
    }
    relabelled = {
        r: (before[r], after[r])
        for r in common
        if before[r] != after[r] and before[r] not in renamed
    }
    d1, d2 = previous.get("reference_digests") or {}, current.get("reference_digests") or {}
    changed = [r for r in common if r in d1 and r in d2 and d1[r] != d2[r]]
    parts = [f"class {old!r} renamed to {new!r}" for old, new in renamed.items()]
    if relabelled:
        pairs = sorted({f"{a!r} → {b!r}" for a, b in relabelled.values()})
        n = len(relabelled)
        parts.append(f"{n} {_plural(n, 'reference')} relabelled ({', '.join(pairs)})")
    if changed:
        n = len(changed)
        parts.append(f"{n} {_plural(n, 'reference')} changed (mask, box or image)")
    return {"renamed": renamed, "relabelled": relabelled, "changed": changed}, parts


def _plural(n: int, word: str) -> str:
    return f"{word}{'' if n == 1 else 's'}"


def describe_diff(previous: dict[str, Any] | None, current: dict[str, Any]) -> dict[str, Any]:
    """What changed from ``previous`` to ``current`` (version entries with ids).

    Returns:
        ``references_added``, ``references_removed``, ``negatives_added``,
        ``negatives_removed`` and ``text``, e.g. ``"+3 references, −1, +2 negatives"``
        (``"first version"``, ``"same references and negatives"``).
    """
    if previous is None:
        return {
            "references_added": len(current.get("reference_ids") or {}),
            "references_removed": 0,
            "negatives_added": len(current.get("negative_ids") or {}),
            "negatives_removed": 0,
            "text": "first version",
        }
    out: dict[str, Any] = {}
    parts = []
    for kind, word in (("reference", "reference"), ("negative", "negative")):
        before = set(previous.get(f"{kind}_ids") or {})
        after = set(current.get(f"{kind}_ids") or {})
        added, removed = len(after - before), len(before - after)
        out[f"{kind}s_added"], out[f"{kind}s_removed"] = added, removed
        tokens = []
        if added:
            tokens.append(f"+{added} {_plural(added, word)}")
        if removed:
            tokens.append(f"−{removed}" if tokens else f"−{removed} {_plural(removed, word)}")
        parts += tokens
    changes, more = _changes(previous, current)
    out["classes_renamed"] = changes["renamed"]
    out["references_relabelled"] = len(changes["relabelled"])
    out["references_changed"] = len(changes["changed"])
    parts += more
    if current.get("note"):  # e.g. "thresholds from eval 'ev'" (banks/thresholds.py)
        parts.append(str(current["note"]))
    out["text"] = ", ".join(parts) if parts else "same references and negatives"
    return out


def shots_text(shots: dict[str, int]) -> str:
    """``"3 × 1"`` (classes × shots), ``"3 × 1–4"`` when classes differ."""
    if not shots:
        return "0"
    low, high = min(shots.values()), max(shots.values())
    return f"{len(shots)} × {low}" if low == high else f"{len(shots)} × {low}–{high}"


def _legacy_entry(info: dict[str, Any]) -> dict[str, Any]:
    """A bank built before versions, as version 1 (ids read from its file, if any)."""
    entry = dict(info, version=1)
    path = info.get("path", "")
    if os.path.isfile(path):
        try:
            from fiftyone_ntt.memory_bank import MemoryBank

            bank = MemoryBank.load(path)
            field = info.get("gt_field")
            entry["reference_ids"] = {r: field for r in bank.reference_ids}
            entry["negative_ids"] = {r: field for r in bank.negative_ids}
        except ValueError:
            pass
    return entry


def all_versions(store: Any, key: str, pointer_key: str) -> dict[int, dict[str, Any]]:
    """``{version: entry}`` of bank ``key`` (a pre-version bank as version 1)."""
    entries = {}
    for version, name in version_entries(store, key).get(key, {}).items():
        entry = store.get(name)
        if entry and entry.get("fingerprint"):  # not a build still claiming its number
            entries[version] = dict(entry)
    if not entries:
        info = store.get(pointer_key)
        if info is not None and "version" not in info:
            entries[1] = _legacy_entry(info)
    return entries
