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
  (:mod:`fiftyone_ntt.fiftyone.bank_history`); keys ``"lock:<field>"`` are the claims of
  running segmentations (:mod:`fiftyone_ntt.fiftyone.segment`). From Python use
  :func:`list_banks`, :func:`bank_versions`, :func:`get_bank_info`, :func:`load_bank` and
  :func:`delete_bank`.

Every build of a key makes a new version (old ones stay until deleted). References and
negatives are the labels tagged ``"ntt:ref"`` / ``"ntt:neg"`` in the ground-truth field and
in every other ``Detections`` field (accepted / rejected predictions), each recorded with its
field and label id.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fiftyone_ntt.config import NTTConfig, get_preset
from fiftyone_ntt.fiftyone.bank_history import (
    INSTANCE_KEYS,
    all_versions,
    bank_versions,
    instance_contents,
    version_entries,
    version_store_key,
)
from fiftyone_ntt.fiftyone.bank_inputs import validate_build
from fiftyone_ntt.fiftyone.references import (
    DEFAULT_REFERENCE_TAG,
    NEG_TAG,
)

__all__ = [
    "BANKS_DIR_ENV",
    "STORE_NAME",
    "bank_path",
    "bank_versions",
    "banks_dir",
    "build_bank",
    "delete_bank",
    "get_bank_info",
    "list_banks",
    "load_bank",
    "validate_bank_key",
    "validate_build",
]

BANKS_DIR_ENV = "FIFTYONE_NTT_BANKS_DIR"
STORE_NAME = "ntt"
_KEY_PREFIX = "bank:"
_BANK_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def _dataset(collection: Any) -> Any:
    return collection._root_dataset


def _store(collection: Any) -> Any:
    from fiftyone.operators.store import ExecutionStore

    return ExecutionStore.create(STORE_NAME, _dataset(collection)._doc.id)


def banks_dir() -> Path:
    """The folder holding the bank files of all datasets."""
    env = os.environ.get(BANKS_DIR_ENV)
    if env:
        return Path(env).expanduser()
    import fiftyone as fo

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
    folder = banks_dir() / str(_dataset(collection)._doc.id)
    if version is None:
        return folder / f"{validate_bank_key(key)}.safetensors"
    return folder / validate_bank_key(key) / f"v{int(version)}.safetensors"


def list_banks(collection: Any) -> list[dict[str, Any]]:
    """Summaries of the dataset's banks (their latest versions), sorted by key.

    Each: ``key``, ``version``, ``num_versions``, ``path``, ``classes``, ``shots`` (per
    class), ``num_references``, ``generated_masks``, ``negatives`` (per class),
    ``num_negatives``, ``global_negatives``, ``fields`` (where references and negatives
    came from), ``models`` (encoder and proposer identity), ``preset``, ``config``,
    ``gt_field``, ``tag``, ``size_bytes``, ``created``, ``fingerprint`` and ``exists``
    (whether the file is still there).
    """
    store = _store(collection)
    versions = version_entries(store)
    out = []
    for name in sorted(store.list_keys()):
        if name.startswith(_KEY_PREFIX):
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
    store = _store(collection)
    info = store.get(_KEY_PREFIX + key)
    if info is None:
        known = [b["key"] for b in list_banks(collection)]
        raise KeyError(
            f"dataset {_dataset(collection).name!r} has no memory bank {key!r}; known: {known}"
        )
    if version is None:
        return _with_status(info, version_entries(store, key))
    entries = all_versions(store, key, _KEY_PREFIX + key)
    if int(version) not in entries:
        raise KeyError(
            f"memory bank {key!r} has no version {version} (deleted, or never built); "
            f"versions: {sorted(entries)}"
        )
    entry = _summary(entries[int(version)])
    entry["exists"] = os.path.isfile(entry.get("path", ""))
    return entry


def load_bank(collection: Any, key: str, version: int | None = None):
    """Load bank ``key`` of the dataset (its latest version, or ``version``), a
    :class:`~fiftyone_ntt.memory_bank.MemoryBank` whose ``origin`` names the key, version
    and file (segmentation runs record them)."""
    import dataclasses

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
    store = _store(collection)
    pointer = _KEY_PREFIX + key
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
        store.set(pointer, _summary(latest))
    else:
        store.delete(pointer)
        folder = bank_path(collection, key, 1).parent
        if delete_file and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return True


def _summary(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k not in INSTANCE_KEYS}


def _latest_version(store: Any, key: str) -> int:
    entries = all_versions(store, key, _KEY_PREFIX + key)
    claimed = version_entries(store, key).get(key, {})
    return max([0, *entries, *claimed])


