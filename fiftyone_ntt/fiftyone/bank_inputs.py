"""The instances a bank is built from: tagged labels of the ground-truth field and of
prediction fields, as library :class:`~fiftyone_ntt.types.Reference` objects."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["collect_instances", "source_fields", "tagged_in_both"]


def source_fields(
    collection: Any,
    gt_field: str | None,
    fields: Sequence[str] | None,
    tags: Sequence[str],
) -> list[str]:
    """The fields a build reads: ``fields`` if given (each checked), else ``gt_field`` and
    every other ``Detections`` field holding a label tagged with one of ``tags``."""
    from fiftyone_ntt.fiftyone.curation import _detections_field, tagged_fields

    if fields:
        out = list(dict.fromkeys(fields))
    else:
        out = list(dict.fromkeys([f for f in [gt_field] if f] + tagged_fields(collection, tags)))
    for field in out:
        _detections_field(collection, field, "field")
    return out


def tagged_in_both(collection: Any, fields: Sequence[str], tag: str, neg_tag: str) -> list[str]:
    """Ids of labels tagged both ``tag`` and ``neg_tag``."""
    from fiftyone import ViewField as F

    out = []
    both = F("tags").contains([tag, neg_tag], all=True)
    for field in fields:
        view = _samples(collection).filter_labels(field, both)
        out += [str(i) for i in view.values(f"{field}.detections.id", unwind=True)]
    return out


def _samples(collection: Any) -> Any:
    """The collection as a view of samples (a patches view: the images of its patches)."""
    if getattr(collection, "_is_patches", False) or getattr(collection, "_is_frames", False):
        return collection._root_dataset.select(collection.distinct("sample_id"))
    return collection


def collect_instances(
    collection: Any,
    fields: Sequence[str],
    tag: str,
    neg_tag: str,
    classes: Sequence[str] | None = None,
) -> tuple[list[Any], list[Any], dict[str, str]]:
    """The tagged instances of ``fields`` in ``collection``, each image read once.

    Returns:
        ``(positives, negatives, where)``: references (only of ``classes`` when given),
        negatives (all classes; the caller decides which it can use), and ``{label id:
        field}``.
    """
    from fiftyone import ViewField as F

    from fiftyone_ntt.fiftyone.labels import detection_to_reference
    from fiftyone_ntt.images import load_image

    samples = _samples(collection)
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
                if not (is_pos or is_neg):
                    continue
                if image is None:
                    image = load_image(sample.filepath)
                (positives if is_pos else negatives).append(detection_to_reference(det, image))
                where[str(det.id)] = field
    return positives, negatives, where
