"""What the buttons of the App panel "No Time to Train" do: ``action -> Effect``.

Each action calls the library (tagging, banks, preview, curation, evaluation, delegated
operations) and returns an :class:`~fiftyone_ntt.fiftyone.app.panel_state.Effect` saying what the
App should show next; the panel (``operators/panel/``) applies it. Bad input gives an
``Effect`` with a warning, or raises a ``ValueError``/``KeyError`` whose message the panel
shows. The rows the panel shows are in :mod:`fiftyone_ntt.fiftyone.app.panel_state`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fiftyone import ViewField as F

import fiftyone_ntt.fiftyone as nf
from fiftyone_ntt.config import get_preset
from fiftyone_ntt.fiftyone.app.map_actions import (
    curate_effect,
    lasso_labels,
    on_map,
    on_map_counts,
)
from fiftyone_ntt.fiftyone.app.panel_state import (
    DEMO_REFERENCE_FILE,
    DEMO_TARGET_FILES,
    Effect,
    demo_split,
    label_fields_with_tags,
    prediction_fields,
    selection_summary,
)
from fiftyone_ntt.fiftyone.banks.build import build_bank as _build
from fiftyone_ntt.fiftyone.banks.index import list_banks
from fiftyone_ntt.fiftyone.banks.inputs import validate_build
from fiftyone_ntt.fiftyone.curation.references import (
    sample_references,
    tag_references,
    untag_references,
)
from fiftyone_ntt.fiftyone.curation.selection import selected_labels as resolve
from fiftyone_ntt.fiftyone.dataset.fields import NEG_TAG, PREVIEW_FIELD, REF_TAG

__all__ = [
    "accept_selected",
    "build_bank",
    "build_problems",
    "default_bank_key",
    "demo_references",
    "reference_field",
    "reference_view",
    "reject_selected",
    "run_preview",
    "sample_references_prompt",
    "selection_counts",
    "show_references",
    "tag_selected",
    "untag_selected",
]


def reference_view(collection: Any, tag: str = REF_TAG, field: str | None = None) -> Any:
    """A patches view of exactly the labels tagged ``tag`` (of ``field``, default the field
    holding most of them); None when none is tagged."""

    dataset = collection._root_dataset
    tagged = {f: c.get(tag, 0) for f, c in label_fields_with_tags(dataset, (tag,)).items()}
    if field is None or not tagged.get(field):
        if not tagged:
            return None
        field = max(sorted(tagged), key=lambda f: tagged[f])
    return dataset.filter_labels(field, F("tags").contains(tag)).to_patches(field)


def show_references(collection: Any, tag: str = REF_TAG, field: str | None = None) -> Effect:
    """Show the references (or negatives, ``tag=NEG_TAG``) as a patches view."""
    what = "references" if tag == REF_TAG else "negatives"
    view = reference_view(collection, tag, field)
    if view is None:
        return Effect(
            f"No label is tagged as one of the {what} yet: select labels and use 'Tag "
            f"selected labels as {what}'",
            variant="warning",
        )
    fields = sorted(label_fields_with_tags(collection._root_dataset, (tag,)))
    message = f"Showing {len(view)} {what}"
    if len(fields) > 1:
        message += f" of {view._patches_field!r} (also tagged in {[f for f in fields]})"
    return Effect(message, variant="info", view=view, result=len(view))


def _selected(
    collection: Any,
    selected_labels: Iterable[Mapping[str, Any]] | None,
    selected: Iterable[str] | None = None,
    extended_selection: Any = None,
    extended_stages: Any = None,
) -> list[dict[str, Any]]:
    """The selected labels, and in a patches view the labels of the ticked patches
    (:func:`fiftyone_ntt.fiftyone.curation.selection.selected_labels`); when none, the map
    labels of a lasso in the Embeddings panel (the App's extended selection or stages:
    :func:`~fiftyone_ntt.fiftyone.app.map_actions.lasso_labels`)."""

    labels = resolve(collection, selected, selected_labels)
    if not labels and (extended_selection or extended_stages):
        labels = lasso_labels(collection._root_dataset, extended_selection, extended_stages)
    return labels


def tag_selected(
    collection: Any,
    selected_labels: Iterable[Mapping[str, Any]],
    tag: str,
    selected: Iterable[str] | None = None,
) -> Effect:
    """Tag the selected labels as references (``REF_TAG``) or negatives (``NEG_TAG``); the
    other tag is removed from them (a label is one or the other)."""

    what = "references" if tag == REF_TAG else "negatives"
    labels = [s for s in _selected(collection, selected_labels, selected) if not s.get("patch")]
    collection = collection._root_dataset
    if not labels:
        return Effect(
            f"Select labels first (click them in the grid or the sample view), then tag "
            f"them as {what}",
            variant="warning",
        )
    other = NEG_TAG if tag == REF_TAG else REF_TAG
    untag_references(collection, labels, tag=other)
    count = tag_references(collection, labels, tag=tag)
    return Effect(f"Tagged {count} label(s) as {what}", result=count)


def selection_counts(
    collection: Any,
    selected_labels: Iterable[Mapping[str, Any]] | None,
    selected: Iterable[str] | None = None,
    extended_selection: Any = None,
    extended_stages: Any = None,
) -> dict[str, int]:
    """``{"labels": n, "predictions": m}`` of what the panel's buttons would act on (the
    labels of ticked patches included; labels selected on a map, a lasso included, count
    as the labels they copy, with ``"on_map": True``)."""

    labels = _selected(collection, selected_labels, selected, extended_selection, extended_stages)
    if on_map(labels):
        return on_map_counts(collection._root_dataset, labels)
    return selection_summary(labels, prediction_fields(collection))


def untag_selected(
    collection: Any,
    selected_labels: Iterable[Mapping[str, Any]],
    selected: Iterable[str] | None = None,
    extended_selection: Any = None,
    extended_stages: Any = None,
) -> Effect:
    """Remove the reference and negative tags from the selected labels (in a patches view:
    from every label of the ticked patches; on a map, a lasso included: from the labels
    they copy)."""

    labels = _selected(collection, selected_labels, selected, extended_selection, extended_stages)
    if on_map(labels):
        return curate_effect(collection, labels, "untag")
    collection = collection._root_dataset
    if not labels:
        return Effect(
            "Select labels (or, in a patches view, patches) first, then untag them",
            variant="warning",
        )
    removed = sum(untag_references(collection, labels, tag=t) for t in (REF_TAG, NEG_TAG))
    return Effect(f"Removed {removed} tag(s) from {len(labels)} label(s)", result=removed)


def default_bank_key(collection: Any, field: str | None = None) -> str:
    """The key the panel builds into: the newest bank's, else ``<field>-refs``."""

    banks = sorted(list_banks(collection), key=lambda b: str(b.get("created", "")))
    if banks:
        return banks[-1]["key"]
    return f"{field or 'ground_truth'}-refs"


