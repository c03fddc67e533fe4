"""Provenance of prediction fields: one FiftyOne custom run per output field.

The run key is the output field's name. The run's config records the bank (key and
fingerprint), the pipeline settings, the identities of both models, the library versions and
the run fingerprint that marks the samples it has finished (``<field>.ntt_run`` on the
``fo.Detections`` container). Runs are listed, loaded and deleted with FiftyOne's own
methods (``dataset.list_runs()``, ``dataset.get_run_info(key)``,
``dataset.load_run_results(key)``, ``dataset.delete_run(key)``); deleting an NTT run also
deletes its prediction field, as deleting a brain run deletes the fields it wrote.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

import fiftyone.core.runs as fors

from fiftyone_ntt.fiftyone.dataset.fields import RUN_METHOD
from fiftyone_ntt.fiftyone.runs.record import forget_shards

__all__ = [
    "RUN_METHOD",
    "NTTRun",
    "NTTRunConfig",
    "list_ntt_runs",
    "run_config_for",
    "versions",
]


class NTTRunConfig(fors.RunConfig):
    """Config of a No Time to Train segmentation run (JSON attributes, see module doc).

    Where ``fiftyone_ntt`` cannot be imported, FiftyOne falls back to a plain
    :class:`fiftyone.core.runs.RunConfig` with the same attributes.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("method", RUN_METHOD)
        super().__init__(**kwargs)


class NTTRun(fors.Run):
    """The run class of :class:`NTTRunConfig` (FiftyOne finds it by name)."""

    def get_fields(self, samples, key):
        field = getattr(self.config, "out_field", None)
        return [field] if field else []

    def cleanup(self, samples, key):
        field = getattr(self.config, "out_field", None)
        dataset = samples._root_dataset
        if field and field.startswith("frames."):  # a run over the frames of videos
            if dataset.has_frame_field(field[len("frames.") :]):
                dataset.delete_frame_field(field[len("frames.") :])
        elif field and dataset.has_sample_field(field):
            dataset.delete_sample_field(field)
        if field:
            forget_shards(dataset, key)

    def rename(self, samples, key, new_key):
        raise ValueError(
            "the key of a No Time to Train run is its prediction field's name; rename the "
            "field (and re-run) instead"
        )


def versions() -> dict[str, str]:
    """Versions of the packages that determine the predictions."""
    out = {}
    for package in ("fiftyone-ntt", "torch", "transformers", "fiftyone", "numpy"):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


def list_ntt_runs(collection: Any) -> list[str]:
    """Keys (= prediction fields) of the No Time to Train runs of the collection."""
    return collection.list_runs(method=RUN_METHOD)


def run_config_for(plan: Any, out_field: str, **extra: Any) -> NTTRunConfig:
    """The config a run records (one builder for image and video runs): its bank, settings,
    models, library versions and fingerprint, from the run's plan
    (:class:`~fiftyone_ntt.fiftyone.runs.image_loop.RunPlan`); ``extra``: more attributes
    (``media_type="video"``)."""
    return NTTRunConfig(
        out_field=out_field,
        gt_field=plan.gt_field,
        bank_key=plan.bank_key,
        bank_fingerprint=plan.bank.fingerprint,
        bank_version=plan.bank.origin.get("bank_version"),  # set by load_bank
        classes=list(plan.bank.class_names),
        shots=plan.bank.shots_per_class(),
        run_fingerprint=plan.fingerprint,
        ntt_config=plan.config.to_dict(),
        models=plan.models,
        versions=versions(),
        skip_references=bool(plan.skip_references),
        **extra,
    )
