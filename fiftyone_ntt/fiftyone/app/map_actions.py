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

from fiftyone_ntt.fiftyone.analysis.features import feature_count
from fiftyone_ntt.fiftyone.analysis.maps import (
    MAP_PREFIX,
    PREDICTION,
    ROLE_ATTRIBUTE,
    SOURCE_FIELD_ATTRIBUTE,
    SOURCE_ID_ATTRIBUTE,
    similarity_key,
    source_labels,
)
from fiftyone_ntt.fiftyone.app.panel_state import Effect
from fiftyone_ntt.fiftyone.curation.decisions import (
    accept_predictions,
    reject_predictions,
    untag_labels,
)
from fiftyone_ntt.fiftyone.dataset.fields import ground_truth_fields

__all__ = [
    "ACTIONS",
    "curate_effect",
    "curate_selection",
    "lasso_ids",
    "lasso_labels",
    "map_prompt",
    "more_like_this",
    "more_like_this_effect",
    "on_map",
    "on_map_counts",
    "role_selection",
]

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


#: The view stages in which FiftyOne's Embeddings panel (1.22) puts a lasso of a patches map,
#: with the argument holding the selected ids (``/embeddings/v2/lasso-stage``): in a patches
#: view, patch ids (= label ids); in the samples grid, the label ids.
_LASSO_STAGES = {
    "fiftyone.core.stages.Select": "sample_ids",
    "fiftyone.core.stages.MatchLabels": "ids",
}


def _kwargs(kwargs: Any) -> dict[str, Any]:
    """A stage's arguments, given as a dict or as ``[[name, value], ...]`` (both are sent)."""
    if isinstance(kwargs, Mapping):
        return dict(kwargs)
    try:
        return {str(k): v for k, v in kwargs or ()}
    except (TypeError, ValueError):
        return {}


def lasso_ids(extended_selection: Any = None, extended_stages: Any = None) -> list[str]:
    """The ids a lasso names: the App's extended selection (``{"selection": [ids], "scope":
    ...}``, or a list of ids) and the id stages among its extended stages (``{cls: kwargs}``,
    or serialized stages ``[{"_cls", "kwargs"}]``)."""
    if isinstance(extended_selection, Mapping):
        ids = list(extended_selection.get("selection") or ())
    else:
        ids = list(extended_selection or ())
    stages = extended_stages or {}
    if not isinstance(stages, Mapping):
        stages = {s.get("_cls"): s.get("kwargs") for s in stages if isinstance(s, Mapping)}
    for cls, name in _LASSO_STAGES.items():
        found = _kwargs(stages.get(cls)).get(name)
        ids += list(found) if isinstance(found, (list, tuple)) else []
    return list(dict.fromkeys(str(i) for i in ids))


def lasso_labels(
    dataset: Any, extended_selection: Any = None, extended_stages: Any = None
) -> list[dict[str, str]]:
    """The labels of map fields that a lasso in FiftyOne's Embeddings panel selected, as
    selected-label dicts (``label_id``, ``sample_id``, ``field``) for :func:`curate_selection`.

    A lasso reaches operators as the App's *extended selection* (``ctx.extended_selection``:
    ``{"selection": [label ids], "scope": ...}``, e.g. set by ``set_extended_selection``) or,
    from the Embeddings panel of FiftyOne 1.22, as an extended view stage (the request's
    ``extended``: ``Select`` of patch ids in a patches view, ``MatchLabels`` of label ids in
    the samples grid). Ids that are not labels of a map field (a selection of samples) are
    left out; nothing selected gives ``[]``.
    """
    wanted = set(lasso_ids(extended_selection, extended_stages))
    if not wanted:
        return []
    out = []
    for field in _map_fields(dataset):
        sample_ids, label_ids = dataset.values(["id", f"{field}.detections.id"])
        out += [
            {"label_id": i, "sample_id": s, "field": field}
            for s, ids in zip(sample_ids, label_ids)
            for i in ids or ()
            if i in wanted
        ]
    return out


def on_map_counts(dataset: Any, selected: Iterable[Any]) -> dict[str, Any]:
    """``{"labels": n, "predictions": m, "on_map": True}`` of labels selected on a map: the
    labels the selection stands for, and how many of them :func:`curate_selection` would
    accept or reject (those not in a ground-truth field)."""
    sources = _resolve_sources(dataset, selected)
    truth = set(ground_truth_fields(dataset))
    return {
        "labels": sum(len(ids) for ids in sources.values()),
        "predictions": sum(len(ids) for f, ids in sources.items() if f not in truth),
        "on_map": True,
    }


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


# ---- the panel's buttons (each returns the Effect the panel carries out) -------------------


def on_map(selected: Iterable[Any]) -> bool:
    """Whether a selection holds labels of a map field (the panel then acts on the labels
    they copy: :func:`curate_effect`)."""
    return any(
        isinstance(item, Mapping) and str(item.get("field") or "").startswith(MAP_PREFIX)
        for item in selected or ()
    )


def curate_effect(collection: Any, selected: Iterable[Any], action: str) -> Effect:
    """:func:`curate_selection` of the panel's *Accept* / *Reject* / *Untag selected* on
    labels selected on a map (hundreds at a time): the count in the message."""
    result = curate_selection(collection._root_dataset, selected, action)
    variant = "success" if result["count"] else "warning"
    return Effect(result["message"], variant=variant, result=result)


