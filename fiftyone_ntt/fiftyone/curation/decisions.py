"""Accepting and rejecting predictions: label tags where the labels are.

A prediction the user accepts becomes a reference (tag ``"ntt:ref"``), one the user rejects
becomes a negative (tag ``"ntt:neg"``): an instance that looks like its class but is not
(see :attr:`fiftyone_ntt.config.NTTConfig.negative_margin`). The tags are put on the
prediction labels themselves, in their field; the ground truth is never touched by accept or
reject (tag ground-truth instances with
:func:`~fiftyone_ntt.fiftyone.curation.references.tag_references`). A label is a reference or a
negative, never both: accepting removes ``"ntt:neg"``, rejecting removes ``"ntt:ref"``.
:func:`~fiftyone_ntt.fiftyone.banks.index.build_bank` reads both tags from the ground-truth field
and from every prediction field at once.

:func:`reference_table` summarises, per class, the positives and negatives and the fields
they come from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import fiftyone as fo
from fiftyone import ViewField as F

from fiftyone_ntt.fiftyone.curation.references import check_image_collection
from fiftyone_ntt.fiftyone.dataset.fields import (
    CURATED_FIELD,
    NEG_TAG,
    REF_TAG,
    check_detections_field,
    ground_truth_fields,
    label_type,
)
from fiftyone_ntt.fiftyone.dataset.labels import DECISION_ATTRIBUTE, decision_of

__all__ = [
    "NEG_TAG",
    "accept_predictions",
    "reference_table",
    "reject_predictions",
    "tagged_fields",
    "untag_labels",
]


def _dataset(collection: Any) -> Any:
    return collection._root_dataset


def _ids(label_ids: Iterable[Any] | None, field: str) -> list[str] | None:
    """Label ids from strings or selected-label dicts (``ctx.selected_labels``); dicts of
    another field are left out."""
    if label_ids is None:
        return None
    if isinstance(label_ids, (str, Mapping)):
        label_ids = [label_ids]
    out = []
    for item in label_ids:
        if isinstance(item, Mapping):
            if item.get("field", field) != field:
                continue
            item = item["label_id"]
        out.append(str(item))
    return list(dict.fromkeys(out))


def _dataset_label_ids(dataset: Any, field: str, ids: list[str]) -> set[str]:
    view = dataset.select_labels(ids=ids, fields=field, omit_empty=True)
    return {str(i) for i in view.values(f"{field}.detections.id", unwind=True)}


def _all_label_ids(collection: Any, field: str) -> list[str]:
    """Ids of every label of ``field`` in ``collection`` (a patches view holds one label per
    patch)."""

    kind = label_type(collection, field)
    if kind is fo.Detection:
        return [str(i) for i in collection.values(f"{field}.id") if i is not None]
    return [str(i) for i in collection.values(f"{field}.detections.id", unwind=True)]


def _resolve(collection: Any, field: str, label_ids: Iterable[Any] | None, action: str):
    """Checked ``(dataset, ids)`` of the labels an accept/reject applies to."""

    check_image_collection(collection)
    check_detections_field(collection, field, "prediction field")
    dataset = _dataset(collection)
    gt = ground_truth_fields(dataset)
    if field in gt:
        raise ValueError(
            f"field {field!r} is the ground truth of this dataset's banks or runs; {action} "
            "applies to predictions and never modifies the ground truth: to use a "
            "ground-truth instance as a reference, tag it with tag_references (or 'Tag "
            "references'); to stop using it, untag it"
        )
    ids = _ids(label_ids, field)
    if ids is None:
        ids = _all_label_ids(collection, field)
    elif ids:
        found = _dataset_label_ids(dataset, field, ids)
        missing = [i for i in ids if i not in found]
        if missing:
            raise ValueError(
                f"labels {missing[:5]}{' ...' if len(missing) > 5 else ''} are not labels "
                f"of field {field!r} in dataset {dataset.name!r}; select labels of this "
                "dataset and field (in the App: click them in the grid, the modal or a "
                "patches view of the field)"
            )
    if not ids:
        return dataset, ids
    view = dataset.select_labels(ids=ids, fields=field, omit_empty=True)
    no_mask = view.filter_labels(field, (F("mask") == None) & (F("mask_path") == None))  # noqa: E711
    bad = [str(i) for i in no_mask.values(f"{field}.detections.id", unwind=True)]
    if bad:
        raise ValueError(
            f"{len(bad)} label(s) of {field!r} have no instance mask (e.g. {bad[0]}); a "
            f"{'reference' if action == 'accept' else 'negative'} is the feature under its "
            "mask: use predictions with masks (No Time to Train writes them), or tag a "
            "ground-truth instance instead"
        )
    unscored = view.filter_labels(field, F("confidence") == None)  # noqa: E711
    if unscored.count(f"{field}.detections") == view.count(f"{field}.detections"):
        raise ValueError(
            f"the labels of {field!r} have no confidence: they look like ground truth, which "
            f"{action} never modifies; to use ground-truth instances as references, tag "
            "them with tag_references (or 'Tag references')"
        )
    return dataset, ids


def _set_decisions(view: Any, field: str, ids: list[str], decision: str | None) -> None:
    """Curated labels carry their decision (what their tags say) for the App's colours:
    kept in step when a curated label is accepted, rejected or untagged again."""

    if field != CURATED_FIELD or not ids:
        return
    path = f"{field}.detections.{DECISION_ATTRIBUTE}"
    view.set_label_values(path, dict.fromkeys(ids, decision), dynamic=True)


def _retag(dataset: Any, field: str, ids: list[str], add: str, remove: str) -> int:

    if not ids:
        return 0
    view = dataset.select_labels(ids=ids, fields=field, omit_empty=True)
    view.untag_labels(remove, label_fields=[field])
    view.tag_labels(add, label_fields=[field])
    _set_decisions(view, field, ids, decision_of([add]))
    return len(ids)


def accept_predictions(
    collection: Any, pred_field: str, label_ids: Iterable[Any] | None = None
) -> int:
    """Tag predictions as references (``"ntt:ref"``), where they are.

    Args:
        collection: the dataset or a view of it (a patches view too).
        pred_field: the prediction ``Detections`` field.
        label_ids: the labels to accept, as ids or selected-label dicts (``label_id``,
            ``field``); default: every label of ``pred_field`` in ``collection``.

    Returns:
        How many labels are tagged (those of ``label_ids`` already tagged count too).

    Raises:
        ValueError: not a ``Detections`` field, a ground-truth field, labels of another
            dataset or field, labels without mask; the message says which and what to do.
    """
    dataset, ids = _resolve(collection, pred_field, label_ids, "accept")
    return _retag(dataset, pred_field, ids, REF_TAG, NEG_TAG)


def reject_predictions(
    collection: Any, pred_field: str, label_ids: Iterable[Any] | None = None
) -> int:
    """Tag predictions as negatives (``"ntt:neg"``, false positives), where they are.

    Same arguments, result and errors as :func:`accept_predictions`.
    """
    dataset, ids = _resolve(collection, pred_field, label_ids, "reject")
    return _retag(dataset, pred_field, ids, NEG_TAG, REF_TAG)


def untag_labels(
    collection: Any,
    fields: str | Sequence[str],
    label_ids: Iterable[Any] | None = None,
    tags: Sequence[str] = (REF_TAG, NEG_TAG),
) -> int:
    """Remove the reference and negative tags from labels (of any ``Detections`` field,
    ground truth included: removing a tag is how a reference stops being one).

    Args:
        collection: the dataset or a view (without ``label_ids``: every label of
            ``fields`` in it).
        fields: one field or several.
        label_ids: ids or selected-label dicts.
        tags: the tags to remove.

    Returns:
        How many labels carried one of ``tags`` before.
    """

    fields = [fields] if isinstance(fields, str) else list(fields)
    for field in fields:
        check_detections_field(collection, field, "field")
    dataset = _dataset(collection)
    total = 0
    for field in fields:
        ids = _ids(label_ids, field)
        if ids is None:
            ids = _all_label_ids(collection, field)
        if not ids:
            continue
        view = dataset.select_labels(ids=ids, fields=field, omit_empty=True)
        tagged = view.filter_labels(field, F("tags").contains(list(tags), all=False))
        total += tagged.count(f"{field}.detections")
        for tag in tags:
            view.untag_labels(tag, label_fields=[field])
        _set_decisions(view, field, ids, None)
    return total


def reference_table(
    collection: Any,
    fields: Sequence[str] | None = None,
    *,
    tag: str = REF_TAG,
    neg_tag: str = NEG_TAG,
) -> list[dict[str, Any]]:
    """Per class: positives and negatives, and the fields they come from.

    Args:
        collection: dataset or view (a patches view counts its patches' labels).
        fields: the label fields to read; default every ``Detections`` field holding a
            tagged label.
        tag, neg_tag: the reference and negative tags.

    Returns:
        One row per class, sorted by class name: ``class``, ``positives``, ``negatives``,
        ``box_only`` (positives without mask), ``fields`` (``{field: {"positives": n,
        "negatives": m}}``) and ``global`` (True for a background label, whose negatives
        apply to every class: :data:`fiftyone_ntt.memory_bank.BACKGROUND_LABELS`). A label
        in several fields (a cloned field keeps label ids) counts once, in the first.
    """

    # deferred: torch loads only when this runs
    from fiftyone_ntt.memory_bank import BACKGROUND_LABELS

    check_image_collection(collection)
    if fields is None:
        fields = tagged_fields(collection, (tag, neg_tag))
    rows: dict[str, dict[str, Any]] = {}
    # a label in several fields (a cloned field keeps label ids) is one instance, counted
    # in the first field that holds it
    counted: dict[str, set[str]] = {"positives": set(), "negatives": set()}
    for field in fields:
        check_detections_field(collection, field, "field")
        patches = label_type(collection, field) is fo.Detection
        prefix = field if patches else f"{field}.detections"
        for key, which in (("positives", tag), ("negatives", neg_tag)):
            view = collection.filter_labels(field, F("tags").contains(which))
            ids, labels = view.values([f"{prefix}.id", f"{prefix}.label"], unwind=True)
            bare: set[str] = set()
            if key == "positives":
                no_mask = (F("mask") == None) & (F("mask_path") == None)  # noqa: E711
                bare = {
                    str(i)
                    for i in view.filter_labels(field, no_mask).values(f"{prefix}.id", unwind=True)
                }
            for label_id, label in zip(ids, labels):
                if label is None or label_id is None or str(label_id) in counted[key]:
                    continue
                counted[key].add(str(label_id))
                row = rows.setdefault(
                    str(label),
                    {
                        "class": str(label),
                        "positives": 0,
                        "negatives": 0,
                        "box_only": 0,
                        "fields": {},
                        "global": str(label) in BACKGROUND_LABELS,
                    },
                )
                row[key] += 1
                row["box_only"] += int(str(label_id) in bare)
                per_field = row["fields"].setdefault(field, {"positives": 0, "negatives": 0})
                per_field[key] += 1
    return [rows[name] for name in sorted(rows)]


def tagged_fields(collection: Any, tags: Sequence[str] = (REF_TAG, NEG_TAG)) -> list[str]:
    """The ``Detections`` fields of ``collection`` (``Detection`` in a patches view) that
    hold a label tagged with one of ``tags``, sorted."""

    schema = collection.get_field_schema()
    out = []
    for name, field in schema.items():
        if getattr(field, "document_type", None) not in (fo.Detections, fo.Detection):
            continue
        counts = collection.count_label_tags(label_fields=[name])
        if any(counts.get(t) for t in tags):
            out.append(name)
    return sorted(out)