def build_bank(
    collection: Any,
    gt_field: str | None,
    bank_key: str,
    *,
    tag: str = DEFAULT_REFERENCE_TAG,
    classes: Sequence[str] | None = None,
    preset: str = "default",
    config: NTTConfig | None = None,
    device: str | None = None,
    encoder: Any = None,
    proposer: Any = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    fields: Sequence[str] | None = None,
    neg_tag: str = NEG_TAG,
    version: int | None = None,
    background_labels: Sequence[str] | None = None,
    skip_invalid_annotations: bool = False,
) -> dict[str, Any]:
    """Build a new version of memory bank ``bank_key`` from the tagged labels and index it.

    References are the labels tagged ``tag`` (``"ntt:ref"``), negatives those tagged
    ``neg_tag`` (``"ntt:neg"``), in the source fields: ``fields`` if given, else
    ``gt_field`` and every other ``Detections`` field holding such a tag (accepted and
    rejected predictions). References without instance mask get one from SAM 2 box
    prompting. A negative of a class with no reference (and not a background label) has
    nothing to suppress: it is skipped, counted in ``skipped_negatives`` and warned about.
    Each image is read once.

    Args:
        collection: dataset or view holding the references.
        gt_field: the ground-truth ``Detections`` field (recorded with the bank; None when
            ``fields`` are given and there is none).
        bank_key: name of the bank on this dataset.
        tag, neg_tag: the reference and negative tags.
        classes: the bank's classes in label order (default: all tagged, in order of
            appearance); each needs a reference.
        preset: configuration preset (``fiftyone_ntt.config.PRESETS``), unless ``config``.
        config: full configuration (stored with the bank; segmentation reuses it).
        device: compute device (overrides the config's).
        encoder, proposer: model instances to use instead of loading the configured ones.
        overwrite: replace the latest version (or ``version``) instead of adding one.
        progress: ``progress(done, total)`` per instance.
        fields: the source fields (default: see above).
        version: the version number to write (default: the latest + 1).
        background_labels: labels whose negatives are global (default
            :data:`fiftyone_ntt.memory_bank.BACKGROUND_LABELS`).
        skip_invalid_annotations: leave out the tagged labels that cannot be used (no
            label, a NaN / zero-area / outside box, an empty mask: see
            :func:`~fiftyone_ntt.fiftyone.references.invalid_references`) instead of
            refusing the build; they are listed in ``skipped_references`` and warned about.

    A label tagged in several fields (a cloned field keeps label ids) is one reference when
    its copies agree (listed in ``duplicate_references``) and refused when they differ.

    Returns:
        The version's summary (see :func:`list_banks`), with ``skipped_negatives``,
        ``skipped_references`` (``sample_id``, ``label_id``, ``field``, ``reason`` of each),
        ``duplicate_references`` (``{label id: fields}``) and ``diff`` (against the previous
        version).

    Raises:
        ValueError: invalid field, key, classes, version, or no references (the message
            says which).
    """
    from fiftyone_ntt.fiftyone.bank_history import describe_diff
    from fiftyone_ntt.fiftyone.bank_inputs import (
        collect_instances,
        duplicated_labels,
        source_fields,
    )
    from fiftyone_ntt.fiftyone.models import get_models, model_identity, test_models
    from fiftyone_ntt.fiftyone.references import invalid_references
    from fiftyone_ntt.memory_bank import BACKGROUND_LABELS, build_memory_bank, split_negatives

    background = tuple(BACKGROUND_LABELS if background_labels is None else background_labels)
    invalid: list[dict[str, Any]] = []
    duplicates: dict[str, list[str]] = {}
    _, problems = validate_build(
        collection,
        gt_field,
        tag=tag,
        classes=classes,
        bank_key=bank_key,
        overwrite=overwrite,
        fields=fields,
        neg_tag=neg_tag,
        version=version,
        skip_invalid_annotations=skip_invalid_annotations,
    )
    if problems:
        raise ValueError("; ".join(message for _, message in problems))
    config = config or get_preset(preset)
    if device:
        config = config.replace(models={"device": device})
    if getattr(collection, "media_type", None) == "video":
        # references from frame labels: frames.<gt_field>
        from fiftyone_ntt.fiftyone.video import collect_frame_instances

        gt_field = "frames." + gt_field.removeprefix("frames.")
        sources = [gt_field]
        positives, negatives, where = collect_frame_instances(
            collection, gt_field, tag, neg_tag, classes=classes
        )
    else:
        sources = source_fields(collection, gt_field, fields, (tag, neg_tag))
        if skip_invalid_annotations:
            invalid = invalid_references(collection, sources, (tag, neg_tag))
        duplicates, _ = duplicated_labels(collection, sources, (tag, neg_tag))
        positives, negatives, where = collect_instances(
            collection,
            sources,
            tag,
            neg_tag,
            classes=classes,
            skip_ids={p["label_id"] for p in invalid},
        )
        if invalid:
            warnings.warn(
                f"bank {bank_key!r}: skipped {len(invalid)} tagged label(s) that cannot be "
                f"used: {'; '.join(p['message'] for p in invalid[:10])}",
                stacklevel=2,
            )
    names = list(classes) if classes else list(dict.fromkeys(r.class_name for r in positives))
    negatives, skipped = split_negatives(negatives, names, background)
    if skipped:
        warnings.warn(
            f"bank {bank_key!r}: negatives of classes {sorted(skipped)} were skipped: no "
            "reference of those classes; tag references of them, or untag the negatives",
            stacklevel=2,
        )
    if encoder is None or proposer is None:
        loaded = get_models(config.models)
        encoder = encoder or loaded[0]
        proposer = proposer or loaded[1]

    dataset = _dataset(collection)
    stored_config = bank_config(config, encoder, proposer)
    mode = test_models()
    bank = build_memory_bank(
        positives,
        encoder,
        proposer,
        config=config,
        class_names=names,
        metadata={
            "dataset": dataset.name,
            "gt_field": gt_field,
            "fields": sources,
            "tag": tag,
            "neg_tag": neg_tag,
            "preset": preset,
            "config": stored_config,
            "models": model_identity(encoder, proposer),
            "reference_fields": {r.ref_id: where[r.ref_id] for r in positives},
            "negative_fields": {n.ref_id: where[n.ref_id] for n in negatives},
        },
        progress=progress,
        negatives=negatives,
        background_labels=background,
    )

    store = _store(collection)
    pointer = _KEY_PREFIX + bank_key
    entries = all_versions(store, bank_key, pointer)
    if entries and not version_entries(store, bank_key).get(bank_key):
        # a bank built before versions: keep it as version 1
        store.set(version_store_key(bank_key, 1), entries[1])
    number = _claim_version(store, bank_key, version, overwrite)
    try:
        path = bank.save(bank_path(collection, bank_key, number))
        info = {
            "key": bank_key,
            "version": number,
            "path": str(path),
            "classes": list(bank.class_names),
            "shots": bank.shots_per_class(),
            "num_references": bank.num_references,
            "generated_masks": int(bank.generated_masks.sum()),
            "negatives": bank.negatives_per_class(),
            "num_negatives": bank.num_negatives,
            "global_negatives": bank.num_global_negatives,
            "skipped_negatives": skipped,
            "skipped_references": [
                {k: p[k] for k in ("sample_id", "label_id", "field", "reason")} for p in invalid
            ],
            "duplicate_references": duplicates,
            "fields": _field_counts(bank, where),
            "models": model_identity(encoder, proposer),
            "preset": preset,
            "config": stored_config,
            "gt_field": gt_field,
            "tag": tag,
            "neg_tag": neg_tag,
            "size_bytes": path.stat().st_size,
            "created": bank.created,
            "fingerprint": bank.fingerprint,
            "test_models": mode,
        }
        entry = dict(
            info,
            reference_ids={r: where[r] for r in bank.reference_ids},
            negative_ids={r: where[r] for r in bank.negative_ids},
            **instance_contents(bank),
        )
        store.set(version_store_key(bank_key, number), entry)
    except BaseException:
        if not (store.get(version_store_key(bank_key, number)) or {}).get("fingerprint"):
            store.delete(version_store_key(bank_key, number))
        raise
    entries = all_versions(store, bank_key, pointer)
    older = [v for v in entries if v < number]
    info["diff"] = describe_diff(entries[max(older)] if older else None, entry)
    latest = max(entries)
    store.set(pointer, _summary(entries[latest]))
    info["exists"] = True
    info["num_versions"] = len(entries)
    return info


