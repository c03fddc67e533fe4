"""Memory banks of a dataset: built from its reference-tagged labels, stored as files,
indexed per dataset.

Where things live:

* the bank file (safetensors, :meth:`fiftyone_ntt.memory_bank.MemoryBank.save`) is
  ``<banks dir>/<dataset id>/<bank key>.safetensors``; the banks dir is
  ``$FIFTYONE_NTT_BANKS_DIR`` if set, else ``<fo.config.default_dataset_dir>/ntt/banks``;
* the index is the dataset-scoped execution store ``"ntt"`` (what operators see as
  ``ctx.store("ntt")``), one key ``"bank:<bank key>"`` per bank holding a JSON summary
  (classes, shots, models, file, size, created, fingerprint); keys ``"lock:<field>"`` are
  the claims of running segmentations (:mod:`fiftyone_ntt.fiftyone.segment`). From Python use
  :func:`list_banks`, :func:`get_bank_info`, :func:`load_bank` and :func:`delete_bank`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fiftyone_ntt.config import NTTConfig, get_preset
from fiftyone_ntt.fiftyone.references import (
    DEFAULT_REFERENCE_TAG,
    check_detections_field,
    reference_summary,
)

__all__ = [
    "BANKS_DIR_ENV",
    "STORE_NAME",
    "bank_path",
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


def bank_path(collection: Any, key: str) -> Path:
    """The file of bank ``key`` of the collection's dataset."""
    return banks_dir() / str(_dataset(collection)._doc.id) / f"{validate_bank_key(key)}.safetensors"


def list_banks(collection: Any) -> list[dict[str, Any]]:
    """Summaries of the dataset's banks, sorted by key.

    Each: ``key``, ``path``, ``classes``, ``shots`` (per class), ``num_references``,
    ``generated_masks``, ``models`` (encoder and proposer identity), ``preset``, ``config``,
    ``gt_field``, ``tag``, ``size_bytes``, ``created``, ``fingerprint`` and ``exists``
    (whether the file is still there).
    """
    store = _store(collection)
    out = []
    for name in sorted(store.list_keys()):
        if name.startswith(_KEY_PREFIX):
            info = dict(store.get(name) or {})
            info["exists"] = os.path.isfile(info.get("path", ""))
            out.append(info)
    return out


def get_bank_info(collection: Any, key: str) -> dict[str, Any]:
    """The summary of one bank (see :func:`list_banks`).

    Raises:
        KeyError: no bank of that key on this dataset (the message lists the known keys).
    """
    info = _store(collection).get(_KEY_PREFIX + key)
    if info is None:
        known = [b["key"] for b in list_banks(collection)]
        raise KeyError(
            f"dataset {_dataset(collection).name!r} has no memory bank {key!r}; known: {known}"
        )
    info = dict(info)
    info["exists"] = os.path.isfile(info.get("path", ""))
    return info


def load_bank(collection: Any, key: str):
    """Load bank ``key`` of the dataset (a :class:`~fiftyone_ntt.memory_bank.MemoryBank`)."""
    from fiftyone_ntt.memory_bank import BankFormatError, MemoryBank

    path = get_bank_info(collection, key)["path"]
    if not os.path.isfile(path):
        raise BankFormatError(
            f"the file of memory bank {key!r} is missing ({path}); rebuild the bank "
            "(build_bank(..., overwrite=True) or 'Build memory bank'), or delete it from the "
            "dataset (delete_bank)"
        )
    try:
        return MemoryBank.load(path)
    except BankFormatError as error:
        raise BankFormatError(f"memory bank {key!r}: {error}") from error


def delete_bank(collection: Any, key: str, delete_file: bool = True) -> bool:
    """Remove bank ``key`` from the dataset's index (and its file). Returns whether it existed."""
    store = _store(collection)
    info = store.get(_KEY_PREFIX + key)
    if info is None:
        return False
    store.delete(_KEY_PREFIX + key)
    if delete_file:
        path = Path(info.get("path", ""))
        if path.is_file():
            path.unlink()
    return True


