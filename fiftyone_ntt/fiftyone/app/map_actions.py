"""What the panel does with labels selected on the embeddings map (issue 22 §3-4): "More like
this" and accepting, rejecting or untagging a lasso selection of many labels at once.

The App hands over the selected labels (ids, or ``{"label_id", "field", ...}`` dicts as in
``ctx.selected_labels``). A label of a map field (:mod:`~fiftyone_ntt.fiftyone.analysis.maps`)
stands for the label it copies; any other label stands for itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fiftyone import ViewField as F

from fiftyone_ntt.fiftyone.analysis.maps import (
    MAP_PREFIX,
    PREDICTION,
    ROLE_ATTRIBUTE,
    SOURCE_ID_ATTRIBUTE,
    similarity_key,
    source_labels,
)
from fiftyone_ntt.fiftyone.curation.decisions import (
    accept_predictions,
    reject_predictions,
    untag_labels,
)
from fiftyone_ntt.fiftyone.dataset.fields import ground_truth_fields

__all__ = ["ACTIONS", "curate_selection", "more_like_this"]

#: What :func:`curate_selection` can do.
ACTIONS = ("accept", "reject", "untag")


def _map_fields(dataset: Any) -> list[str]:
    return sorted(f for f in dataset.get_field_schema() if f.startswith(MAP_PREFIX))


def _split(selected: Iterable[Any]) -> tuple[list[str], dict[str, list[str]]]:
    """``(ids without a field, {field: ids})`` of a selection."""
    loose, by_field = [], {}
    for item in selected or ():
        if isinstance(item, Mapping):
            label_id, field = str(item.get("label_id") or ""), item.get("field")
            if not label_id:
                continue
            if field:
                by_field.setdefault(str(field), []).append(label_id)
            else:
                loose.append(label_id)
        else:
            loose.append(str(item))
    return loose, by_field


def _resolve_sources(dataset: Any, selected: Iterable[Any]) -> dict[str, list[str]]:
    """``{source field: label ids}`` of a selection, map labels replaced by their sources
    (each label once)."""
    loose, by_field = _split(selected)
    out: dict[str, list[str]] = {}
    maps = _map_fields(dataset)
    for field, ids in by_field.items():
        if field in maps:
            for source, source_ids in source_labels(dataset, field, ids).items():
                out.setdefault(source, []).extend(source_ids)
        else:
            out.setdefault(field, []).extend(ids)
    if loose:
        remaining = set(loose)
        for field in maps:
            for source, source_ids in source_labels(dataset, field, remaining).items():
                out.setdefault(source, []).extend(source_ids)
            found = set(dataset.values(f"{field}.detections.id", unwind=True))
            remaining -= found
        if remaining:
            raise ValueError(
                f"labels {sorted(remaining)[:5]} are not labels of a map field; pass the "
                "selected labels with their field (ctx.selected_labels), or select them on "
                "the map"
            )
    return {field: list(dict.fromkeys(ids)) for field, ids in out.items()}


def curate_selection(dataset: Any, selected: Iterable[Any], action: str) -> dict[str, Any]:
    """Accept, reject or untag every label of a selection (e.g. a lasso on the map, hundreds
    of labels), each where it is.

    Map labels act on the labels they copy. Accepting or rejecting applies to predictions
    only: selected ground-truth labels (references on the map) are left as they are and
    counted in ``skipped`` (tag or untag them with 'Tag references'); untagging applies to
    every field.

    Args:
        dataset: the dataset.
        selected: label ids or selected-label dicts.
        action: ``"accept"`` (references), ``"reject"`` (negatives) or ``"untag"`` (undo).

    Returns:
        ``action``, ``count`` (labels changed or tagged), ``skipped`` (ground-truth labels
        an accept/reject leaves alone), ``fields`` (``{field: labels}``) and ``message``.
    """
    if action not in ACTIONS:
        raise ValueError(f"action={action!r}; choose one of {list(ACTIONS)}")
    sources = _resolve_sources(dataset, selected)
    if not sources:
        raise ValueError("no labels selected: lasso points on the map, or select labels")
    truth = set(ground_truth_fields(dataset))
    count = skipped = 0
    fields: dict[str, int] = {}
    for field, ids in sources.items():
        if action == "untag":
            done = untag_labels(dataset, field, ids)
        elif field in truth:
            skipped += len(ids)
            continue
        elif action == "accept":
            done = accept_predictions(dataset, field, ids)
        else:
            done = reject_predictions(dataset, field, ids)
        fields[field] = done
        count += done
    verb = {"accept": "accepted", "reject": "rejected", "untag": "untagged"}[action]
    message = f"{count} label(s) {verb}"
    if skipped:
        message += f"; {skipped} ground-truth label(s) left as they are"
    if action == "reject" and count:
        message += "; rebuild the bank to use the new negatives"
    return {
        "action": action,
        "count": count,
        "skipped": skipped,
        "fields": fields,
        "message": message,
    }


def more_like_this(dataset: Any, selected: Iterable[Any], k: int = 25) -> Any:
    """The predictions most similar to the selected labels of a map field (a reference, a
    negative or a prediction): a patches view of the map field, most similar first, the
    query left out. From a false positive (role ``fp``), the predictions of its class that
    are not true positives: the ones most likely to be the same mistake.

    Needs the map's similarity index (``similar_predictions``, the 'Similarity index of
    predictions' operator).
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k={k!r} must be a positive number of labels")
    loose, by_field = _split(selected)
    maps = _map_fields(dataset)
    queries: dict[str, list[str]] = {f: ids for f, ids in by_field.items() if f in maps}
    for field in maps:
        for label_id in loose:
            if label_id in set(dataset.values(f"{field}.detections.id", unwind=True)):
                queries.setdefault(field, []).append(label_id)
            else:
                # a prediction selected in its own field: its copy on this map
                copies = dataset.filter_labels(
                    field, F(SOURCE_ID_ATTRIBUTE) == label_id, only_matches=True
                ).values(f"{field}.detections.id", unwind=True)
                queries.setdefault(field, []).extend(copies[:1])
    queries = {f: ids for f, ids in queries.items() if ids}
    if not queries:
        raise ValueError(
            "select a label on the map (or a prediction that is on a map) for 'More like this'"
        )
    field, ids = next(iter(queries.items()))
    key = similarity_key(field)
    if key not in dataset.list_brain_runs():
        raise ValueError(
            f"map field {field!r} has no similarity index; run 'Similarity index of "
            "predictions' (similar_predictions) for its field and bank first"
        )
    # in a patches view, a patch's id is its label's id
    patches = dataset.to_patches(field)
    chosen = patches.select(ids)
    roles = set(chosen.values(f"{field}.{ROLE_ATTRIBUTE}"))
    view = patches.exclude(ids)
    wanted = [PREDICTION, "tp", "fp"]
    if roles == {"fp"}:
        wanted = [PREDICTION, "fp"]
        view = view.match(F(f"{field}.label").is_in(sorted(set(chosen.values(f"{field}.label")))))
    view = view.match(F(f"{field}.{ROLE_ATTRIBUTE}").is_in(wanted))
    return view.sort_by_similarity(ids, k=k, brain_key=key)
