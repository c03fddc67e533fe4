"""The instances a bank is built from: tagged labels of the ground-truth field and of
prediction fields, as library :class:`~fiftyone_ntt.types.Reference` objects, and the
checks of a build's inputs (:func:`validate_build`, re-exported by
:mod:`fiftyone_ntt.fiftyone.banks.index`)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
from fiftyone import ViewField as F

from fiftyone_ntt.fiftyone.banks.history import version_store_key
from fiftyone_ntt.fiftyone.banks.keys import validate_bank_key
from fiftyone_ntt.fiftyone.curation.decisions import reference_table, tagged_fields
from fiftyone_ntt.fiftyone.curation.frame_references import check_frame_references
from fiftyone_ntt.fiftyone.curation.references import (
    check_image_collection,
    invalid_references,
    keep_classes,
    samples_view,
    tagged_in_other_fields,
)
from fiftyone_ntt.fiftyone.dataset.fields import (
    DEFAULT_REFERENCE_TAG,
    NEG_TAG,
    check_detections_field,
)
from fiftyone_ntt.fiftyone.dataset.labels import detection_to_reference
from fiftyone_ntt.fiftyone.dataset.store import execution_store
from fiftyone_ntt.images import load_image

__all__ = [
    "collect_instances",
    "duplicated_labels",
    "source_fields",
    "tagged_in_both",
    "validate_build",
]


def source_fields(
    collection: Any,
    gt_field: str | None,
    fields: Sequence[str] | None,
    tags: Sequence[str],
) -> list[str]:
    """The fields a build reads: ``fields`` if given (each checked), else ``gt_field`` and
    every other ``Detections`` field holding a label tagged with one of ``tags``."""

    if fields:
        out = list(dict.fromkeys(fields))
    else:
        out = list(dict.fromkeys([f for f in [gt_field] if f] + tagged_fields(collection, tags)))
    for field in out:
        check_detections_field(collection, field, "field")
    return out


def tagged_in_both(collection: Any, fields: Sequence[str], tag: str, neg_tag: str) -> list[str]:
    """Ids of labels tagged both ``tag`` and ``neg_tag``."""

    out = []
    both = F("tags").contains([tag, neg_tag], all=True)
    for field in fields:
        view = samples_view(collection).filter_labels(field, both)
        out += [str(i) for i in view.values(f"{field}.detections.id", unwind=True)]
    return out


def duplicated_labels(
    collection: Any, fields: Sequence[str], tags: Sequence[str]
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Labels tagged with one of ``tags`` that are in several of ``fields`` (a field cloned
    with ``clone_sample_field`` keeps the label ids).

    Returns:
        ``(same, differ)``: ``{label id: [fields]}`` of the copies that agree (class, box,
        mask: one reference, used once), and ``{label id: message}`` of those that do not
        (which one is the reference is the user's call).
    """

    if len(fields) < 2:
        return {}, {}
    seen: dict[str, list[tuple[str, Any]]] = {}
    tagged = F("tags").contains(list(tags), all=False)
    samples = samples_view(collection)
    for field in fields:
        view = samples.filter_labels(field, tagged, only_matches=True)
        for detections in view.values(f"{field}.detections"):
            for det in detections or []:
                seen.setdefault(str(det.id), []).append((field, det))
    same, differ = {}, {}
    for label_id, copies in seen.items():
        if len(copies) < 2:
            continue
        names = [f for f, _ in copies]
        first = copies[0][1]
        changed = [(field, what) for field, det in copies[1:] for what in _differences(first, det)]
        if not changed:
            same[label_id] = names
            continue
        details = ", ".join(f"{what} in {field!r}" for field, what in changed)
        differ[label_id] = (
            f"label {label_id} is tagged in {names} (a cloned field keeps label ids) and the "
            f"copies differ ({details} differs from {names[0]!r}); untag it in all but one "
            "of these fields, or build from one field (fields=[...])"
        )
    return same, differ


def _differences(a: Any, b: Any) -> list[str]:

    out = []
    if a.label != b.label:
        out.append(f"class {b.label!r} (vs {a.label!r})")
    if list(a.bounding_box or []) != list(b.bounding_box or []):
        out.append("box")
    ma, mb = getattr(a, "mask", None), getattr(b, "mask", None)
    if (ma is None) != (mb is None) or (
        ma is not None and not np.array_equal(np.asarray(ma), np.asarray(mb))
    ):
        out.append("mask")
    return out


def collect_instances(
    collection: Any,
    fields: Sequence[str],
    tag: str,
    neg_tag: str,
    classes: Sequence[str] | None = None,
    skip_ids: Collection[str] = (),
) -> tuple[list[Any], list[Any], dict[str, str]]:
    """The tagged instances of ``fields`` in ``collection``, each image read once.

    A label found in several fields (a cloned field: its labels keep their ids) is one
    instance, read from the first of ``fields`` (:func:`duplicated_labels` checks that the
    copies agree). Labels of ``skip_ids`` are left out.

    Returns:
        ``(positives, negatives, where)``: references (only of ``classes`` when given),
        negatives (all classes; the caller decides which it can use), and ``{label id:
        field}``.
    """

    samples = samples_view(collection)
    wanted = None if not classes else set(classes)
    tagged = F("tags").contains([tag, neg_tag], all=False)
    view = samples.match_labels(filter=tagged, fields=list(fields)).select_fields(list(fields))
    positives, negatives, where = [], [], {}
    for sample in view:
        image = None
        for field in fields:
            detections = sample[field]
            for det in detections.detections if detections is not None else []:
                tags = det.tags or []
                is_pos, is_neg = tag in tags, neg_tag in tags
                if is_pos and wanted is not None and det.label not in wanted:
                    is_pos = False
                if not (is_pos or is_neg) or str(det.id) in where or str(det.id) in skip_ids:
                    continue
                if image is None:
                    image = load_image(sample.filepath)
                (positives if is_pos else negatives).append(detection_to_reference(det, image))
                where[str(det.id)] = field
    return positives, negatives, where


