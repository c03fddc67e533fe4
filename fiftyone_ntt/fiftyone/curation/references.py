"""Choosing references: label tags on ground-truth instances of a ``Detections`` field.

Which instances are references is stored as a label tag (default ``"ntt:ref"``) on the
ground-truth detections, so it is visible and editable in the App. These functions tag
labels the user selected, sample K per class with a seed, count candidates and summarise
what is tagged. Nothing here loads a model.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import fiftyone as fo
import numpy as np
from fiftyone import ViewField as F

from fiftyone_ntt.fiftyone.dataset.fields import DEFAULT_REFERENCE_TAG, check_detections_field
from fiftyone_ntt.sampling import (
    Candidate,
    SampledReferences,
    SamplingShortfallWarning,
    count_candidates,
)
from fiftyone_ntt.sampling import sample_references as _sample_candidates

__all__ = [
    "check_image_collection",
    "check_reference_boxes",
    "count_reference_candidates",
    "invalid_references",
    "keep_classes",
    "reference_candidates",
    "reference_sample_ids",
    "reference_summary",
    "sample_references",
    "tag_references",
    "untag_references",
]


def check_image_collection(collection: Any) -> None:
    """Raise a ValueError saying what to do unless ``collection`` holds images only."""
    media = getattr(collection, "media_type", "image")
    if media == "image":
        return
    name = collection._root_dataset.name
    if media is None:  # a dataset gets its media type with its first sample
        raise ValueError(
            f"dataset {name!r} has no samples; add images to it first, e.g. "
            "dataset.add_images_dir('/path/to/images')"
        )
    if media == "group":
        slices = getattr(collection, "group_media_types", None) or {}
        raise ValueError(
            f"dataset {name!r} is a grouped dataset (slices {dict(slices)}); No Time to Train "
            "works on images: pass one image slice or all of them, e.g. "
            "dataset.select_group_slices('left') or "
            "dataset.select_group_slices(media_type='image')"
        )
    if media == "video":
        raise ValueError(
            f"dataset {name!r} holds videos; No Time to Train segments images: use a view of "
            "frames as images, e.g. dataset.to_frames(sample_frames=True), and its "
            "Detections fields"
        )
    raise ValueError(
        f"dataset {name!r} holds {media} samples; No Time to Train segments images only"
    )


def invalid_references(
    collection: Any,
    fields: str | Sequence[str],
    tags: str | Sequence[str] = (DEFAULT_REFERENCE_TAG,),
) -> list[dict[str, Any]]:
    """The labels tagged with one of ``tags`` in ``fields`` that cannot be references or
    negatives: the one set of rules for FiftyOne references (COCO annotations have theirs,
    :func:`fiftyone_ntt.coco.annotation_problem`).

    Refused: no label (``None`` or empty: it would become a class named "None"); a box that
    is not 4 finite numbers, has zero area (width or height <= 0) or lies outside the image;
    an instance mask that covers no pixel (it used to be replaced by a SAM box mask without a
    word).

    Returns:
        One dict per problem, in sample order: ``sample_id``, ``label_id``, ``field``,
        ``label``, ``filepath``, ``reason`` and ``message`` (all of it in a sentence).
    """

    fields = [fields] if isinstance(fields, str) else list(fields)
    tags = [tags] if isinstance(tags, str) else list(tags)
    samples = samples_view(collection)
    out = []
    for field in fields:
        view = samples.filter_labels(field, F("tags").contains(tags, all=False), only_matches=True)
        path = f"{field}.detections"
        paths = ["id", "filepath"] + [
            f"{path}.{k}" for k in ("id", "label", "bounding_box", "mask")
        ]
        columns = view.values(paths)
        for sid, filepath, lids, labels, boxes, masks in zip(*columns):
            for lid, lab, bb, mask in zip(lids or [], labels or [], boxes or [], masks or []):
                reason = None
                values = [float(v) for v in (bb or []) if isinstance(v, (int, float))]
                if lab is None or not str(lab).strip():
                    reason = f"has no label ({lab!r}); give it a class"
                elif len(values) != 4 or not all(math.isfinite(v) for v in values):
                    reason = f"has no valid box ({bb})"
                elif values[2] <= 0 or values[3] <= 0:
                    reason = f"its box {values} has zero area (width or height <= 0)"
                elif (
                    values[0] >= 1
                    or values[1] >= 1
                    or sum(values[::2]) <= 0
                    or sum(values[1::2]) <= 0
                ):
                    reason = (
                        f"its box {values} lies outside the image (relative coordinates must "
                        "overlap [0, 1])"
                    )
                elif mask is not None and not np.asarray(mask).any():
                    reason = "its instance mask covers no pixel (an empty mask)"
                if reason:
                    out.append(
                        {
                            "sample_id": str(sid),
                            "label_id": str(lid),
                            "field": field,
                            "label": lab,
                            "filepath": filepath,
                            "reason": reason,
                            "message": f"reference {lid} ({lab!r}) of {field!r} in sample "
                            f"{sid} ({filepath!r}): {reason}",
                        }
                    )
    return out


def check_reference_boxes(
    collection: Any, gt_field: str, tag: str = DEFAULT_REFERENCE_TAG
) -> list[str]:
    """Problems of the tagged references of ``gt_field`` (see :func:`invalid_references`),
    one message each naming the label, its class, its sample and its file."""
    return [
        f"{p['message']}; fix it or untag it" for p in invalid_references(collection, gt_field, tag)
    ]


def tagged_in_other_fields(
    collection: Any, gt_field: str, tag: str = DEFAULT_REFERENCE_TAG
) -> list[str]:
    """Label fields other than ``gt_field`` holding labels tagged ``tag``."""

    out = []
    for name, field in collection.get_field_schema().items():
        doc_type = getattr(field, "document_type", None)
        if name == gt_field or not (isinstance(doc_type, type) and issubclass(doc_type, fo.Label)):
            continue
        if collection.count_label_tags(label_fields=[name]).get(tag):
            out.append(name)
    return out


def _label_refs(labels: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for label in labels:
        out.append(
            {
                "label_id": str(label["label_id"]),
                "sample_id": str(label["sample_id"]),
                "field": label["field"],
                "frame_number": label.get("frame_number"),
            }
        )
    return out


def _select(collection: Any, refs: list[dict[str, Any]]) -> Any:
    """The root dataset restricted to these labels, by label id and field (the sample ids of
    a selection made in a patches view are those of the patches, not of the samples)."""
    fields = sorted({r["field"] for r in refs})
    return collection._root_dataset.select_labels(
        ids=[r["label_id"] for r in refs], fields=fields, omit_empty=True
    )


def tag_references(
    collection: Any,
    labels: Iterable[Mapping[str, Any]],
    tag: str = DEFAULT_REFERENCE_TAG,
    fields: Sequence[str] | None = None,
) -> int:
    """Tag labels as references.

    Args:
        collection: the dataset or a view of it.
        labels: labels as ``ctx.selected_labels`` / ``session.selected_labels`` give them
            (dicts with ``label_id`` and ``field``; ``sample_id`` is not needed, so a
            selection made in a patches view works too).
        tag: the reference tag.
        fields: only tag labels of these fields (e.g. the ground-truth field).

    Returns:
        How many labels were selected for tagging.
    """
    refs = [r for r in _label_refs(labels) if fields is None or r["field"] in fields]
    if not refs:
        return 0
    view = _select(collection, refs)
    view.tag_labels(tag, label_fields=sorted({r["field"] for r in refs}))
    return len(refs)


def untag_references(
    collection: Any,
    labels: Iterable[Mapping[str, Any]] | None = None,
    tag: str = DEFAULT_REFERENCE_TAG,
    fields: Sequence[str] | None = None,
) -> int:
    """Remove the reference tag from some labels, or from every label of ``collection``.

    Returns:
        How many labels lost the tag.
    """
    if labels is None:
        counts = collection.count_label_tags(label_fields=fields)
        collection.untag_labels(tag, label_fields=fields)
        return int(counts.get(tag, 0))
    refs = [r for r in _label_refs(labels) if fields is None or r["field"] in fields]
    if not refs:
        return 0
    view = _select(collection, refs)
    before = view.count_label_tags().get(tag, 0)
    view.untag_labels(tag, label_fields=sorted({r["field"] for r in refs}))
    return int(before)


def reference_summary(
    collection: Any, gt_field: str, tag: str = DEFAULT_REFERENCE_TAG
) -> dict[str, dict[str, int]]:
    """``{class: {"references": n, "box_only": m}}`` of the tagged labels in ``gt_field``.

    ``box_only`` counts references without an instance mask (their masks come from SAM 2
    box prompting when the bank is built).
    """

    check_detections_field(collection, gt_field, "ground-truth field")
    view = collection.filter_labels(gt_field, F("tags").contains(tag), only_matches=True)
    summary: dict[str, dict[str, int]] = {}
    # only the tagged labels are loaded: references are few
    for detections in view.values(f"{gt_field}.detections"):
        for det in detections or []:
            entry = summary.setdefault(str(det.label), {"references": 0, "box_only": 0})
            entry["references"] += 1
            if not det.has_mask:
                entry["box_only"] += 1
    return summary


def reference_sample_ids(
    collection: Any,
    gt_field: str | None,
    tag: str = DEFAULT_REFERENCE_TAG,
    label_ids: Iterable[str] | None = None,
) -> list[str]:
    """Ids of the *reference samples* of ``collection``: the one rule that segment (its skip
    and the form's count), evaluate (the samples it leaves out) and the Results view share.

    A sample is a reference sample if and only if its ground-truth field ``gt_field`` holds
    a reference: a label tagged ``tag``, or, given ``label_ids`` (a bank's references), one
    of those labels. A reference in any other field, such as a prediction accepted as a
    reference (in ``ntt_curated`` or a prediction field), does not make its sample a
    reference sample: the image's ground truth is still complete, so it is segmented and
    evaluated like any other target (the accepted instance is in the bank, which may make
    that one instance easy; its ground truth and every other instance count as usual).
    Frame-level fields (``frames.``) and fields ``collection`` lacks hold none.
    """

    if not gt_field or gt_field.startswith("frames.") or not collection.has_sample_field(gt_field):
        return []
    if label_ids is not None:
        ids = list(label_ids)
        if not ids:
            return []
        view = collection.select_labels(ids=ids, fields=gt_field, omit_empty=True)
    else:
        view = collection.match_labels(filter=F("tags").contains(tag), fields=gt_field)
    return view.values("id")


def reference_candidates(
    collection: Any, gt_field: str, classes: Sequence[str] | None = None, with_sizes=False
) -> list[Candidate]:
    """Every instance of ``gt_field`` as a sampling :class:`~fiftyone_ntt.sampling.Candidate`.

    Order: samples in collection order, detections in field order (a stable order, which the
    seeded sampler needs). Boxes are in pixels when image sizes are known (metadata), else in
    relative units; ``iscrowd`` comes from the detections' ``iscrowd`` attribute (COCO
    imports set it).

    Args:
        collection: dataset or view.
        gt_field: a ``Detections`` field.
        classes: keep only these classes.
        with_sizes: compute missing image metadata first (the paper's rules need sizes).
    """
    check_detections_field(collection, gt_field, "ground-truth field")
    if with_sizes:
        collection.compute_metadata()
    path = f"{gt_field}.detections"
    ids, widths, heights, label_ids, labels, boxes, crowds = collection.values(
        [
            "id",
            "metadata.width",
            "metadata.height",
            f"{path}.id",
            f"{path}.label",
            f"{path}.bounding_box",
            f"{path}.iscrowd",
        ],
        _allow_missing=True,
    )
    wanted = None if classes is None else set(classes)
    out: list[Candidate] = []
    for sid, width, height, lids, labs, bbs, crs in zip(
        ids, widths, heights, label_ids, labels, boxes, crowds
    ):
        for j, (lid, lab, bb) in enumerate(zip(lids or [], labs or [], bbs or [])):
            if lab is None or bb is None or (wanted is not None and lab not in wanted):
                continue
            sx, sy = (width or 1), (height or 1)
            crowd = (crs or [None] * (j + 1))[j] if crs else None
            out.append(
                Candidate(
                    class_name=str(lab),
                    ref_id=str(lid),
                    image_id=sid,
                    box_xywh=(bb[0] * sx, bb[1] * sy, bb[2] * sx, bb[3] * sy),
                    image_width=width,
                    image_height=height,
                    iscrowd=bool(crowd),
                )
            )
    return out


def count_reference_candidates(
    collection: Any,
    gt_field: str,
    *,
    classes: Sequence[str] | None = None,
    paper_rules: bool = False,
    one_per_image: bool = True,
) -> dict[str, int]:
    """How many references each class can give (crowd instances never count)."""
    candidates = reference_candidates(collection, gt_field, classes, with_sizes=paper_rules)
    return count_candidates(
        candidates, classes=classes, paper_rules=paper_rules, one_per_image=one_per_image
    )


def sample_references(
    collection: Any,
    gt_field: str,
    shots: int | Mapping[str, int],
    seed: int = 0,
    *,
    classes: Sequence[str] | None = None,
    paper_rules: bool = False,
    one_per_image: bool = True,
    tag: str = DEFAULT_REFERENCE_TAG,
    replace: bool = False,
    strict: bool = False,
) -> SampledReferences:
    """Sample K references per class with a seed and tag them.

    Uses :func:`fiftyone_ntt.sampling.sample_references` on
    :func:`reference_candidates` (crowd instances skipped; with ``paper_rules`` the size and
    border rules of the paper).

    Args:
        collection: the dataset or view to sample from.
        gt_field: a ``Detections`` field.
        shots: K per class, or ``{class: K}``.
        seed: the random seed.
        classes: restrict to these classes.
        paper_rules: box sides >= 32 px and >= 10 px from the border.
        one_per_image: at most one reference per image per class.
        tag: the reference tag.
        replace: remove the tag from the field's labels in ``collection`` first.
        strict: raise when a class has fewer than K usable candidates.

    Returns:
        The sampled candidates (``ref_id`` = label id), with ``shortfalls``/``available``.
    """

    candidates = reference_candidates(collection, gt_field, classes, with_sizes=paper_rules)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingShortfallWarning)
        picked = _sample_candidates(
            candidates,
            shots,
            seed,
            classes=classes,
            paper_rules=paper_rules,
            one_per_image=one_per_image,
            strict=strict,
        )
    if replace:
        collection.untag_labels(tag, label_fields=[gt_field])
    if picked:
        view = collection._root_dataset.select_labels(
            ids=[c.ref_id for c in picked], fields=gt_field
        )
        view.tag_labels(tag, label_fields=[gt_field])
    return picked


def samples_view(collection: Any) -> Any:
    """The collection as a view of samples (a patches view: the images of its patches)."""
    if getattr(collection, "_is_patches", False) or getattr(collection, "_is_frames", False):
        return collection._root_dataset.select(collection.distinct("sample_id"))
    return collection


def keep_classes(
    summary: dict[str, Any], classes: Sequence[str] | None, tag: str, where: str
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """A per-class summary of tagged references kept to ``classes`` (all when None), and the
    ``("classes", message)`` problem naming the asked classes that have no reference tagged
    ``tag`` in ``where``."""
    if not classes:
        return summary, []
    problems = []
    missing = [c for c in classes if c not in summary]
    if missing:
        problems.append(
            (
                "classes",
                f"classes {missing} have no reference tagged {tag!r} in {where}; tag at least "
                "one instance of each, or leave them out",
            )
        )
    return {c: v for c, v in summary.items() if c in classes}, problems
