"""What the user selected in the App, as labels of the dataset.

In the grid or the sample view the App gives the selected labels (``ctx.selected_labels``:
``label_id``, ``sample_id``, ``field``). In a patches view it may give only the ticked
patches (``ctx.selected``: ids of patch samples, which are not samples of the dataset).
:func:`selected_labels` turns both into the labels they stand for, with the id of the
dataset sample they are in:

- a patches view of one field (``to_patches``, the panel's *Show references*): the patch's
  label (``Detection``) in that field;
- evaluation patches (``to_evaluation_patches``, TP/FP/FN): every ground-truth and
  predicted label of the patch (a TP holds both, an FP only predictions, an FN only ground
  truth); accepting or rejecting applies to the predictions among them, untagging to all.

Labels the user clicked are kept as they are (their ``sample_id`` mapped from the patch to
the dataset sample when the view is a patches view); labels that stand for a ticked patch
carry ``"patch": True``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import fiftyone as fo

__all__ = ["selected_labels"]


def _patch_label_paths(view: Any) -> dict[str, str]:
    """``{field: path of its label ids}`` of a patches view's label fields."""

    schema = view.get_field_schema()
    paths = {}
    for field in getattr(view, "_label_fields", None) or []:
        kind = getattr(schema.get(field), "document_type", None)
        if kind is fo.Detection:
            paths[field] = f"{field}.id"
        elif kind is fo.Detections:
            paths[field] = f"{field}.detections.id"
    return paths


def _patch_labels(view: Any, patch_ids: list[str]) -> list[dict[str, Any]]:
    paths = _patch_label_paths(view)
    if not patch_ids or not paths:
        return []
    fields = sorted(paths)
    patches = view.select(patch_ids, ordered=True)
    values = patches.values(["sample_id", *(paths[f] for f in fields)])
    out = []
    for index, sample_id in enumerate(values[0]):
        for field, column in zip(fields, values[1:]):
            ids = column[index]
            for label_id in ids if isinstance(ids, list) else [ids]:
                if label_id is not None:
                    out.append(
                        {
                            "label_id": str(label_id),
                            "sample_id": str(sample_id),
                            "field": field,
                            "patch": True,
                        }
                    )
    return out


def selected_labels(
    collection: Any,
    selected: Iterable[str] | None = None,
    labels: Iterable[Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The labels the user selected, once each (by field and id).

    Args:
        collection: the App's view (``ctx.view``); a patches or evaluation patches view
            maps ``selected`` patches to their labels.
        selected: ``ctx.selected``: sample ids, or patch ids in a patches view (ids that
            are not patches of ``collection`` are ignored; in a view of samples they are
            ignored too: selecting a sample does not select its labels).
        labels: ``ctx.selected_labels``.

    Returns:
        Dicts with ``label_id``, ``sample_id`` (of the dataset sample), ``field``, and
        ``patch`` (True when the label stands for a ticked patch).
    """
    clicked = [
        {"label_id": str(s["label_id"]), "sample_id": s.get("sample_id"), "field": s["field"]}
        for s in labels or []
        if s.get("label_id") and s.get("field")
    ]
    if not getattr(collection, "_is_patches", False):
        return _unique(clicked)
    patch_ids = [str(i) for i in selected or []]
    in_view = set(collection.select(patch_ids).values("id")) if patch_ids else set()
    out = _patch_labels(collection, [i for i in patch_ids if i in in_view])
    # a label clicked in a patch names the patch as its sample: name the dataset's sample
    by_patch = {}
    clicked_patches = [c["sample_id"] for c in clicked if c["sample_id"]]
    if clicked_patches:
        ids, sources = collection.select(clicked_patches).values(["id", "sample_id"])
        by_patch = dict(zip(ids, sources))
    for label in clicked:
        label["sample_id"] = by_patch.get(label["sample_id"], label["sample_id"])
    return _unique(clicked + out)


def _unique(labels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for label in labels:
        seen.setdefault((label["field"], label["label_id"]), label)
    return list(seen.values())