def validate_build(
    collection: Any,
    gt_field: str | None,
    *,
    tag: str = DEFAULT_REFERENCE_TAG,
    classes: Sequence[str] | None = None,
    bank_key: str | None = None,
    overwrite: bool = False,
) -> tuple[dict[str, dict[str, int]], list[tuple[str, str]]]:
    """Check the inputs of :func:`build_bank` without loading a model.

    Returns:
        ``(summary, problems)``: :func:`~fiftyone_ntt.fiftyone.references.reference_summary`
        restricted to ``classes``, and ``(parameter, message)`` for every problem found
        (empty when the build can run).
    """
    from fiftyone_ntt.fiftyone.references import (
        check_image_collection,
        check_reference_boxes,
        tagged_in_other_fields,
    )

    problems: list[tuple[str, str]] = []
    try:
        check_image_collection(collection)
    except ValueError as error:
        return {}, [("view", str(error))]
    try:
        check_detections_field(collection, gt_field or "", "ground-truth field")
    except ValueError as error:
        return {}, [("gt_field", str(error))]
    summary = reference_summary(collection, gt_field, tag)
    if classes:
        missing = [c for c in classes if c not in summary]
        if missing:
            problems.append(
                (
                    "classes",
                    f"classes {missing} have no reference tagged {tag!r} in {gt_field!r}; "
                    "tag at least one instance of each, or leave them out",
                )
            )
        summary = {c: v for c, v in summary.items() if c in classes}
    if not summary and not problems:  # "classes ... have no reference" already says it
        others = tagged_in_other_fields(collection, gt_field, tag)
        hint = (
            f"; the tag is on labels of {others}, not Detections of {gt_field!r}: tag "
            f"instances of {gt_field!r} instead"
            if others
            else ""
        )
        problems.append(
            (
                "gt_field",
                f"no label of {gt_field!r} is tagged {tag!r} in this view{hint}; select "
                "instances and run 'Tag references', or sample references first",
            )
        )
    elif summary:
        problems += [("gt_field", p) for p in check_reference_boxes(collection, gt_field, tag)]
    if bank_key is not None:
        try:
            validate_bank_key(bank_key)
        except ValueError as error:
            problems.append(("bank_key", str(error)))
        else:
            if not overwrite and _store(collection).has(_KEY_PREFIX + bank_key):
                problems.append(
                    (
                        "bank_key",
                        f"a bank {bank_key!r} exists already; choose another key or allow "
                        "overwriting",
                    )
                )
    return summary, problems


def build_bank(
    collection: Any,
    gt_field: str,
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
) -> dict[str, Any]:
    """Build a memory bank from the reference-tagged labels of ``collection`` and index it.

    Labels of ``gt_field`` tagged ``tag`` are the references; those without instance mask
    get one from SAM 2 box prompting. Each image is read once.

    Args:
        collection: dataset or view holding the references.
        gt_field: a ``Detections`` field.
        bank_key: name of the bank on this dataset.
        tag: the reference tag.
        classes: the bank's classes in label order (default: all tagged, in order of
            appearance); each needs a reference.
        preset: configuration preset (``fiftyone_ntt.config.PRESETS``), unless ``config``.
        config: full configuration (stored with the bank; segmentation reuses it).
        device: compute device (overrides the config's).
        encoder, proposer: model instances to use instead of loading the configured ones.
        overwrite: replace an existing bank of the same key.
        progress: ``progress(done, total)`` per reference.

    Returns:
        The bank's summary (see :func:`list_banks`).

    Raises:
        ValueError: invalid field, key, classes, or no references (the message says which).
    """
    import fiftyone as fo

    from fiftyone_ntt.fiftyone.models import get_models, model_identity, test_models
    from fiftyone_ntt.images import load_image
    from fiftyone_ntt.memory_bank import build_memory_bank

    from .labels import detection_to_reference

    _, problems = validate_build(
        collection, gt_field, tag=tag, classes=classes, bank_key=bank_key, overwrite=overwrite
    )
    if problems:
        raise ValueError("; ".join(message for _, message in problems))
    config = config or get_preset(preset)
    if device:
        config = config.replace(models={"device": device})
    if encoder is None or proposer is None:
        loaded = get_models(config.models)
        encoder = encoder or loaded[0]
        proposer = proposer or loaded[1]

    view = collection.filter_labels(gt_field, fo.ViewField("tags").contains(tag), only_matches=True)
    if classes:
        view = view.filter_labels(gt_field, fo.ViewField("label").is_in(list(classes)))
    references = []
    for sample in view.select_fields(gt_field):
        image = load_image(sample.filepath)
        for det in sample[gt_field].detections:
            references.append(detection_to_reference(det, image))

    dataset = _dataset(collection)
    # the device is not part of the bank: the same references give the same fingerprint
    stored_config = config.to_dict()
    stored_config["models"]["device"] = "auto"
    mode = test_models()
    if mode:  # the preset names weights that did not run: record the models that did
        identity = model_identity(encoder, proposer)
        stored_config["models"]["sam2"] = str(identity["proposer"].get("source", mode))
        stored_config["models"]["dinov2"] = str(identity["encoder"].get("source", mode))
    bank = build_memory_bank(
        references,
        encoder,
        proposer,
        config=config,
        class_names=list(classes) if classes else None,
        metadata={
            "dataset": dataset.name,
            "gt_field": gt_field,
            "tag": tag,
            "preset": preset,
            "config": stored_config,
            "models": model_identity(encoder, proposer),
        },
        progress=progress,
    )
    path = bank.save(bank_path(collection, bank_key))
    info = {
        "key": bank_key,
        "path": str(path),
        "classes": list(bank.class_names),
        "shots": bank.shots_per_class(),
        "num_references": bank.num_references,
        "generated_masks": int(bank.generated_masks.sum()),
        "models": model_identity(encoder, proposer),
        "preset": preset,
        "config": stored_config,
        "gt_field": gt_field,
        "tag": tag,
        "size_bytes": path.stat().st_size,
        "created": bank.created,
        "fingerprint": bank.fingerprint,
        "test_models": mode,
    }
    _store(collection).set(_KEY_PREFIX + bank_key, info)
    info["exists"] = True
    return info
