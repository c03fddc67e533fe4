"""Conversions between FiftyOne labels and the library's types, and how No Time to Train's
labels look in the App.

FiftyOne's convention: relative ``[x, y, w, h]`` boxes in ``[0, 1]`` and instance masks
cropped to the box. The library's: absolute-pixel ``XYXY`` boxes (exclusive ``x2``/``y2``)
and full-image boolean masks. Only this module converts between the two.

The look (:func:`apply_field_look`): every field No Time to Train writes gets a fixed colour
in the dataset's colour scheme (``app_config.color_scheme``), so colours do not reshuffle when
the App reloads; curated labels (:data:`~fiftyone_ntt.fiftyone.dataset.fields.CURATED_FIELD`) carry
their decision in :data:`DECISION_ATTRIBUTE` and are coloured by it (accepted green, rejected
red) when the App colours by value; the curated field is hidden by default (a curator looks
at the current preview; ticking the field in the sidebar shows the decisions already made).
Entries a user set (a field's colours, the active fields) are never replaced.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any

import fiftyone as fo
import fiftyone.core.utils as fou
import numpy as np

from fiftyone_ntt.embeddings import compact, expand
from fiftyone_ntt.fiftyone.dataset.fields import (
    CURATED_FIELD,
    DEFAULT_REFERENCE_TAG,
    NEG_TAG,
    PREVIEW_FIELD,
)
from fiftyone_ntt.types import Predictions, Reference

__all__ = [
    "ACCEPTED",
    "ACCEPTED_COLOR",
    "DECISION_ATTRIBUTE",
    "EMBEDDING_ATTRIBUTE",
    "REJECTED",
    "REJECTED_COLOR",
    "apply_field_look",
    "decision_of",
    "decode_embedding",
    "detection_box_xyxy",
    "detection_embedding",
    "detection_full_mask",
    "detection_to_reference",
    "field_color",
    "predictions_to_detections",
]

#: Attribute of a curated label: :data:`ACCEPTED` (a reference) or :data:`REJECTED` (a
#: negative), as its tags say.
DECISION_ATTRIBUTE = "ntt_decision"
ACCEPTED = "accepted"
REJECTED = "rejected"
#: Attribute of a prediction written with ``embeddings=True``: the semantic feature it was
#: matched with, float16 (docs/method.md §15).
EMBEDDING_ATTRIBUTE = "ntt_embedding"
ACCEPTED_COLOR = "#22c55e"
REJECTED_COLOR = "#b91c1c"
#: Fixed colours of the fields No Time to Train writes; other fields of its runs get one of
#: :data:`_POOL`, chosen by their name (the same on every reload).
_FIELD_COLORS = {PREVIEW_FIELD: "#f59e0b", CURATED_FIELD: "#a78bfa"}
_POOL = ("#06b6d4", "#ec4899", "#84cc16", "#f97316", "#3b82f6", "#eab308", "#14b8a6")


def decision_of(tags: Iterable[str] | None) -> str | None:
    """The decision that label tags say: :data:`ACCEPTED` for a reference tag,
    :data:`REJECTED` for a negative tag, None for neither."""
    tags = set(tags or ())
    if DEFAULT_REFERENCE_TAG in tags:
        return ACCEPTED
    if NEG_TAG in tags:
        return REJECTED
    return None


def field_color(field: str) -> str:
    """The fixed App colour of a field No Time to Train writes."""
    return _FIELD_COLORS.get(field) or _POOL[zlib.crc32(field.encode()) % len(_POOL)]


def _look(field: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": field, "fieldColor": field_color(field)}
    if field == CURATED_FIELD:
        entry["colorByAttribute"] = DECISION_ATTRIBUTE
        entry["valueColors"] = [
            {"value": ACCEPTED, "color": ACCEPTED_COLOR},
            {"value": REJECTED, "color": REJECTED_COLOR},
        ]
    return entry


def apply_field_look(collection: Any, fields: Iterable[str]) -> list[str]:
    """Give No Time to Train's ``fields`` their look in the dataset's App settings: a colour
    scheme entry (fixed colour; for the curated field, colours by decision) for each field
    that has none yet, and the curated field left out of the default active fields when its
    entry is added (unless the user's active fields already decide: a list of fields to show
    leaves it out anyway). Nothing a user set is replaced.

    Returns:
        The fields whose entry was added.
    """

    dataset = collection._root_dataset
    dataset.reload()  # the App's process may have saved settings since
    config = dataset.app_config
    scheme = config.color_scheme or fo.ColorScheme()
    entries = list(scheme.fields or [])
    have = {entry.get("path") for entry in entries}
    added = [f for f in dict.fromkeys(fields) if f not in have]
    if not added:
        return []
    scheme.fields = entries + [_look(f) for f in added]
    config.color_scheme = scheme
    _set_active(dataset, config, added)
    dataset.save()
    return added


def _set_active(dataset: Any, config: Any, added: list[str]) -> None:
    """The curated field is not among the default active fields; the other fields that just
    got their look (new fields, which no one has chosen to show or hide yet) are. An
    exclusion list would activate every metadata and primitive field too, so the App's
    default (its label fields) becomes an explicit list the first time."""

    active = config.active_fields
    if active is None:
        if CURATED_FIELD not in added:
            return
        paths = fo.DatasetAppConfig.default_active_fields(dataset).paths
        config.active_fields = fo.ActiveFields(paths=[p for p in paths if p != CURATED_FIELD])
        return
    paths = list(active.paths or [])
    for field in added:
        if active.exclude and field == CURATED_FIELD and field not in paths:
            paths.append(field)
        elif not active.exclude and field != CURATED_FIELD and field not in paths:
            paths.append(field)
    active.paths = paths


def detection_box_xyxy(detection: Any, width: int, height: int) -> tuple[float, ...]:
    """Absolute pixel ``XYXY`` box of a ``fo.Detection`` in a ``width x height`` image."""
    x, y, w, h = (float(v) for v in detection.bounding_box)
    return (x * width, y * height, (x + w) * width, (y + h) * height)


def detection_full_mask(detection: Any, width: int, height: int) -> np.ndarray | None:
    """Full-image ``(height, width)`` bool mask of a ``fo.Detection``, or None without mask.

    The box-cropped mask is placed (and, if its size differs from the box, resized) the way
    FiftyOne renders it (:meth:`fiftyone.core.labels.Detection.to_segmentation`).
    """
    if not detection.has_mask:
        return None
    segmentation = detection.to_segmentation(frame_size=(width, height), target=255)
    return np.asarray(segmentation.get_mask()) > 0


def detection_to_reference(detection: Any, image: np.ndarray) -> Reference:
    """A :class:`~fiftyone_ntt.types.Reference` from a ``fo.Detection`` and its RGB image.

    The label id is the reference id; a detection without mask gives a box-only reference
    (its mask is then made by SAM 2 box prompting when the bank is built).
    """
    height, width = image.shape[:2]
    mask = detection_full_mask(detection, width, height)
    if mask is not None and not mask.any():
        mask = None  # an empty drawn mask: fall back to the box
    return Reference(
        image=image,
        class_name=str(detection.label),
        ref_id=str(detection.id),
        mask=mask,
        box=detection_box_xyxy(detection, width, height),
    )


def predictions_to_detections(predictions: Predictions, **attributes: Any) -> Any:
    """``fo.Detections`` of :class:`~fiftyone_ntt.types.Predictions`.

    Each detection has ``label``, ``confidence``, a relative ``[x, y, w, h]`` box and the
    mask cropped to its box (FiftyOne's convention), and, when the predictions carry
    features, :data:`EMBEDDING_ATTRIBUTE` (float16, see :func:`detection_embedding`).

    Args:
        predictions: detections of one image.
        **attributes: extra attributes set on the ``fo.Detections`` container.
    """

    height, width = predictions.image_size
    detections = []
    labels = predictions.labels
    features = predictions.features
    if features is not None:
        features = compact(features)
    for i in range(len(predictions)):
        x1, y1, x2, y2 = (float(v) for v in predictions.boxes[i])
        c1, r1 = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
        c2, r2 = min(width, int(np.ceil(x2))), min(height, int(np.ceil(y2)))
        if c2 <= c1 or r2 <= r1:
            continue
        detection = fo.Detection(
            label=labels[i],
            confidence=float(predictions.scores[i]),
            bounding_box=[c1 / width, r1 / height, (c2 - c1) / width, (r2 - r1) / height],
            mask=np.ascontiguousarray(predictions.masks[i, r1:r2, c1:c2]),
        )
        if features is not None:
            detection[EMBEDDING_ATTRIBUTE] = features[i]
        detections.append(detection)
    return fo.Detections(detections=detections, **attributes)


def detection_embedding(detection: Any) -> np.ndarray | None:
    """The float32 semantic feature of a prediction written with embeddings
    (:data:`EMBEDDING_ATTRIBUTE`), or None when it has none."""
    return decode_embedding(getattr(detection, EMBEDDING_ATTRIBUTE, None))


def decode_embedding(value: Any) -> np.ndarray | None:
    """A stored :data:`EMBEDDING_ATTRIBUTE` value as a float32 vector: an array, or the
    serialised bytes that ``values()`` returns for an attribute the schema does not declare
    (runs write labels without extending the schema); None stays None."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = fou.deserialize_numpy_array(value)
    return expand(np.asarray(value).reshape(-1))