def bank_config(config: Any, encoder: Any, proposer: Any) -> dict[str, Any]:
    """The configuration a bank built with ``config`` and these models stores (and that a
    reuse check must compare with): the device is left out, so the same references give the
    same fingerprint on any device; in test-model mode the models that really ran replace
    the preset's names, which name weights that did not run."""
    from fiftyone_ntt.fiftyone.models import model_identity, test_models

    stored = config.to_dict()
    stored["models"]["device"] = "auto"
    mode = test_models()
    if mode:
        identity = model_identity(encoder, proposer)
        stored["models"]["sam2"] = str(identity["proposer"].get("source", mode))
        stored["models"]["dinov2"] = str(identity["encoder"].get("source", mode))
    return stored


def _claim_version(store: Any, key: str, version: int | None, overwrite: bool) -> int:
    """Reserve the version number this build writes (concurrent builds get distinct ones)."""
    if version is not None:
        name = version_store_key(key, version)
        if overwrite or store.set_if_absent(name, {"building": True}):
            return int(version)
        raise ValueError(f"version {version} of bank {key!r} exists already")
    latest = _latest_version(store, key)
    if overwrite and latest:
        return latest
    for number in range(latest + 1, latest + 100):
        if store.set_if_absent(version_store_key(key, number), {"building": True}):
            return number
    raise RuntimeError(f"could not reserve a new version of bank {key!r}; try again")


def _field_counts(bank: Any, where: dict[str, str]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for kind, ids in (("references", bank.reference_ids), ("negatives", bank.negative_ids)):
        for ref_id in ids:
            counts = out.setdefault(where[ref_id], {"references": 0, "negatives": 0})
            counts[kind] += 1
    return out
