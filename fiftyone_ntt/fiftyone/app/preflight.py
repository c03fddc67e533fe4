"""Checks the operator forms make before anything runs, as plain functions over FiftyOne
collections (tested without the App).

- the *Segment* form's checks (output field, conflict with another run, counts, device)
  are the run's own plan: :func:`~fiftyone_ntt.fiftyone.runs.plan.plan_segment`;
  :func:`output_conflict` and :func:`segment_counts` are its parts the panel shows;
- :func:`bank_dependents`: the runs made with a bank and the queued/running operations that
  need it.
- :func:`test_models_notice`: the sentence every model-running form shows in test-model mode.
"""

from __future__ import annotations

from typing import Any

from fiftyone_ntt.fiftyone.app.activity import operation_rows
from fiftyone_ntt.fiftyone.dataset.model_cache import TEST_MODELS_ENV, test_models
from fiftyone_ntt.fiftyone.runs.config import list_ntt_runs
from fiftyone_ntt.fiftyone.runs.plan import output_conflict, segment_counts
from fiftyone_ntt.fiftyone.runs.record import run_state

__all__ = [
    "bank_dependents",
    "output_conflict",
    "segment_counts",
    "test_models_notice",
]

_TEST_MODEL_NAMES = {
    "fake": "fake (colour-histogram features, flat-colour regions)",
    "tiny": "tiny random (random-weight DINOv2 and SAM 2)",
}


def bank_dependents(collection: Any, bank_key: str) -> dict[str, list[dict[str, Any]]]:
    """``runs``: the segmentation runs made with bank ``bank_key`` (out_field, state);
    ``operations``: this plugin's queued or running delegated operations that name it."""

    dataset = collection._root_dataset
    runs = []
    for key in list_ntt_runs(dataset):
        if getattr(dataset.get_run_info(key).config, "bank_key", None) == bank_key:
            runs.append({"out_field": key, "state": run_state(dataset, key)["status"]})
    operations = [
        row
        for row in operation_rows(dataset, include_finished=False)
        if row["bank"] == bank_key and row["state"] in ("queued", "running")
    ]
    return {"runs": runs, "operations": operations}


def test_models_notice() -> str | None:
    """In test-model mode (``FIFTYONE_NTT_TEST_MODELS``), the sentence forms and *about*
    show; else None."""

    try:
        mode = test_models()
    except ValueError as error:
        return str(error)
    if mode is None:
        return None
    return (
        f"Test models: {_TEST_MODEL_NAMES[mode]}, set by {TEST_MODELS_ENV}={mode}: "
        "predictions are meaningless; unset the variable for the real models"
    )
