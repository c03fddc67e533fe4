"""The one settings resolver: the :class:`~fiftyone_ntt.config.NTTConfig` that a run
(:func:`~fiftyone_ntt.fiftyone.runs.job.segment`), a preview, ``apply_model`` and the App's
pre-checks (:mod:`~fiftyone_ntt.fiftyone.app.preflight`) use, from the settings a bank was
built with and the overrides of the request; and the part of them a run records and
compares (everything but the device); the check of a device name (:func:`check_device`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fiftyone_ntt.config import NTTConfig
from fiftyone_ntt.fiftyone.dataset import model_cache

__all__ = [
    "available_devices",
    "check_device",
    "propagator_for",
    "recorded_settings",
    "resolve_settings",
    "segmenter_for",
]


def resolve_settings(
    bank_settings: Mapping[str, Any] | None,
    config: NTTConfig | None = None,
    score_threshold: float | None = None,
    max_detections: int | None = None,
    points_per_side: int | None = None,
    device: str | None = None,
    embeddings: bool | None = None,
) -> NTTConfig:
    """The settings of a run with a bank: ``config`` (default: ``bank_settings``, the
    settings the bank was built with, ``bank.metadata["config"]`` or its index entry's
    ``"config"``; else the defaults) with the given threshold, detection cap, point grid
    and device; ``embeddings`` True or False sets
    :attr:`~fiftyone_ntt.config.NTTConfig.keep_features` (None keeps the config's). The
    bank version's ``class_score_thresholds`` apply unless ``config`` sets its own."""
    if config is None:
        config = NTTConfig.from_dict(dict(bank_settings)) if bank_settings else NTTConfig()
    changes: dict[str, Any] = {"score_threshold": score_threshold}
    if max_detections is not None:
        changes["max_detections"] = int(max_detections)
    if points_per_side is not None:
        changes["points_per_side"] = int(points_per_side)
    if device:
        changes["models"] = {"device": device}
    if embeddings is not None:
        changes["keep_features"] = embeddings
    bank_cuts = (bank_settings or {}).get("class_score_thresholds")
    if bank_cuts and config.class_score_thresholds is None:
        # per-class thresholds belong to the bank version they were saved with
        # (docs/method.md §16.1): a request's preset or config keeps them unless it sets its own
        changes["class_score_thresholds"] = dict(bank_cuts)
    return config.replace(**changes)


def recorded_settings(config: NTTConfig | Mapping[str, Any]) -> dict[str, Any]:
    """What of the settings determines the predictions (and marks a run): all of them but
    the device."""
    settings = dict(config.to_dict() if isinstance(config, NTTConfig) else config)
    settings["models"] = {
        k: v for k, v in dict(settings.get("models") or {}).items() if k != "device"
    }
    return settings


def segmenter_for(bank: Any, config: NTTConfig, encoder: Any = None, proposer: Any = None) -> Any:
    """The per-image algorithm (:class:`fiftyone_ntt.segmenter.Segmenter`) of a run, preview
    or ``apply_model`` with these settings: the given models, else the cached ones of
    ``config.models`` (:func:`~fiftyone_ntt.fiftyone.dataset.model_cache.get_models`)."""
    # deferred: torch loads only when this runs
    from fiftyone_ntt.segmenter import Segmenter

    if encoder is None or proposer is None:
        loaded = model_cache.get_models(config.models)
        encoder = encoder or loaded[0]
        proposer = proposer or loaded[1]
    return Segmenter(encoder, proposer, bank, config)


#: Objects SAM 2's video memory tracks at a time when the request does not say.
DEFAULT_MAX_OBJECTS = 16


def propagator_for(proposer: Any, max_objects: int | None = None, propagator: Any = None) -> Any:
    """The propagator of a tracked video run (docs/method.md §17): the given one, else the
    video memory of the proposer's family over its weights, EdgeTAM's for an EdgeTAM proposer
    (:class:`~fiftyone_ntt.models.edgetam.video.EdgeTamVideoPropagator`), SAM 2's otherwise
    (:meth:`~fiftyone_ntt.models.sam2.video.Sam2VideoPropagator.from_proposer`, which
    refuses other proposers); in test-model mode the fake
    :class:`~fiftyone_ntt.testing.ColorPropagator` (``fake``) or the tiny random video model
    of the family (``tiny``). The video model is cached with the proposer
    (:func:`~fiftyone_ntt.fiftyone.dataset.model_cache.get_video_model`)."""
    if propagator is not None:
        return propagator
    cap = DEFAULT_MAX_OBJECTS if max_objects is None else max_objects
    mode = model_cache.test_models()
    # deferred: torch loads only when this runs
    if mode == "fake":
        from fiftyone_ntt.testing import ColorPropagator

        return ColorPropagator(max_objects=cap)
    from fiftyone_ntt.models.edgetam.video import EdgeTamVideoPropagator
    from fiftyone_ntt.models.sam2.video import Sam2VideoPropagator

    edgetam = dict(getattr(proposer, "identity", {}) or {}).get("family") == "edgetam"
    kind = EdgeTamVideoPropagator if edgetam else Sam2VideoPropagator
    # the video model is loaded once per proposer (model_cache), each run its own session
    if mode == "tiny":
        from fiftyone_ntt.models import tiny_video

        make = tiny_video.tiny_edgetam_video_model if edgetam else tiny_video.tiny_sam2_video_model
        model = model_cache.get_video_model(proposer, lambda: make()[0])
        name = "edgetam" if edgetam else "sam2"
        return kind(model, max_objects=cap, source=f"tiny-random-{name}-video")
    model = model_cache.get_video_model(
        proposer, lambda: kind.from_proposer(proposer, max_objects=cap).model
    )
    return kind.from_proposer(proposer, model, max_objects=cap)


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
