"""Checks the operator forms make before anything runs, as plain functions over FiftyOne
collections (tested without the App).

- :func:`output_conflict`: would segmenting into a field meet predictions of another run?
- :func:`propose_output_field`: a free field name for a new run (``<base>_<bank>_v2``, ...).
- :func:`segment_counts`: how many target samples, how many hold the bank's references
  (skipped), how many will be segmented.
- :func:`bank_dependents`: the runs made with a bank and the queued/running operations that
  need it.
- :func:`check_device`: a device name that exists here (``auto``, ``cpu``, ``cuda``,
  ``cuda:N``, ``mps``).
- :func:`test_models_notice`: the sentence every model-running form shows in test-model mode.
"""

from __future__ import annotations

import re
from typing import Any

from fiftyone_ntt.fiftyone.app.activity import operation_rows
from fiftyone_ntt.fiftyone.banks.index import bank_versions, get_bank_info, load_bank
from fiftyone_ntt.fiftyone.curation.references import reference_sample_ids
from fiftyone_ntt.fiftyone.dataset.fields import RUN_METHOD
from fiftyone_ntt.fiftyone.dataset.model_cache import TEST_MODELS_ENV, test_models
from fiftyone_ntt.fiftyone.runs.config import list_ntt_runs
from fiftyone_ntt.fiftyone.runs.record import run_state
from fiftyone_ntt.fiftyone.runs.settings import recorded_settings, resolve_settings
from fiftyone_ntt.fiftyone.runs.video_loop import frame_counts

__all__ = [
    "bank_dependents",
    "check_device",
    "output_conflict",
    "propose_output_field",
    "segment_counts",
    "test_models_notice",
]

_TEST_MODEL_NAMES = {
    "fake": "fake (colour-histogram features, flat-colour regions)",
    "tiny": "tiny random (random-weight DINOv2 and SAM 2)",
}


def output_conflict(
    collection: Any,
    out_field: str,
    bank_key: str | None,
    *,
    score_threshold: float | None = None,
    max_detections: int | None = None,
    points_per_side: int | None = None,
) -> str | None:
    """Why segmenting into ``out_field`` with ``bank_key`` and these settings would meet the
    predictions of another run (so a rerun cannot resume), or None.

    Another run: one made with another bank (key or content) or other settings, the
    configured models included (the settings are resolved as the run resolves them:
    :func:`~fiftyone_ntt.fiftyone.runs.settings.resolve_settings`). The identities of the
    loaded weights are checked only when the run executes (they need the models loaded).
    """

    dataset = collection._root_dataset
    if not out_field or out_field not in dataset.list_runs() or not bank_key:
        return None
    config = dataset.get_run_info(out_field).config
    if config.method != RUN_METHOD:
        return None  # check_output_field words this one
    try:
        bank = get_bank_info(dataset, bank_key)
    except KeyError:
        return None
    previous_bank = getattr(config, "bank_key", None)
    if previous_bank != bank_key or getattr(config, "bank_fingerprint", None) != bank.get(
        "fingerprint"
    ):
        what = (
            f"bank {previous_bank!r}"
            if previous_bank != bank_key
            else _other_build(dataset, bank_key, config, bank)
        )
        return f"field {out_field!r} holds the predictions of a run with {what}"
    previous = recorded_settings(getattr(config, "ntt_config", None) or {})
    wanted = recorded_settings(
        resolve_settings(
            bank.get("config"),
            score_threshold=score_threshold,
            max_detections=max_detections,
            points_per_side=points_per_side,
        )
    )
    changed = sorted(k for k in wanted if k != "models" and previous.get(k) != wanted[k])
    previous_models, wanted_models = previous.get("models") or {}, wanted["models"]
    changed += sorted(
        f"models.{k}"
        for k in wanted_models.keys() | previous_models.keys()
        if previous_models.get(k) != wanted_models.get(k)
    )
    if changed:
        detail = ", ".join(
            f"{k}: {_value(previous, k)!r} -> {_value(wanted, k)!r}" for k in changed
        )
        return f"field {out_field!r} holds the predictions of a run with other settings ({detail})"
    return None


