"""What the buttons of the App panel "No Time to Train" do: ``action -> Effect``.

Each action calls the library (tagging, banks, preview, curation, evaluation, delegated
operations) and returns an :class:`~fiftyone_ntt.fiftyone.panel_state.Effect` saying what the
App should show next; the panel (``operators/panel/``) applies it. Bad input gives an
``Effect`` with a warning, or raises a ``ValueError``/``KeyError`` whose message the panel
shows. The rows the panel shows are in :mod:`fiftyone_ntt.fiftyone.panel_state`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fiftyone_ntt.fiftyone.panel_state import (
    DEMO_REFERENCE_FILE,
    DEMO_TARGET_FILES,
    EVAL_PANEL,
    NEG_TAG,
    PREVIEW_FIELD,
    REF_TAG,
    Effect,
    demo_split,
    label_fields_with_tags,
    prediction_fields,
)

__all__ = [
    "accept_selected",
    "build_bank",
    "build_problems",
    "cancel_run",
    "default_bank_key",
    "demo_references",
    "dismiss_run",
    "evaluate_run",
    "mark_run_failed",
    "open_evaluation",
    "reference_field",
    "reference_view",
    "reject_selected",
    "resume_params",
    "resume_problem",
    "resume_prompt",
    "run_preview",
    "sample_references_prompt",
    "segment_prompt",
    "selection_counts",
    "show_predictions",
    "show_references",
    "tag_selected",
    "untag_selected",
]


def reference_view(collection: Any, tag: str = REF_TAG, field: str | None = None) -> Any:
    """A patches view of exactly the labels tagged ``tag`` (of ``field``, default the field
    holding most of them); None when none is tagged."""
    from fiftyone import ViewField as F

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
) -> list[dict[str, Any]]:
    """The selected labels, and in a patches view the labels of the ticked patches
    (:func:`fiftyone_ntt.fiftyone.selection.selected_labels`)."""
    from fiftyone_ntt.fiftyone.selection import selected_labels as resolve

    return resolve(collection, selected, selected_labels)


def tag_selected(
    collection: Any,
    selected_labels: Iterable[Mapping[str, Any]],
    tag: str,
    selected: Iterable[str] | None = None,
) -> Effect:
    """Tag the selected labels as references (``REF_TAG``) or negatives (``NEG_TAG``); the
    other tag is removed from them (a label is one or the other)."""
    from fiftyone_ntt.fiftyone.references import tag_references, untag_references

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
) -> dict[str, int]:
    """``{"labels": n, "predictions": m}`` of what the panel's buttons would act on (the
    labels of ticked patches included)."""
    from fiftyone_ntt.fiftyone.panel_state import selection_summary

    labels = _selected(collection, selected_labels, selected)
    return selection_summary(labels, prediction_fields(collection))


def untag_selected(
    collection: Any,
    selected_labels: Iterable[Mapping[str, Any]],
    selected: Iterable[str] | None = None,
) -> Effect:
    """Remove the reference and negative tags from the selected labels (in a patches view:
    from every label of the ticked patches)."""
    from fiftyone_ntt.fiftyone.references import untag_references

    labels = _selected(collection, selected_labels, selected)
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
    from fiftyone_ntt.fiftyone.banks import list_banks

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
    (:func:`~fiftyone_ntt.fiftyone.banks.validate_build`, the preset's name), plus: a
    new version of an existing bank keeps its preset (its versions are compared and a run
    is resumed with the next one), so another preset needs another key."""
    from fiftyone_ntt.config import get_preset
    from fiftyone_ntt.fiftyone.banks import list_banks, validate_build

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
    from fiftyone_ntt.fiftyone.banks import build_bank as _build

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
    from fiftyone_ntt.fiftyone.references import sample_references

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


def _need_bank(bank: str | None) -> Effect | None:
    if bank:
        return None
    return Effect(
        "No memory bank yet: tag references, then 'Build / rebuild' a bank", variant="warning"
    )


