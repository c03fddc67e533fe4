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

The core modules (everything outside this package) never import fiftyone; a unit test
enforces it. Submodules are imported lazily, so importing this package is cheap.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

_EXPORTS = {
    "DEFAULT_REFERENCE_TAG": "references",
    "NEG_TAG": "references",
    "REF_TAG": "curation",
    "accept_predictions": "curation",
    "reject_predictions": "curation",
    "untag_labels": "curation",
    "reference_table": "curation",
    "tagged_fields": "curation",
    "ground_truth_fields": "curation",
    "tag_references": "references",
    "untag_references": "references",
    "sample_references": "references",
    "count_reference_candidates": "references",
    "reference_candidates": "references",
    "reference_summary": "references",
    "detections_fields": "references",
    "build_bank": "banks",
    "bank_versions": "banks",
    "validate_build": "banks",
    "list_banks": "banks",
    "get_bank_info": "banks",
    "load_bank": "banks",
    "delete_bank": "banks",
    "banks_dir": "banks",
    "segment": "segment",
    "check_output_field": "segment",
    "queue_shards": "segment",
    "run_state": "segment",
    "evaluate": "evaluate",
    "coco_protocol": "evaluate",
    "NTTModel": "model",
    "NTTRunConfig": "runs",
    "list_ntt_runs": "runs",
    "predictions_to_detections": "labels",
    "detection_to_reference": "labels",
    "get_models": "models",
    "free_models": "models",
    "preview": "preview",
    "PREVIEW_FIELD": "preview",
    "CURATED_FIELD": "preview",
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


class _Package(types.ModuleType):
    """``segment`` and ``evaluate`` are both submodules and the functions exported under
    those names. Importing a submodule makes Python set it as an attribute of this package
    (``import fiftyone_ntt.fiftyone.segment`` would turn ``nf.segment`` into the module):
    keep the exported function instead."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == name:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