def _run_bank(dataset: Any, pred_field: str) -> str | None:
    if pred_field in dataset.list_runs():
        return getattr(dataset.get_run_info(pred_field).config, "bank_key", None)
    return None


def map_prompt(
    collection: Any,
    plugin: str,
    pred_field: str | None,
    bank_key: str | None = None,
    on_success: Any = None,
) -> Effect:
    """Open the *Map predictions* form for ``pred_field`` (a run's field) with the bank its
    run used (else ``bank_key``); when its predictions lack features, computing them first
    is ticked. The operator opens the Embeddings panel on the map."""
    dataset = collection._root_dataset
    if not pred_field or not dataset.has_sample_field(pred_field):
        return Effect(
            "No segmentation to map yet: 'Segment this view…' (features are kept), then "
            "Map predictions",
            variant="warning",
        )
    bank = _run_bank(dataset, pred_field) or bank_key
    if not bank:
        return Effect(
            "No memory bank yet: tag references, then 'Build / rebuild' a bank", variant="warning"
        )
    with_features, total = feature_count(collection, pred_field)
    params: dict[str, Any] = {"pred_field": pred_field, "bank": bank}
    if total and with_features < total:
        params["recompute_features"] = True
    return Effect(
        prompt={
            "operator": f"{plugin}/ntt_map_predictions",
            "params": params,
            "on_success": on_success,
        }
    )


def _map_source(dataset: Any, map_field: str) -> str | None:
    """The predictions field a map field copies."""
    fields = dataset.distinct(f"{map_field}.detections.{SOURCE_FIELD_ATTRIBUTE}")
    truth = set(ground_truth_fields(dataset))
    return next((f for f in fields if f not in truth), None)


def more_like_this_effect(
    collection: Any,
    selected: Iterable[Any],
    plugin: str,
    bank_key: str | None = None,
    k: int = 25,
) -> Effect:
    """The panel's *More like this*: the view of the predictions most similar to the label
    selected on the map (:func:`more_like_this`). Without the map's similarity index, its
    form opens (then press the button again)."""
    dataset = collection._root_dataset
    selected = list(selected or ())
    if not selected:
        return Effect(
            "Select a label on the map (a reference, a negative or a prediction), then "
            "'More like this'",
            variant="warning",
        )
    try:
        view = more_like_this(dataset, selected, k=k)
    except ValueError as error:
        if "no similarity index" not in str(error):
            raise
        field = next(
            (str(i["field"]) for i in selected if isinstance(i, Mapping) and i.get("field")),
            "",
        )
        pred_field = _map_source(dataset, field) if field.startswith(MAP_PREFIX) else field
        bank = (_run_bank(dataset, pred_field) if pred_field else None) or bank_key
        return Effect(
            f"{error}. Its form is open: index, then 'More like this' again",
            variant="info",
            prompt={
                "operator": f"{plugin}/ntt_similar_predictions",
                "params": {"pred_field": pred_field, "bank": bank},
            },
        )
    # the App gets the ids in order: a similarity stage carries ObjectIds in its state that
    # do not survive the trip to the App and back
    ids = view.values("id")
    shown = dataset.to_patches(view._patches_field).select(ids, ordered=True)
    return Effect(
        f"The {len(ids)} prediction(s) most like the {len(selected)} selected label(s), "
        "most similar first",
        variant="info",
        view=shown,
        result=len(ids),
    )


def _latest_map(dataset: Any, pred_field: str) -> str | None:
    """The newest map field of ``pred_field`` (any bank and version)."""
    keys = [
        k
        for k in dataset.list_brain_runs()
        if k.startswith(MAP_PREFIX)
        and dataset.has_sample_field(k)
        and pred_field in dataset.distinct(f"{k}.detections.{SOURCE_FIELD_ATTRIBUTE}")
    ]
    if not keys:
        return None
    return max(keys, key=lambda k: dataset.get_brain_info(k).timestamp)


def role_selection(collection: Any, pred_field: str | None, role: str) -> Effect:
    """Every point of ``role`` (``fp``, ``tp``, ``prediction``, ``reference``,
    ``negative``) on the newest map of ``pred_field``, as the App's selected labels (what a
    lasso around that cluster selects): ``result`` holds them for
    ``ctx.ops.set_selected_labels``; *Reject* / *Accept* / *Untag* then act on them."""
    dataset = collection._root_dataset
    field = _latest_map(dataset, pred_field) if pred_field else None
    if field is None:
        return Effect(f"{pred_field!r} has no map yet: 'Map predictions' first", variant="warning")
    base = f"{field}.detections"
    sample_ids, ids, roles = dataset.values(["id", f"{base}.id", f"{base}.{ROLE_ATTRIBUTE}"])
    labels = [
        # "type" as the App's own selections carry it: a Python Session attached to the App
        # cannot read a selected label whose type is null and re-sends its stale state later
        {"label_id": i, "sample_id": s, "field": field, "type": "default"}
        for s, label_ids, label_roles in zip(sample_ids, ids, roles)
        for i, r in zip(label_ids or [], label_roles or [])
        if r == role
    ]
    if not labels:
        return Effect(f"no {role!r} point on map {field!r}", variant="warning", result=[])
    return Effect(
        f"{len(labels)} {role} point(s) of {field!r} selected: Reject / Accept / Untag act on them",
        variant="info",
        result=labels,
    )
