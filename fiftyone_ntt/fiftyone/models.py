"""Loading the two models for the FiftyOne adapter, with an in-process cache.

The environment variable ``FIFTYONE_NTT_TEST_MODELS`` replaces the real models, for tests and
demos without weights:

* ``fake``: the deterministic :class:`~fiftyone_ntt.testing.ColorEncoder` and
  :class:`~fiftyone_ntt.testing.RegionProposer` (flat-colour images only);
* ``tiny``: tiny random-weight DINOv2 / SAM 2 (:func:`fiftyone_ntt.models.tiny_encoder`,
  :func:`fiftyone_ntt.models.tiny_proposer`); meaningless masks, real code paths.

Unset (the default), the models named by the configuration are loaded with
:func:`fiftyone_ntt.models.load_models`.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from fiftyone_ntt.config import ModelConfig

__all__ = ["TEST_MODELS_ENV", "free_models", "get_models", "load_count", "model_identity"]

TEST_MODELS_ENV = "FIFTYONE_NTT_TEST_MODELS"
_TEST_CHOICES = ("fake", "tiny")

_cache: dict[tuple, tuple[Any, Any]] = {}
_lock = threading.Lock()
_loads = 0


def test_models() -> str | None:
    """The test-model mode named by ``FIFTYONE_NTT_TEST_MODELS``, or None."""
    value = os.environ.get(TEST_MODELS_ENV, "").strip().lower()
    if not value:
        return None
    if value not in _TEST_CHOICES:
        raise ValueError(
            f"{TEST_MODELS_ENV}={value!r} is not supported; use one of {list(_TEST_CHOICES)} "
            "or leave it unset for the real models"
        )
    return value


def _load(mode: str | None, models: ModelConfig) -> tuple[Any, Any]:
    global _loads
    _loads += 1
    if mode == "fake":
        from fiftyone_ntt.testing import ColorEncoder, RegionProposer

        return ColorEncoder(), RegionProposer()
    if mode == "tiny":
        from fiftyone_ntt.models import tiny_encoder, tiny_proposer

        return tiny_encoder(), tiny_proposer()
    from fiftyone_ntt.models import load_models

    return load_models(models)


def get_models(models: ModelConfig, device: str | None = None) -> tuple[Any, Any]:
    """``(encoder, proposer)`` for a model configuration, loaded once per process.

    Models are cached by (test-model mode, sources, device, precision), so that repeated
    previews and immediate operator runs in the App pay only inference. At most one pair
    is kept: asking for other models releases the previous ones. :func:`free_models`
    releases them on request.

    Args:
        models: which weights to load.
        device: overrides ``models.device`` when given.
    """
    mode = test_models()
    if device:
        models = ModelConfig(
            sam2=models.sam2, dinov2=models.dinov2, device=device, precision=models.precision
        )
    key = (mode, models.sam2, models.dinov2, models.device, models.precision)
    if mode:
        key = (mode,)  # test models ignore sources and device
    with _lock:
        if key not in _cache:
            _release()  # keep at most one pair of large models in memory
            _cache[key] = _load(mode, models)
        return _cache[key]


def _release() -> None:
    if not _cache:
        return
    _cache.clear()
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


def free_models() -> int:
    """Release the cached models (their memory, CUDA included). Returns how many pairs were
    held (0 or 1)."""
    with _lock:
        held = len(_cache)
        _release()
        return held


def load_count() -> int:
    """How many times models were loaded in this process (the cache's misses)."""
    return _loads


def model_identity(encoder: Any, proposer: Any) -> dict[str, Any]:
    """JSON description of both models, for banks and runs."""
    return {
        "encoder": dict(getattr(encoder, "identity", {}) or {}),
        "proposer": dict(getattr(proposer, "identity", {}) or {}),
    }
