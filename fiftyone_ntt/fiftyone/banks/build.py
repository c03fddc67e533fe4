"""Build a new version of a memory bank from the tagged instances of a collection
(:func:`build_bank`) and record it in the dataset's bank index.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

from fiftyone_ntt.config import NTTConfig, get_preset
from fiftyone_ntt.fiftyone.banks.history import (
    all_versions,
    describe_diff,
    instance_contents,
    version_entries,
    version_store_key,
)
from fiftyone_ntt.fiftyone.banks.index import latest_version, version_summary
from fiftyone_ntt.fiftyone.banks.inputs import (
    collect_instances,
    duplicated_labels,
    source_fields,
    validate_build,
)
from fiftyone_ntt.fiftyone.banks.keys import bank_path
from fiftyone_ntt.fiftyone.curation.frame_references import collect_frame_instances
from fiftyone_ntt.fiftyone.curation.references import invalid_references
from fiftyone_ntt.fiftyone.dataset import model_cache
from fiftyone_ntt.fiftyone.dataset.fields import DEFAULT_REFERENCE_TAG, NEG_TAG
from fiftyone_ntt.fiftyone.dataset.model_cache import model_identity, test_models
from fiftyone_ntt.fiftyone.dataset.store import BANK_KEY_PREFIX, execution_store, root_dataset


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
            :func:`~fiftyone_ntt.fiftyone.curation.references.invalid_references`) instead of
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
    # deferred: torch loads only when this runs
    from fiftyone_ntt.bank_build import build_memory_bank, split_negatives
    from fiftyone_ntt.memory_bank import BACKGROUND_LABELS

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
        loaded = model_cache.get_models(config.models)
        encoder = encoder or loaded[0]
        proposer = proposer or loaded[1]

    dataset = root_dataset(collection)
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

    store = execution_store(collection)
    pointer = BANK_KEY_PREFIX + bank_key
    entries = all_versions(store, bank_key, pointer)
    if entries and not version_entries(store, bank_key).get(bank_key):
        # a bank built before versions: keep it as version 1
        store.set(version_store_key(bank_key, 1), entries[1])
    number = claim_version(store, bank_key, version, overwrite)
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
    store.set(pointer, version_summary(entries[latest]))
    info["exists"] = True
    info["num_versions"] = len(entries)
    return info


def bank_config(config: Any, encoder: Any, proposer: Any) -> dict[str, Any]:
    """The configuration a bank built with ``config`` and these models stores (and that a
    reuse check must compare with): the device is left out, so the same references give the
    same fingerprint on any device; in test-model mode the models that really ran replace
    the preset's names, which name weights that did not run."""

    stored = config.to_dict()
    stored["models"]["device"] = "auto"
    mode = test_models()
    if mode:
        identity = model_identity(encoder, proposer)
        stored["models"]["sam2"] = str(identity["proposer"].get("source", mode))
        stored["models"]["dinov2"] = str(identity["encoder"].get("source", mode))
    return stored


def claim_version(store: Any, key: str, version: int | None, overwrite: bool) -> int:
    """Reserve the version number this build writes (concurrent builds get distinct ones)."""
    if version is not None:
        name = version_store_key(key, version)
        if overwrite or store.set_if_absent(name, {"building": True}):
            return int(version)
        raise ValueError(f"version {version} of bank {key!r} exists already")
    latest = latest_version(store, key)
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
