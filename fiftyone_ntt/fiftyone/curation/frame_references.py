"""References from the frame labels of video datasets: check them, collect their instances for
a bank, list them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import fiftyone as fo

from fiftyone_ntt.fiftyone.curation.references import keep_classes
from fiftyone_ntt.fiftyone.dataset.labels import detection_to_reference
from fiftyone_ntt.fiftyone.dataset.media import (
    check_video_collection,
    frame_field_name,
    iter_frames,
)


def _tagged_frame_labels(
    collection: Any, field: str, tags: Sequence[str]
) -> list[tuple[str, dict[int, list[Any]]]]:
    """``[(filepath, {frame number: [labels tagged with one of tags]})]`` per video."""
    out = []
    for sample in collection.select_fields(f"frames.{field}"):
        tagged = {}
        for number, frame in sample.frames.items():
            labels = frame[field] if frame.has_field(field) else None
            found = [
                d for d in (labels.detections if labels else []) if set(d.tags or []) & set(tags)
            ]
            if found:
                tagged[number] = found
        if tagged:
            out.append((sample.filepath, tagged))
    return out


def check_frame_references(
    collection: Any,
    gt_field: str | None,
    tag: str = "ntt:ref",
    neg_tag: str = "ntt:neg",
    classes: Sequence[str] | None = None,
) -> tuple[dict[str, dict[str, int]], list[tuple[str, str]]]:
    """The build check of a video collection (as :func:`~.bank_inputs.validate_build`):
    ``({class: {"references", "box_only", "negatives"}}, [(parameter, problem)])`` of the
    tagged labels of the frame field ``gt_field`` (``frames.`` prefix optional)."""

    field = frame_field_name(gt_field or "")
    schema = collection.get_frame_field_schema() or {}
    if not field or getattr(schema.get(field), "document_type", None) is not fo.Detections:
        frame_fields = sorted(
            f"frames.{k}"
            for k, v in schema.items()
            if getattr(v, "document_type", None) is fo.Detections
        )
        return {}, [
            (
                "gt_field",
                f"ground-truth field {gt_field!r} is not a frame-level Detections field of "
                f"this video dataset; choose one of {frame_fields}",
            )
        ]
    summary: dict[str, dict[str, int]] = {}
    both = []
    for _, frames in _tagged_frame_labels(collection, field, (tag, neg_tag)):
        for labels in frames.values():
            for det in labels:
                row = summary.setdefault(
                    str(det.label), {"references": 0, "box_only": 0, "negatives": 0}
                )
                if tag in det.tags and neg_tag in det.tags:
                    both.append(str(det.id))
                elif tag in det.tags:
                    row["references"] += 1
                    row["box_only"] += int(det.mask is None)
                else:
                    row["negatives"] += 1
    summary = {c: v for c, v in summary.items() if v["references"]}
    summary, problems = keep_classes(summary, classes, tag, f"frames.{field}")
    if not classes and not summary:
        problems.append(
            (
                "gt_field",
                f"no label of frames.{field} is tagged {tag!r} in this view; tag a few frame "
                "labels as references (or build the bank on an image dataset)",
            )
        )
    if both:
        problems.append(
            ("fields", f"frame labels {both[:5]} are tagged both {tag!r} and {neg_tag!r}")
        )
    return summary, problems


def collect_frame_instances(
    collection: Any,
    gt_field: str,
    tag: str = "ntt:ref",
    neg_tag: str = "ntt:neg",
    classes: Sequence[str] | None = None,
) -> tuple[list[Any], list[Any], dict[str, str]]:
    """``(references, negatives, {label id: "frames.<field>"})`` of the tagged labels of a
    frame-level ``Detections`` field, decoding only the frames that hold them (as
    :func:`~.bank_inputs.collect_instances` for images)."""

    check_video_collection(collection)
    field = frame_field_name(gt_field)
    wanted = None if not classes else set(classes)
    positives, negatives, where = [], [], {}
    for path, tagged in _tagged_frame_labels(collection, field, (tag, neg_tag)):
        for number, image in iter_frames(path, tagged):
            for det in tagged[number]:
                is_pos = tag in det.tags and (wanted is None or det.label in wanted)
                if not is_pos and neg_tag not in det.tags:
                    continue
                (positives if is_pos else negatives).append(detection_to_reference(det, image))
                where[str(det.id)] = f"frames.{field}"
    return positives, negatives, where


def frame_references(collection: Any, gt_field: str, tag: str = "ntt:ref") -> list[Any]:
    """:class:`~fiftyone_ntt.types.Reference` objects of the ``tag``-ged labels of a frame-level
    ``Detections`` field (``gt_field`` or ``frames.<gt_field>``), decoding only the frames that
    hold them. Build a bank with :func:`fiftyone_ntt.fiftyone.build_bank` (which does this
    on a video collection) or :func:`fiftyone_ntt.bank_build.build_memory_bank`.

    Raises:
        ValueError: not a video collection, or no tagged label in ``frames.<gt_field>``.
    """
    references, _, _ = collect_frame_instances(collection, gt_field, tag, neg_tag=tag)
    if not references:
        raise ValueError(
            f"no label of frames.{frame_field_name(gt_field)} is tagged {tag!r}; tag "
            "a few frame labels as references (or build the bank from image references)"
        )
    return references