def _value(settings: dict[str, Any], key: str) -> Any:
    """``settings[key]``, or ``settings["models"][name]`` for ``key`` ``"models.<name>"``."""
    if key.startswith("models."):
        return (settings.get("models") or {}).get(key[len("models.") :])
    return settings.get(key)


def _other_build(dataset: Any, bank_key: str, config: Any, bank: dict[str, Any]) -> str:
    """Which build of bank ``bank_key`` a run used, when not its latest version: an
    earlier version still listed (``"an earlier version (v1) of bank 'k' (now v2)"``), or
    one deleted since (a key deleted and built again starts at v1 once more)."""

    fingerprint = getattr(config, "bank_fingerprint", None)
    now = f"v{bank.get('version', 1)}"
    recorded = getattr(config, "bank_version", None)
    same = [e for e in bank_versions(dataset, bank_key) if e.get("fingerprint") == fingerprint]
    # versions of the same content share a fingerprint: the one the run recorded first
    same.sort(key=lambda e: e.get("version") != recorded)
    if fingerprint and same:
        return f"an earlier version (v{same[0]['version']}) of bank {bank_key!r} (now {now})"
    return (
        f"a build of bank {bank_key!r} that was deleted since (the current {bank_key!r} "
        f"{now} is another build)"
    )


def propose_output_field(collection: Any, base: str, bank_key: str | None = None) -> str:
    """A field name that is neither a field nor a run key of the dataset:
    ``<base>_<bank>_v2``, ``_v3``, ... (the bank key made a valid identifier)."""
    dataset = collection._root_dataset
    stem = base
    if bank_key:
        suffix = re.sub(r"[^0-9A-Za-z]+", "_", bank_key).strip("_").lower()
        if suffix:
            stem = f"{base}_{suffix}"
    stem = re.sub(r"_{2,}", "_", stem)
    taken = set(dataset.get_field_schema()) | set(dataset.list_runs())
    if dataset.media_type == "video":
        taken |= set(dataset.get_frame_field_schema() or {})
    version = 2
    while f"{stem}_v{version}" in taken:
        version += 1
    return f"{stem}_v{version}"


def segment_counts(
    collection: Any, bank_key: str | None, skip_references: bool = True
) -> dict[str, int]:
    """``total`` target samples, ``references`` (those whose ground-truth field holds one of
    the bank's references: :func:`~fiftyone_ntt.fiftyone.curation.references.reference_sample_ids`,
    skipped when ``skip_references``) and ``to_segment``, as ``segment`` counts
    them; on a video collection counted in frames, plus ``videos`` and ``unit``
    (``"frames"``)."""

    if getattr(collection, "media_type", None) == "video":
        return frame_counts(collection, bank_key, skip_references)
    total = len(collection)
    skipped = 0
    if skip_references and bank_key:
        dataset = collection._root_dataset
        gt_field = get_bank_info(dataset, bank_key).get("gt_field")
        if gt_field and dataset.has_sample_field(gt_field):
            bank = load_bank(dataset, bank_key)
            target = collection
            if getattr(collection, "_is_patches", False):
                target = dataset.select(collection.distinct("sample_id"))
                total = len(target)
            ids = set(reference_sample_ids(dataset, gt_field, label_ids=bank.reference_ids))
            skipped = len(ids & set(target.values("id"))) if ids else 0
    return {"total": total, "references": skipped, "to_segment": total - skipped}


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


def check_device(name: str | None) -> str:
    """``name`` if it names a device that exists here (``auto``/empty → ``"auto"``).

    Raises:
        ValueError: naming the value and what exists (``auto``, ``cpu``, ``cuda[:N]``,
            ``mps`` as available).
    """
    text = (name or "auto").strip().lower()
    if text == "auto":
        return "auto"
    # deferred: torch loads only when this runs
    from fiftyone_ntt.models import resolve_device

    try:
        resolve_device(text)
    except ValueError as error:
        raise ValueError(f"{error}; available here: {', '.join(available_devices())}") from None
    return text


def available_devices() -> list[str]:
    """The device names that work on this machine."""
    # deferred: torch loads only when this runs
    import torch

    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        names.append("cuda")
        names.extend(f"cuda:{i}" for i in range(torch.cuda.device_count()))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    return names


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
