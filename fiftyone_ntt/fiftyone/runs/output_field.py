"""Checks on the field a segmentation writes, and schema reloads across processes."""

from __future__ import annotations

from typing import Any

import fiftyone as fo

from fiftyone_ntt.fiftyone.dataset.fields import (
    CURATED_FIELD,
    PREVIEW_FIELD,
    RUN_ATTRIBUTE,
    RUN_METHOD,
)

__all__ = ["check_output_field", "foreign_labels", "reload_schema"]


def check_output_field(
    collection: Any,
    out_field: str,
    gt_field: str | None = None,
    *,
    frames: bool = False,
    overwrite: bool = False,
) -> None:
    """Raise a ValueError unless ``out_field`` may receive predictions (``frames``: the
    frame field ``frames.<out_field>`` of a video dataset; ``gt_field`` may carry the
    ``frames.`` prefix).

    Refused: an invalid name (it is also the run key, so it must be a Python identifier),
    the ground-truth field, the curation fields (``ntt_curated``, ``ntt_preview``), an
    existing field of another type than ``Detections``, a key used by a run that is not a
    No Time to Train run, and, unless ``overwrite``, a field holding labels that No Time to
    Train did not write (:func:`foreign_labels`: a person's labels, another model's
    predictions, a copy of the ground truth). The run (``segment``, ``queue_shards``) and
    the *Segment* form both call this function, so the form says before the run what the
    run would refuse.
    """

    if not isinstance(out_field, str) or not out_field.isidentifier():
        raise ValueError(
            f"output field {out_field!r} is not valid; use letters, digits and '_' (not "
            "starting with a digit), e.g. 'ntt_predictions'"
        )
    if out_field.startswith("_") or "__" in out_field:
        raise ValueError(
            f"output field {out_field!r} is not valid: FiftyOne reserves names that start "
            "with '_' and cannot query names containing '__'; use e.g. 'ntt_predictions'"
        )
    if frames and gt_field and gt_field.startswith("frames."):
        gt_field = gt_field[len("frames.") :]
    if gt_field and out_field == gt_field:
        raise ValueError(
            f"output field {out_field!r} is the ground-truth field; choose another name so "
            "that the ground truth is not overwritten"
        )

    if out_field in (CURATED_FIELD, PREVIEW_FIELD):
        role = (
            "keeps the predictions you accepted or rejected"
            if out_field == CURATED_FIELD
            else "is replaced by every preview"
        )
        raise ValueError(
            f"output field {out_field!r} {role}; a segmentation there would erase them: "
            "choose another output field, e.g. 'ntt_predictions'"
        )
    dataset = collection._root_dataset
    schema = dataset.get_frame_field_schema() if frames else dataset.get_field_schema()
    if out_field in schema:
        doc_type = getattr(schema[out_field], "document_type", None)
        if doc_type is not fo.Detections:
            kind = doc_type.__name__ if doc_type is not None else type(schema[out_field]).__name__
            raise ValueError(
                f"field {out_field!r} exists and holds {kind}, not Detections; choose a new "
                "field name"
            )
    if out_field in dataset.list_runs():
        method = dataset.get_run_info(out_field).config.method
        if method != RUN_METHOD:
            raise ValueError(
                f"run key {out_field!r} is used by another run (method {method!r}); choose "
                "another output field"
            )
    if not overwrite:
        problem = foreign_labels(collection, out_field, frames=frames)
        if problem:
            raise ValueError(problem)


def foreign_labels(collection: Any, field: str, *, frames: bool = False) -> str | None:
    """Why writing ``field`` (``frames``: the frame field ``frames.<field>``) would replace
    labels that No Time to Train did not write, or None.

    The rule, one for images and frames, counted over the whole dataset (every group slice)
    since a run's record covers the whole field (deleting the run deletes the field):

    * a field that does not exist, or exists but holds no label (declared and empty, or
      only empty ``Detections``), holds nothing of anyone's: None;
    * a field with no No Time to Train run keyed by its name (:data:`~.runs.RUN_METHOD`) is
      someone else's: all its labels count (a person's labels, ``apply_model`` of any
      model, a copy of the ground truth or of another run's field);
    * a field of one of our runs: the labels of the samples (frames) whose ``Detections``
      lack this package's run mark (``ntt_run``) count, e.g. labels a person added later.

    The message names the field, how many labels on how many samples (frames), and the way
    out (``overwrite``, or another field).
    """

    dataset = collection._root_dataset
    schema = dataset.get_frame_field_schema() if frames else dataset.get_field_schema()
    if not schema or field not in schema:
        return None
    ours = field in dataset.list_runs() and (
        dataset.get_run_info(field).config.method == RUN_METHOD
    )
    everything = (
        dataset.select_group_slices(_allow_mixed=True) if dataset.media_type == "group" else dataset
    )
    prefix = "frames." if frames else ""
    ids, marks = everything.values(
        [f"{prefix}{field}.detections.id", f"{prefix}{field}.{RUN_ATTRIBUTE}"],
        _allow_missing=True,
    )
    if frames:  # one list per video, one entry per frame: flatten to one entry per frame
        ids = [frame for video in ids for frame in (video or [])]
        marks = [frame for video in marks for frame in (video or [])]
    labels = places = 0
    for label_ids, mark in zip(ids, marks):
        if label_ids and not (ours and mark is not None):
            labels += len(label_ids)
            places += 1
    if not labels:
        return None
    unit = "frame" if frames else "sample"
    what = f"frame field {prefix + field!r}" if frames else f"field {field!r}"
    return (
        f"{what} already holds {labels} label{'s' * (labels != 1)} on {places} "
        f"{unit}{'s' * (places != 1)} that No Time to Train did not write; pass "
        "overwrite=True (in the App: tick 'Overwrite') to replace them, or choose another "
        "output field"
    )


def reload_schema(dataset: Any) -> None:
    """Reload the dataset when another process (a delegated worker, a concurrent run) has
    added fields or runs since it was loaded here; a no-op otherwise (a full ``reload()``
    also reloads every in-memory sample, which costs time)."""
    try:
        from fiftyone.core.odm import get_db_conn

        stored = get_db_conn().datasets.find_one(
            {"_id": dataset._doc.id}, {"sample_fields.name": 1, "runs": 1}
        )
        fields = {f.get("name") for f in (stored or {}).get("sample_fields", [])}
        runs = set(((stored or {}).get("runs") or {}).keys())
        current = {f.name for f in dataset._doc.sample_fields}
        if stored is not None and fields == current and runs == set(dataset._doc.runs or {}):
            return
    except Exception:  # pragma: no cover - other FiftyOne versions: reload to be safe
        pass
    dataset.reload()
