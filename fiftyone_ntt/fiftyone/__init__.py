"""The only part of fiftyone_ntt that imports FiftyOne: adapters between FiftyOne datasets and
the library's types, the steps of the workflow over FiftyOne collections, and the demo
dataset (:mod:`fiftyone_ntt.fiftyone.demo`).

Workflow (each step also has an App operator):

1. choose references: :func:`tag_references` / :func:`untag_references` (label tag
   ``"ntt:ref"``), or :func:`sample_references` (K per class, seeded;
   :func:`count_reference_candidates` first); later, from predictions:
   :func:`accept_predictions` (``"ntt:ref"``), :func:`reject_predictions` (negatives,
   ``"ntt:neg"``), :func:`untag_labels`; :func:`reference_table` summarises them;
2. :func:`build_bank` (a new version of a memory bank file at each build, indexed per
   dataset: :func:`list_banks`, :func:`bank_versions`, :func:`get_bank_info`,
   :func:`load_bank`, :func:`delete_bank`);
3. :func:`preview` on a few samples (models stay loaded; :func:`free_models`), then
   :func:`segment` (resumable, a custom run per output field; ``shard=(i, n)`` and
   :func:`queue_shards` split it over delegated workers, :func:`run_state` follows it), or
   ``dataset.apply_model(NTTModel(bank), label_field=...)``;
4. :func:`evaluate` (FiftyOne's COCO evaluator, optionally pycocotools' exact protocol).

The core modules (everything outside this package) never import fiftyone; the import-linter
contracts in pyproject.toml enforce it, and the layers of this package (docs/architecture.md):
``dataset`` → ``curation`` → ``banks``, ``evaluation`` → ``runs`` → ``app`` → ``protocols``.
The names below are imported lazily from their sub-packages, so importing this package is
cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DEFAULT_REFERENCE_TAG": "dataset.fields",
    "NEG_TAG": "dataset.fields",
    "REF_TAG": "dataset.fields",
    "accept_predictions": "curation.decisions",
    "reject_predictions": "curation.decisions",
    "untag_labels": "curation.decisions",
    "reference_table": "curation.decisions",
    "tagged_fields": "curation.decisions",
    "ground_truth_fields": "dataset.fields",
    "tag_references": "curation.references",
    "untag_references": "curation.references",
    "sample_references": "curation.references",
    "count_reference_candidates": "curation.references",
    "reference_candidates": "curation.references",
    "reference_summary": "curation.references",
    "detections_fields": "dataset.fields",
    "build_bank": "banks.build",
    "bank_versions": "banks.index",
    "validate_build": "banks.inputs",
    "list_banks": "banks.index",
    "get_bank_info": "banks.index",
    "load_bank": "banks.index",
    "delete_bank": "banks.index",
    "banks_dir": "banks.keys",
    "segment": "runs.job",
    "check_output_field": "runs.output_field",
    "queue_shards": "runs.shards",
    "run_state": "runs.record",
    "evaluate": "evaluation.evaluate",
    "coco_protocol": "evaluation.evaluate",
    "NTTModel": "runs.apply_model",
    "NTTRunConfig": "runs.config",
    "list_ntt_runs": "runs.config",
    "predictions_to_detections": "dataset.labels",
    "detection_to_reference": "dataset.labels",
    "get_models": "dataset.model_cache",
    "free_models": "dataset.model_cache",
    "preview": "runs.preview",
    "PREVIEW_FIELD": "dataset.fields",
    "CURATED_FIELD": "dataset.fields",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