def reference_field(collection: Any) -> str | None:
    """The ground-truth field the bank records: of the fields holding references, the one
    with most that is not a prediction field (else the one with most)."""
    tagged = label_fields_with_tags(collection._root_dataset, (REF_TAG,))
    if not tagged:
        return None
    preds = set(prediction_fields(collection))
    candidates = [f for f in tagged if f not in preds] or list(tagged)
    return max(sorted(candidates), key=lambda f: tagged[f][REF_TAG])


def build_problems(
    collection: Any, bank_key: str | None, preset: str | None
) -> list[tuple[str, str]]:
    """What is wrong with building bank ``bank_key`` with ``preset`` from the dataset's
    references, as ``(parameter, message)``: ``bank_key``, ``preset`` or the references
    (``gt_field``, ``fields``, ``classes``). The checks of the *Build memory bank* operator
    (:func:`~fiftyone_ntt.fiftyone.banks.inputs.validate_build`, the preset's name), plus: a
    new version of an existing bank keeps its preset (its versions are compared and a run
    is resumed with the next one), so another preset needs another key."""

    dataset = collection._root_dataset
    problems: list[tuple[str, str]] = []
    if bank_key is not None and not str(bank_key).strip():
        problems.append(
            (
                "bank_key",
                "the bank key is empty: enter a name of 1-100 letters, digits, '_', '-' or "
                "'.' (an existing key adds a version to that bank)",
            )
        )
        bank_key = None
    try:
        get_preset(preset)  # type: ignore[arg-type]
    except (ValueError, TypeError) as error:
        problems.append(("preset", str(error)))
    gt_field = reference_field(dataset)
    if gt_field is not None:
        problems += validate_build(dataset, gt_field, bank_key=bank_key)[1]
    existing = {b["key"]: b for b in list_banks(dataset)}.get(bank_key) if bank_key else None
    old = (existing or {}).get("preset") or "default"
    if existing and not any(p == "preset" for p, _ in problems) and preset != old:
        problems.append(
            (
                "bank_key",
                f"bank {bank_key!r} (v{existing.get('version', 1)}) was built with preset "
                f"{old!r}; its next version must use the same models, so that its versions "
                f"compare: choose preset {old!r} to rebuild it, or enter a new bank key for "
                f"a {preset!r} bank",
            )
        )
    return problems


