"""Checks on the field a segmentation writes, and schema reloads across processes."""

from __future__ import annotations

from typing import Any

__all__ = ["check_output_field", "reload_schema"]


def check_output_field(
    collection: Any, out_field: str, gt_field: str | None = None, *, frames: bool = False
) -> None:
    """Raise a ValueError unless ``out_field`` may receive predictions (``frames``: the
    frame field ``frames.<out_field>`` of a video dataset; ``gt_field`` may carry the
    ``frames.`` prefix).

    Refused: an invalid name (it is also the run key, so it must be a Python identifier),
    the ground-truth field, the curation fields (``ntt_curated``, ``ntt_preview``), an
    existing field of another type than ``Detections``, or a key
    used by a run that is not a No Time to Train run.
    """
    import fiftyone as fo

    from fiftyone_ntt.fiftyone.runs import RUN_METHOD

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
    from fiftyone_ntt.fiftyone.preview import CURATED_FIELD, PREVIEW_FIELD

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