def run_preview(
    collection: Any, bank: str | None, n: int = 8, sample_ids: Sequence[str] | None = None
) -> Effect:
    """Preview ``bank`` on ``sample_ids`` (the modal's sample) or on ``n`` samples of the
    view; writes :data:`PREVIEW_FIELD` and shows those samples."""
    import fiftyone_ntt.fiftyone as nf

    missing = _need_bank(bank)
    if missing:
        return missing
    if n < 1:
        raise ValueError(f"preview on {n} samples: choose N >= 1")
    result = nf.preview(collection, bank, n=n, field=PREVIEW_FIELD, sample_ids=sample_ids)
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
    collection: Any, selected_labels: Any, accept: bool, selected: Iterable[str] | None
) -> Effect:
    import fiftyone_ntt.fiftyone as nf

    verb = "Accepted" if accept else "Rejected"
    what = "references" if accept else "negatives (false positives)"
    per_field, other, in_patches = _by_field(
        collection, _selected(collection, selected_labels, selected)
    )
    if not per_field:
        notes = []
        if other:
            notes.append(f"{other} selected label(s) are not predictions")
        if in_patches:
            notes.append("the selected patches hold no prediction (missed ground truth)")
        note = f" ({'; '.join(notes)})" if notes else ""
        return Effect(
            "Select predictions first (in the sample view, or patches of a prediction "
            f"field or of an evaluation), then accept or reject them{note}",
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
    collection: Any, selected_labels: Any, selected: Iterable[str] | None = None
) -> Effect:
    """Tag the selected predictions ``ntt:ref`` (references for the next bank version);
    ``collection`` is the App's view: in a patches view the predictions of the ticked
    patches (``selected``) count too."""
    return _judge(collection, selected_labels, True, selected)


def reject_selected(
    collection: Any, selected_labels: Any, selected: Iterable[str] | None = None
) -> Effect:
    """Tag the selected predictions ``ntt:neg`` (negatives for the next bank version); same
    arguments as :func:`accept_selected`."""
    return _judge(collection, selected_labels, False, selected)


def segment_prompt(
    collection: Any, plugin: str, bank: str | None, on_success: Any = None
) -> Effect:
    """Open the segment form for the current view with ``bank`` chosen ("Schedule" queues
    it for a delegated worker)."""
    missing = _need_bank(bank)
    if missing:
        return missing
    return Effect(
        prompt={
            "operator": f"{plugin}/ntt_segment",
            "params": {"bank": bank},
            "on_success": on_success,
        }
    )