def build_bank(
    collection: Any, bank_key: str | None = None, preset: str = "default", **kwargs: Any
) -> Effect:
    """Build a new version of a bank from the dataset's references and negatives (in the
    ground truth and in prediction fields)."""

    dataset = collection._root_dataset
    gt_field = reference_field(dataset)
    if gt_field is None:
        return Effect(
            "No reference is tagged yet: tag a few labels as references first",
            variant="warning",
        )
    key = bank_key or default_bank_key(dataset, gt_field)
    info = _build(dataset, gt_field, key, preset=preset, **kwargs)
    change = (info.get("diff") or {}).get("text", "")
    message = (
        f"Built {key!r} v{info.get('version', 1)}: {info.get('num_references', 0)} "
        f"reference(s), {info.get('num_negatives', 0)} negative(s) ({change})"
    )
    skipped = info.get("skipped_negatives") or 0
    if skipped:
        message += f"; {skipped} negative(s) of classes without references were skipped"
    return Effect(message, variant="warning" if skipped else "success", result=info)


def sample_references_prompt(collection: Any, plugin: str) -> Effect:
    """Open the 'sample references' form (K per class, seeded)."""
    return Effect(prompt={"operator": f"{plugin}/ntt_sample_references", "params": {}})


def demo_references(collection: Any, shots: int = 3, seed: int = 0) -> Effect:
    """On the demo dataset: tag ``shots`` coins of ``coins_top.png`` as references and show
    the targets (``coins_bottom.png`` and the cat), the intended split."""

    split = demo_split(collection)
    if split is None:
        return Effect("This is not the demo dataset", variant="warning")
    dataset = collection._root_dataset
    picked = sample_references(
        dataset.select(split["references"]), "ground_truth", shots, seed, one_per_image=False
    )
    return Effect(
        f"Tagged {len(picked)} coins of {DEMO_REFERENCE_FILE} as references. Next: build a "
        f"memory bank, then segment this view ({', '.join(DEMO_TARGET_FILES)})",
        view=dataset.select(split["targets"], ordered=True),
        result=len(picked),
    )


def need_bank(bank: str | None) -> Effect | None:
    if bank:
        return None
    return Effect(
        "No memory bank yet: tag references, then 'Build / rebuild' a bank", variant="warning"
    )


