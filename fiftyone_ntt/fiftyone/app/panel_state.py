"""What the App panel "No Time to Train" shows, without the App.

The panel (``operators/panel/``) is thin glue: every row and notice it shows comes from a
function here (``dataset/view -> rows``); every button calls an action of
:mod:`fiftyone_ntt.fiftyone.app.panel_actions` (``action -> Effect``) and applies the returned
:class:`Effect` to the App (set the view, notify, open a panel or an operator form). All of
it is tested on real datasets without a browser.

Tags (label tags, visible in the App): :data:`REF_TAG` marks references, :data:`NEG_TAG`
negatives (instances that look like a class but are not). Tagging a label is the only change
the panel makes to a ground-truth field, and only when the user selects that label and asks
for it; accepting or rejecting predictions tags the prediction labels where they are.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fiftyone_ntt.fiftyone.app.activity import list_activity, operation_rows
from fiftyone_ntt.fiftyone.app.dismissed_runs import dismissed_rows, row_key, without_dismissed
from fiftyone_ntt.fiftyone.banks.index import bank_versions, list_banks
from fiftyone_ntt.fiftyone.curation.decisions import reference_table
from fiftyone_ntt.fiftyone.dataset.fields import (
    CURATED_FIELD,
    NEG_TAG,
    PREVIEW_FIELD,
    REF_TAG,
    detections_fields,
)
from fiftyone_ntt.fiftyone.dataset.model_cache import describe_models
from fiftyone_ntt.fiftyone.runs.config import list_ntt_runs

__all__ = [
    "CURATED_FIELD",
    "DEMO_REFERENCE_FILE",
    "DEMO_TARGET_FILES",
    "EVAL_PANEL",
    "NEG_TAG",
    "PREVIEW_FIELD",
    "REF_TAG",
    "Effect",
    "bank_rows",
    "change_stamp",
    "chosen_segmentation",
    "demo_split",
    "first_use",
    "format_size",
    "format_time",
    "has_active_runs",
    "label_fields_with_tags",
    "prediction_fields",
    "reference_rows",
    "run_rows",
    "segmentation_choices",
    "selection_summary",
    "short_text",
]

#: FiftyOne's Model Evaluation panel (built in).
EVAL_PANEL = "model_evaluation_panel_builtin"
#: The demo dataset's intended split: references from the top half, targets the rest.
DEMO_REFERENCE_FILE = "coins_top.png"
DEMO_TARGET_FILES = ("coins_bottom.png", "chelsea.png")


@dataclass
class Effect:
    """What the App should do after an action (the panel applies it; tests read it).

    Attributes:
        message: a sentence for the user (a toast and the panel's status line).
        variant: ``"success"``, ``"info"``, ``"warning"`` or ``"error"``.
        view: a view to show in the App (``ctx.ops.set_view``); None leaves it.
        reload: reload the dataset in the App (new fields or labels were written).
        open_panel: ``{"name": ..., "state": {...}}`` of a panel to open.
        prompt: ``{"operator": uri, "params": {...}}``: open an operator's form.
        reopen_sample: a sample id to open again in the sample view (its new fields show
            only after it is reloaded).
        result: the library call's return value, for tests and logs.
    """

    message: str = ""
    variant: str = "success"
    view: Any = None
    reload: bool = False
    open_panel: dict[str, Any] | None = None
    prompt: dict[str, Any] | None = None
    reopen_sample: str | None = None
    result: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# rows


def label_fields_with_tags(
    collection: Any, tags: Sequence[str] = (REF_TAG, NEG_TAG)
) -> dict[str, dict[str, int]]:
    """``{field: {tag: count}}`` of the ``Detections`` fields holding labels tagged ``tags``."""

    out: dict[str, dict[str, int]] = {}
    for name in detections_fields(collection):
        counts = collection.count_label_tags(label_fields=[name])
        found = {t: int(counts.get(t, 0)) for t in tags if counts.get(t)}
        if found:
            out[name] = found
    return out


def reference_rows(collection: Any) -> list[dict[str, Any]]:
    """One row per class (:func:`fiftyone_ntt.fiftyone.curation.decisions.reference_table`):
    ``class``, ``positives``, ``negatives``, ``fields`` (where the tagged labels are, e.g.
    ``"ground_truth, ntt_preview"``), sorted by class."""

    rows = reference_table(collection._root_dataset)
    return [
        {
            "class": row["class"] + (" (background)" if row.get("global") else ""),
            "positives": row["positives"],
            "negatives": row["negatives"],
            "fields": ", ".join(sorted(row["fields"])),
        }
        for row in rows
    ]


def format_size(num_bytes: int | None) -> str:
    if num_bytes is None:
        return ""
    size = float(num_bytes)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def format_time(value: Any) -> str:
    """An ISO timestamp or datetime as ``YYYY-MM-DD HH:MM`` (UTC as stored)."""
    if not value:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    text = str(value).replace("T", " ")
    return text[:16]


def _models(info: Mapping[str, Any]) -> str:

    return describe_models(info.get("models"))


def _classes_shots(info: Mapping[str, Any]) -> str:
    shots = info.get("shots") or {}
    return ", ".join(f"{name} {count}" for name, count in shots.items())


def bank_rows(collection: Any) -> list[dict[str, Any]]:
    """One row per version of each memory bank of the dataset (by key, newest version
    first): ``key``, ``version``, ``name`` (``"key v2"``), ``classes`` (shots per class:
    ``"red 1, green 2"``), ``negatives``, ``models``, ``size``, ``created`` (``YYYY-MM-DD
    HH:MM``), ``when`` (``MM-DD HH:MM``), ``change`` (what changed from the previous version,
    e.g. ``"+1 negative"``), ``exists`` (the file is still there)."""

    rows = []
    for info in list_banks(collection):
        for entry in reversed(bank_versions(collection, info["key"])):
            rows.append(
                {
                    "key": info["key"],
                    "version": int(entry.get("version", 1)),
                    "name": f"{info['key']} v{int(entry.get('version', 1))}",
                    "classes": _classes_shots(entry),
                    "negatives": int(entry.get("num_negatives", 0) or 0),
                    "models": _models(entry),
                    "size": format_size(entry.get("size_bytes")),
                    "created": format_time(entry.get("created")),
                    "when": format_time(entry.get("created"))[5:],
                    "change": (entry.get("diff") or {}).get("text", ""),
                    "exists": bool(entry.get("exists", True)),
                    "preset": entry.get("preset") or info.get("preset") or "",
                }
            )
    return rows


def _progress(done: Any, total: Any) -> str:
    if total is None:
        return "" if done is None else f"{done} done"
    return f"{min(done or 0, total)} / {total}"


_ACTIVE = ("queued", "running")


def run_rows(collection: Any) -> list[dict[str, Any]]:
    """The Runs table: every segmentation, evaluation and delegated operation of this plugin
    on the dataset (:func:`fiftyone_ntt.fiftyone.app.activity.list_activity`).

    A segmentation being run by a delegated operation shows once, as the operation (whose
    progress the worker updates); the run's own row returns when the operation is over.

    Each row: ``id``, ``op_id`` (delegated operations), ``kind``, ``field`` (output field or
    evaluation key), ``state``, ``progress`` (``"done / total"`` samples), ``status`` (both:
    ``"running 3 / 7"``), ``bank`` (``"key v2"``), ``error``, ``updated`` (``YYYY-MM-DD
    HH:MM``), ``when`` (``MM-DD HH:MM``), ``evaluation`` (the evaluation of a run's field)
    and which buttons apply: ``can_show``, ``can_resume``, ``can_cancel``,
    ``can_mark_failed``, ``can_evaluate``, ``can_open_eval``.
    """

    dataset = collection._root_dataset
    activity = list_activity(dataset)
    evaluations: dict[str, str] = {}
    for key in dataset.list_evaluations():
        pred = getattr(dataset.get_evaluation_info(key).config, "pred_field", None)
        if pred:
            evaluations.setdefault(pred, key)
    busy = {
        r["out_field"]
        for r in activity
        if r["source"] == "delegated" and r["kind"] == "segment" and r["state"] in _ACTIVE
    }
    rows = []
    for r in activity:
        source, state, out = r["source"], r["state"], r["out_field"]
        if source == "run" and out in busy:
            continue
        if source == "delegated" and state == "completed":
            continue  # its run or evaluation row says the same, with its buttons
        is_segment = r["kind"] == "segment"
        has_field = bool(out) and is_segment and dataset.has_sample_field(out)
        evaluation = evaluations.get(out, "") if is_segment else (out or "")
        bank = r.get("bank") or ""
        if bank and r.get("bank_version"):
            bank = f"{bank} v{r['bank_version']}"
        rows.append(
            {
                "id": r["id"],
                "op_id": r["id"] if source == "delegated" else None,
                "kind": {"segment": "segmentation", "evaluate": "evaluation"}.get(
                    r["kind"], r["kind"] or ""
                ),
                "field": out or "",
                "state": state or "",
                "progress": _progress(r.get("done"), r.get("total")),
                "status": " ".join(
                    t for t in (state or "", _progress(r.get("done"), r.get("total"))) if t
                ),
                "bank": bank,
                "error": r.get("error") or "",
                "updated": format_time(r.get("updated")),
                "when": format_time(r.get("updated"))[5:],
                "evaluation": evaluation,
                "can_show": has_field,
                "can_resume": source == "run" and state == "interrupted",
                **_stop_buttons(source, state),
                "can_evaluate": source == "run" and state == "completed",
                "can_open_eval": bool(evaluation) and evaluation in dataset.list_evaluations(),
                "updated_iso": str(r.get("updated") or ""),
            }
        )
    return without_dismissed(dataset, _fold_attempts(rows))


#: Characters of an error shown in a Runs table cell (the full text is its tooltip).
ERROR_CELL_CHARS = 24
_DISMISSIBLE = ("failed", "interrupted")


def short_text(text: Any, limit: int = ERROR_CELL_CHARS) -> str:
    """``text`` on one line, cut to ``limit`` characters with ``…``."""
    line = " ".join(str(text or "").split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def _primary(attempts: list[dict[str, Any]]) -> dict[str, Any]:
    """The attempt a folded row shows: a delegated operation that is not over (queued,
    running, or interrupted: its worker is gone), else the latest."""
    live = [a for a in attempts if a.get("op_id") and a["state"] in (*_ACTIVE, "interrupted")]
    return max(live or attempts, key=lambda a: a.get("updated_iso") or "")


def _fold_attempts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per output field (evaluation key, ...): its latest attempt, the others
    folded in (``attempts``, ``history``). The field's run lends its buttons (Show, Resume,
    Evaluate, Results) unless an operation is still at work on it. Adds ``error_short``,
    ``state_cell`` (the status and the short error) and ``can_dismiss`` (a failed or
    interrupted row that nothing is running)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row_key(row), []).append(row)
    out = []
    for attempts in groups.values():
        primary = _primary(attempts)
        row = dict(primary)
        run = next((a for a in attempts if a.get("op_id") is None), None)
        at_work = primary.get("op_id") and primary["state"] in (*_ACTIVE, "interrupted")
        if run is not None and run is not primary and not at_work:
            for flag in ("can_show", "can_resume", "can_evaluate", "can_open_eval"):
                row[flag] = bool(row.get(flag) or run.get(flag))
            row["evaluation"] = row.get("evaluation") or run.get("evaluation")
        older = sorted(
            (a for a in attempts if a is not primary),
            key=lambda a: a.get("updated_iso") or "",
            reverse=True,
        )
        row["attempts"] = len(attempts)
        row["history"] = (
            f"{len(older)} earlier attempt{'s' if len(older) != 1 else ''}: "
            + "; ".join(
                " ".join(
                    t for t in (a["state"], a.get("when"), short_text(a.get("error"), 60)) if t
                )
                for a in older
            )
            if older
            else ""
        )
        row["error_short"] = short_text(row.get("error"))
        # the State cell: the state, and a few words of the error (full text: its tooltip)
        row["state_cell"] = (
            f"{row['status']}: {row['error_short']}" if row["error_short"] else row["status"]
        )
        row["can_dismiss"] = row["state"] in _DISMISSIBLE and not row.get("can_cancel")
        out.append(row)
    return out


def has_active_runs(rows: Iterable[Mapping[str, Any]] | None) -> bool:
    """Whether a Runs row is queued or running (the panel then refreshes on its timer)."""
    return any(r.get("state") in _ACTIVE for r in rows or [])


def segmentation_choices(rows: Iterable[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """The segmentation rows of the Runs table whose field exists, newest first (by the
    full update time: two runs of one minute must not tie): what the panel's *Improve*
    and *Map* sections offer, the first one until the user chooses another."""
    rows = [r for r in rows or [] if r.get("kind") == "segmentation" and r.get("can_show")]
    return sorted(rows, key=lambda r: r.get("updated_iso") or "", reverse=True)


def chosen_segmentation(
    rows: Iterable[Mapping[str, Any]] | None, choice: str | None
) -> dict[str, Any] | None:
    """The row of :func:`segmentation_choices` whose field is ``choice``, else the newest
    (None without any)."""
    choices = segmentation_choices(rows)
    return next((r for r in choices if r["field"] == choice), choices[0] if choices else None)


def change_stamp(collection: Any) -> str:
    """A digest of what the panel shows that operators change (banks and their versions,
    runs, evaluations, delegated operations, label tags, fields, dismissed rows): the
    panel's timer refreshes it when this changes."""

    dataset = collection._root_dataset
    parts = [
        [
            (
                b["key"],
                b.get("version"),
                b.get("num_versions"),
                b.get("fingerprint"),
                b.get("exists"),
            )
            for b in list_banks(dataset)
        ],
        [(k, str(dataset.get_run_info(k).timestamp)) for k in sorted(dataset.list_runs())],
        sorted(dataset.list_evaluations()),
        [(r["id"], r["state"], r["done"], r["updated"]) for r in operation_rows(dataset)],
        dataset.count_label_tags(),
        sorted(dataset.get_field_schema()),
        dismissed_rows(dataset),
    ]
    text = json.dumps(parts, default=str, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()


def _stop_buttons(source: str, state: str) -> dict[str, bool]:
    """``can_cancel``: a queued or running delegated operation, or a live run (it stops
    before its next sample); ``can_mark_failed``: a delegated operation that reads running
    but whose process is gone (state ``interrupted``)."""
    return {
        "can_cancel": (source == "delegated" and state in _ACTIVE)
        or (source == "run" and state == "running"),
        "can_mark_failed": source == "delegated" and state == "interrupted",
    }


def prediction_fields(collection: Any) -> list[str]:
    """Fields holding predictions: the No Time to Train runs' output fields, the preview
    field and the prediction fields of the dataset's evaluations."""

    dataset = collection._root_dataset
    fields = set(list_ntt_runs(dataset))
    for name in (PREVIEW_FIELD, CURATED_FIELD):
        if dataset.has_sample_field(name):
            fields.add(name)
    for key in dataset.list_evaluations():
        pred = getattr(dataset.get_evaluation_info(key).config, "pred_field", None)
        if pred:
            fields.add(pred)
    return sorted(fields)


def selection_summary(
    selected_labels: Iterable[Mapping[str, Any]], pred_fields: Sequence[str]
) -> dict[str, int]:
    """``{"labels": n, "predictions": m}``: selected labels, and how many of them are in
    ``pred_fields`` (accept/reject apply to those)."""
    labels = list(selected_labels or [])
    predictions = [s for s in labels if s.get("field") in set(pred_fields)]
    return {"labels": len(labels), "predictions": len(predictions)}


# ---------------------------------------------------------------------------------------------
# first use


def demo_split(collection: Any) -> dict[str, list[str]] | None:
    """On the demo dataset (``coins_top.png``, ``coins_bottom.png``, ``chelsea.png``), the
    intended split: ``{"references": [ids], "targets": [ids]}``; None on other datasets."""
    dataset = collection._root_dataset
    ids, paths = dataset.values(["id", "filepath"])
    by_name = {os.path.basename(p): i for i, p in zip(ids, paths)}
    if DEMO_REFERENCE_FILE not in by_name or not all(f in by_name for f in DEMO_TARGET_FILES):
        return None
    return {
        "references": [by_name[DEMO_REFERENCE_FILE]],
        "targets": [by_name[f] for f in DEMO_TARGET_FILES],
    }


def first_use(collection: Any) -> dict[str, Any] | None:
    """The getting-started steps when the dataset has no reference yet, else None.

    Returns:
        ``steps`` (three ``{"title", "text", "done"}``), ``demo`` (whether the demo split
        applies) and ``demo_text``.
    """

    tagged = label_fields_with_tags(collection, (REF_TAG,))
    if tagged:
        return None
    demo = demo_split(collection) is not None
    banks = list_banks(collection)
    return {
        "demo": demo,
        "demo_text": (
            "This is the demo dataset: take references from coins_top.png, then segment "
            "coins_bottom.png and the cat (which has no coin)."
            if demo
            else ""
        ),
        "steps": [
            {
                "title": "1. Choose references",
                "text": "Tag a few ground-truth instances per class (or sample K per class).",
                "done": False,
            },
            {
                "title": "2. Build a memory bank",
                "text": "Their features become the bank; no training.",
                "done": bool(banks),
            },
            {
                "title": "3. Segment",
                "text": "Segment the other images, then evaluate.",
                "done": False,
            },
        ],
    }