def _need_row(row: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if not row:
        raise ValueError("that run is no longer listed; press Refresh")
    return row


def show_predictions(collection: Any, row: Mapping[str, Any] | None) -> Effect:
    """Show the samples a run wrote predictions to."""
    row = _need_row(row)
    dataset = collection._root_dataset
    out = row.get("field")
    if not out or not dataset.has_sample_field(out):
        return Effect(f"Run {row.get('id')!r} has no prediction field yet", variant="warning")
    view = dataset.exists(out)
    return Effect(f"Showing the {len(view)} sample(s) with {out!r}", view=view, reload=True)


def resume_params(collection: Any, out_field: str) -> dict[str, Any]:
    """The *Segment* form's params that resume the run into ``out_field`` with its own
    settings, as its run record holds them: bank, output field, points per side, score
    threshold, max detections, whether reference samples are skipped, and the number of
    shards of a split run; ``resume`` marks the form as a resume."""
    from fiftyone_ntt.fiftyone.segment import run_state

    dataset = collection._root_dataset
    config = dataset.get_run_info(out_field).config
    settings = dict(getattr(config, "ntt_config", None) or {})
    params = {
        "bank": getattr(config, "bank_key", None),
        "out_field": out_field,
        "points_per_side": settings.get("points_per_side"),
        "max_detections": settings.get("max_detections"),
        "score_threshold": settings.get("score_threshold"),
        "skip_references": bool(getattr(config, "skip_references", True)),
        "num_shards": run_state(dataset, out_field).get("num_shards"),
        "resume": True,
    }
    return {k: v for k, v in params.items() if v is not None}


def resume_problem(collection: Any, params: Mapping[str, Any]) -> str | None:
    """Why the run into ``params["out_field"]`` cannot be resumed with ``params`` (its bank
    was deleted or rebuilt since, or a setting differs), or None."""
    from fiftyone_ntt.fiftyone.banks import list_banks
    from fiftyone_ntt.fiftyone.preflight import output_conflict

    dataset = collection._root_dataset
    out, bank = params.get("out_field"), params.get("bank")
    if bank not in {b["key"] for b in list_banks(dataset)}:
        return f"its memory bank {bank!r} no longer exists"
    return output_conflict(
        dataset,
        out,
        bank,
        score_threshold=params.get("score_threshold"),
        max_detections=params.get("max_detections"),
        points_per_side=params.get("points_per_side"),
    )


def resume_prompt(collection: Any, plugin: str, row: Mapping[str, Any] | None) -> Effect:
    """Open the segment form with the interrupted run's own bank, output field and settings
    (:func:`resume_params`): scheduling it resumes (samples already done are skipped). A
    run whose bank was rebuilt or deleted since cannot be resumed: a warning says so."""
    row = _need_row(row)
    params = resume_params(collection, row["field"])
    problem = resume_problem(collection, params)
    if problem:
        return Effect(
            f"Run {row['field']!r} cannot be resumed: {problem}. Segment into a new field "
            "instead ('Segment this view…'), or rebuild the bank it used",
            variant="warning",
        )
    return Effect(prompt={"operator": f"{plugin}/ntt_segment", "params": params})


def dismiss_run(collection: Any, row: Mapping[str, Any] | None) -> Effect:
    """Hide a failed or interrupted row from the Runs table (until its field gets a new
    attempt); the run record, the operation, the predictions and the labels are kept."""
    from fiftyone_ntt.fiftyone.panel_state import dismiss_row

    row = _need_row(row)
    if not row.get("can_dismiss"):
        return Effect(
            f"{row.get('kind') or 'the run'} {row.get('field')!r} is {row.get('state')!r}: "
            "only a failed or interrupted row can be dismissed (Cancel a queued or running "
            "one first)",
            variant="warning",
        )
    dismiss_row(collection, row)
    return Effect(
        f"Dismissed the {row['state']} row of {row.get('field') or row.get('id')!r}: its run "
        "record, predictions and labels are kept; a new run of it shows again",
        result=row.get("id"),
    )


def mark_run_failed(collection: Any, row: Mapping[str, Any] | None) -> Effect:
    """Mark a delegated operation whose worker died as failed (one that reads queued or
    running may be alive: :func:`cancel_run` is for those)."""
    row = _need_row(row)
    op_id = row.get("op_id")
    if not op_id:
        return Effect(
            f"{row.get('id')!r} is not a delegated operation; nothing to mark", variant="warning"
        )
    if row.get("state") in ("queued", "running"):
        return Effect(
            f"Operation {op_id} is {row['state']}: its worker may still be at work; use "
            "Cancel (Mark failed is for an operation whose worker is gone)",
            variant="warning",
        )
    from fiftyone_ntt.fiftyone.activity import mark_failed

    mark_failed(op_id)
    return Effect(f"Marked operation {op_id} as failed", result=op_id)


def cancel_run(collection: Any, row: Mapping[str, Any] | None) -> Effect:
    """Cancel a queued or running row: a delegated operation is marked failed ("cancelled
    by the user", no worker picks it up any more), and a live segmentation stops before
    its next sample, keeping what it wrote (:func:`fiftyone_ntt.fiftyone.cancel.cancel`)."""
    from fiftyone_ntt.fiftyone.cancel import cancel

    row = _need_row(row)
    if not row.get("can_cancel"):
        return Effect(
            f"{row.get('kind') or 'the run'} {row.get('field')!r} is {row.get('state')!r}, "
            "not queued or running: nothing to cancel",
            variant="warning",
        )
    field = row.get("field") if row.get("kind") == "segmentation" else None
    done = cancel(collection, op_id=row.get("op_id"), out_field=field or None)
    parts = []
    if done["operation"]:
        parts.append(f"operation {done['operation']} marked failed (cancelled)")
    if done["runs"]:
        parts.append(f"{done['runs']} live run(s) of {field!r} stop before their next sample")
    message = "Cancelled: " + ("; ".join(parts) or "nothing was running any more")
    if done["runs"]:
        message += "; what they wrote is kept (Resume continues)"
    return Effect(message, result=done)


def evaluate_run(collection: Any, row: Mapping[str, Any] | None) -> Effect:
    """Evaluate a run's predictions (FiftyOne's COCO evaluation, masks) on the samples it
    segmented, reference samples left out; key ``eval_<field>``."""
    from fiftyone_ntt.fiftyone.evaluate import evaluate

    row = _need_row(row)
    dataset = collection._root_dataset
    out = row["field"]
    summary = evaluate(dataset.exists(out), out, f"eval_{out}", exclude_references=True)
    return Effect(summary["message"], result=summary)


def open_evaluation(collection: Any, row: Mapping[str, Any] | None) -> Effect:
    """Open FiftyOne's Model Evaluation panel on the run's evaluation, and show its TP/FP/FN
    patches: those of the samples it evaluated (its stored view: reference samples left
    out), nothing else."""
    from fiftyone import ViewField as F

    row = _need_row(row)
    key = row.get("evaluation")
    dataset = collection._root_dataset
    if not key or key not in dataset.list_evaluations():
        return Effect(
            f"{row.get('field')!r} is not evaluated yet: press Evaluate", variant="warning"
        )
    eval_id = str(dataset._doc.evaluations[key].id)
    return Effect(
        f"Opened evaluation {key!r} (patches: true positives, false positives, missed)",
        variant="info",
        view=dataset.load_evaluation_view(key)
        .to_evaluation_patches(key)
        .match(F("type").is_in(["tp", "fp", "fn"])),
        open_panel={
            "name": EVAL_PANEL,
            "state": {"view": {"page": "evaluation", "key": key, "id": eval_id, "init": True}},
        },
        result=key,
    )