def _names(fields: Sequence[str]) -> str:
    return repr(fields[0]) if len(fields) == 1 else str(list(fields))


def validate_build(
    collection: Any,
    gt_field: str | None,
    *,
    tag: str = DEFAULT_REFERENCE_TAG,
    classes: Sequence[str] | None = None,
    bank_key: str | None = None,
    overwrite: bool = False,
    fields: Sequence[str] | None = None,
    neg_tag: str = NEG_TAG,
    version: int | None = None,
    skip_invalid_annotations: bool = False,
) -> tuple[dict[str, dict[str, int]], list[tuple[str, str]]]:
    """Check the inputs of :func:`build_bank` without loading a model.

    Tagged labels that cannot be used (:func:`~fiftyone_ntt.fiftyone.curation.references.
    invalid_references`) are a problem unless ``skip_invalid_annotations``; a label tagged
    in several fields whose copies differ (:func:`duplicated_labels`) always is.

    Returns:
        ``(summary, problems)``: ``{class: {"references": n, "box_only": m, "negatives":
        k}}`` of the tagged labels of the source fields (see :func:`build_bank`), restricted
        to ``classes``, and ``(parameter, message)`` for every problem found (empty when
        the build can run).
    """

    problems: list[tuple[str, str]] = []
    if getattr(collection, "media_type", None) == "video":
        # references from frame labels (frames.<gt_field>)
        summary, problems = check_frame_references(collection, gt_field, tag, neg_tag, classes)
        return summary, problems + _key_problems(collection, bank_key, version, overwrite)
    try:
        check_image_collection(collection)
    except ValueError as error:
        return {}, [("view", str(error))]
    if gt_field is not None or not fields:
        try:
            check_detections_field(collection, gt_field or "", "ground-truth field")
        except ValueError as error:
            return {}, [("gt_field", str(error))]
    try:
        sources = source_fields(collection, gt_field, fields, (tag, neg_tag))
        rows = reference_table(collection, sources, tag=tag, neg_tag=neg_tag)
    except ValueError as error:
        return {}, [("fields", str(error))]
    summary = {
        r["class"]: {
            "references": r["positives"],
            "box_only": r["box_only"],
            "negatives": r["negatives"],
        }
        for r in rows
        if r["positives"]
    }
    summary, missing = keep_classes(summary, classes, tag, _names(sources))
    problems += missing
    if not summary and not problems:  # "classes ... have no reference" already says it
        others = tagged_in_other_fields(collection, gt_field, tag) if gt_field else []
        others = [f for f in others if f not in sources]
        hint = (
            f"; the tag is on labels of {others}, which are not Detections fields: tag "
            f"instances of {gt_field!r} instead"
            if others
            else ""
        )
        problems.append(
            (
                "gt_field",
                f"no label of {_names(sources)} is tagged {tag!r} in this view{hint}; select "
                "instances and run 'Tag references', sample references first, or accept "
                "predictions",
            )
        )
    elif summary and not skip_invalid_annotations:
        invalid = invalid_references(collection, sources, (tag, neg_tag))
        if invalid:
            listed = "; ".join(p["message"] for p in invalid[:10])
            more = f"; ... ({len(invalid) - 10} more)" if len(invalid) > 10 else ""
            problems.append(
                (
                    "gt_field",
                    f"{len(invalid)} tagged label(s) cannot be used: {listed}{more}; fix them "
                    "or untag them, or build with skip_invalid_annotations=True to leave them "
                    "out",
                )
            )
    _, differ = duplicated_labels(collection, sources, (tag, neg_tag))
    problems += [("fields", message) for message in list(differ.values())[:10]]
    both = tagged_in_both(collection, sources, tag, neg_tag)
    if both:
        problems.append(
            (
                "fields",
                f"labels {both[:5]} are tagged both {tag!r} and {neg_tag!r}; a label is a "
                "reference or a negative: untag one (untag_labels, or accept / reject again)",
            )
        )
    problems += _key_problems(collection, bank_key, version, overwrite)
    return summary, problems


def _key_problems(
    collection: Any, bank_key: str | None, version: int | None, overwrite: bool
) -> list[tuple[str, str]]:
    """Problems of the bank key and version of a build."""

    problems: list[tuple[str, str]] = []
    if bank_key is not None:
        try:
            validate_bank_key(bank_key)
        except ValueError as error:
            problems.append(("bank_key", str(error)))
        else:
            if version is not None:
                if not isinstance(version, int) or version < 1:
                    problems.append(("version", f"version={version!r} must be an integer >= 1"))
                elif not overwrite and execution_store(collection).has(
                    version_store_key(bank_key, version)
                ):
                    problems.append(
                        (
                            "version",
                            f"version {version} of bank {bank_key!r} exists already; leave "
                            "version out to make the next one, or allow overwriting",
                        )
                    )
    return problems