def run_preview(
    collection: Any, bank: str | None, n: int = 8, sample_ids: Sequence[str] | None = None
) -> Effect:
    """Preview ``bank`` on ``sample_ids`` (the modal's sample) or on ``n`` samples of the
    view; writes :data:`PREVIEW_FIELD`, with features (for the map), and shows those
    samples."""

    missing = need_bank(bank)
    if missing:
        return missing
    if n < 1:
        raise ValueError(f"preview on {n} samples: choose N >= 1")
    result = nf.preview(
        collection, bank, n=n, field=PREVIEW_FIELD, sample_ids=sample_ids, embeddings=True
    )
    ids = list(result.get("sample_ids") or [])
    count = int(result.get("detections", 0) or 0)
    dataset = collection._root_dataset
    version = result.get("bank_version")
    reused = "models loaded" if result.get("models_loaded") else "models reused"
    message = (
        f"Preview of {bank!r}{f' v{version}' if version else ''} on {len(ids)} sample(s): "
        f"{count} detection(s) in {PREVIEW_FIELD!r} ({reused}, "
        f"{float(result.get('seconds') or 0):.1f} s)"
    )
    failures = result.get("failures") or []
    if failures:
        message += f"; {len(failures)} image(s) could not be read and were skipped"
    if sample_ids:  # in the sample view: keep the view, show the sample again, new field in
        return Effect(message, reload=True, reopen_sample=ids[0] if ids else None, result=result)
    return Effect(message, view=dataset.select(ids, ordered=True), reload=True, result=result)


def _by_field(
    collection: Any, labels: Iterable[Mapping[str, Any]]
) -> tuple[dict[str, list[str]], int, int]:
    """Selected prediction label ids per prediction field, how many clicked labels are in
    other fields (ground truth: accept/reject leaves them alone), and how many ground-truth
    labels the ticked patches hold (evaluation patches: left alone without a word)."""
    preds = set(prediction_fields(collection))
    out: dict[str, list[str]] = {}
    other = in_patches = 0
    for label in labels:
        if label["field"] in preds:
            out.setdefault(label["field"], []).append(label["label_id"])
        elif label.get("patch"):
            in_patches += 1
        else:
            other += 1
    return out, other, in_patches


def _judge(
    collection: Any,
    selected_labels: Any,
    accept: bool,
    selected: Iterable[str] | None,
    extended_selection: Any = None,
    extended_stages: Any = None,
) -> Effect:

    labels = _selected(collection, selected_labels, selected, extended_selection, extended_stages)
    if on_map(labels):  # a lasso on the map: the labels its points copy
        return curate_effect(collection, labels, "accept" if accept else "reject")
    verb = "Accepted" if accept else "Rejected"
    what = "references" if accept else "negatives (false positives)"
    per_field, other, in_patches = _by_field(collection, labels)
    if not per_field:
        notes = []
        if other:
            notes.append(f"{other} selected label(s) are not predictions")
        if in_patches:
            notes.append("the selected patches hold no prediction (missed ground truth)")
        note = f" ({'; '.join(notes)})" if notes else ""
        return Effect(
            "Select predictions first (in the sample view, or patches of a prediction "
            "field or of an evaluation), or lasso them on the map (Embeddings panel), then "
            f"accept or reject them{note}",
            variant="warning",
        )
    call = nf.accept_predictions if accept else nf.reject_predictions
    dataset = collection._root_dataset
    count = sum(call(dataset, f, label_ids=ids) for f, ids in sorted(per_field.items()))
    message = f"{verb} {count} prediction(s) as {what}; rebuild the bank to use them"
    if other:
        message += f" ({other} selected ground-truth label(s) left alone)"
    return Effect(message, result=count)


def accept_selected(
    collection: Any,
    selected_labels: Any,
    selected: Iterable[str] | None = None,
    extended_selection: Any = None,
    extended_stages: Any = None,
) -> Effect:
    """Tag the selected predictions ``ntt:ref`` (references for the next bank version);
    ``collection`` is the App's view: in a patches view the predictions of the ticked
    patches (``selected``) count too. With nothing selected, a lasso on the map in the
    Embeddings panel (``extended_selection``: ``ctx.extended_selection``;
    ``extended_stages``: the request's ``extended``) is what is accepted."""
    return _judge(collection, selected_labels, True, selected, extended_selection, extended_stages)


def reject_selected(
    collection: Any,
    selected_labels: Any,
    selected: Iterable[str] | None = None,
    extended_selection: Any = None,
    extended_stages: Any = None,
) -> Effect:
    """Tag the selected predictions ``ntt:neg`` (negatives for the next bank version); same
    arguments as :func:`accept_selected`."""
    return _judge(collection, selected_labels, False, selected, extended_selection, extended_stages)
