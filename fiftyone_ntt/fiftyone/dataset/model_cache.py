"""Loading the two models for the FiftyOne adapter, with an in-process cache.

The environment variable ``FIFTYONE_NTT_TEST_MODELS`` replaces the real models, for tests and
demos without weights:

* ``fake``: the deterministic :class:`~fiftyone_ntt.testing.ColorEncoder` and
  :class:`~fiftyone_ntt.testing.RegionProposer` (flat-colour images only);
* ``tiny``: tiny random-weight DINOv2 / SAM 2 (:func:`fiftyone_ntt.models.tiny_encoder`,
  :func:`fiftyone_ntt.models.tiny_proposer`); meaningless masks, real code paths.

Unset (the default), the models named by the configuration are loaded with
:func:`fiftyone_ntt.models.load_models`.

A tracked video run's SAM 2 video model (its memory modules over the proposer's image
weights, docs/method.md §17.3) is cached with the proposer it shares weights with
(:func:`get_video_model`), and released with the image models.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from fiftyone_ntt.config import ModelConfig
from fiftyone_ntt.presets import model_label

__all__ = [
    "TEST_MODELS_ENV",
    "describe_model",
    "describe_models",
    "free_models",
    "get_models",
    "get_video_model",
    "load_count",
    "model_identity",
]

TEST_MODELS_ENV = "FIFTYONE_NTT_TEST_MODELS"
_TEST_CHOICES = ("fake", "tiny")

_cache: dict[tuple, tuple[Any, Any]] = {}
#: ``{"proposer": ..., "model": ...}``: the video model of one proposer at most
_video: dict[str, Any] = {}
_lock = threading.Lock()
_loads = 0
_video_loads = 0


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
    # deferred: torch loads only when this runs
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


def get_video_model(proposer: Any, load: Callable[[], Any]) -> Any:
    """The SAM 2 video model that goes with ``proposer``, loaded once (``load()``) and kept
    while the proposer is the same object: the tracked runs after the first pay no load. At
    most one is kept (another proposer replaces it); :func:`free_models` releases it with
    the image models."""
    global _video_loads
    with _lock:
        if _video.get("proposer") is not proposer:
            _video.clear()
            model = load()
            _video.update(proposer=proposer, model=model)
            _video_loads += 1
        return _video["model"]


def _release() -> None:
    if not _cache and not _video:
        return
    _cache.clear()
    _video.clear()

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


def free_models() -> int:
    """Release the cached models (their memory, CUDA included), the video model included.
    Returns how many pairs were held (0 or 1)."""
    with _lock:
        held = len(_cache)
        _release()
        return held


def load_count(video: bool = False) -> int:
    """How many times models (``video``: video models) were loaded in this process (the
    cache's misses)."""
    return _video_loads if video else _loads


def model_identity(encoder: Any, proposer: Any) -> dict[str, Any]:
    """JSON description of both models, for banks and runs."""
    return {
        "encoder": dict(getattr(encoder, "identity", {}) or {}),
        "proposer": dict(getattr(proposer, "identity", {}) or {}),
    }


# --------------------------------------------------------------------------------------------
# Readable names: the one place the App names a model (about, forms, banks, panel)

#: The test models by identity ``family``, and by ``source`` (what a bank built with them
#: records as its configuration's model names).
_FAKE_FAMILIES = {"fake-color": "ColorEncoder", "fake-region": "RegionProposer"}
_FAKE_SOURCES = {"fiftyone_ntt.testing.ColorEncoder": "ColorEncoder", "testing": "RegionProposer"}
_VIT_SIZES = {"small": "S", "base": "B", "large": "L", "giant": "g", "huge": "H"}


def _arch_text(family: str, arch: str, patch: Any) -> str:
    """``hiera_tiny`` -> ``hiera-tiny``; ``vit_small`` (patch 14) -> ``ViT-S/14``."""
    if family in ("dinov2", "dinov3") and arch.startswith("vit_"):
        words = arch[len("vit_") :].split("_")
        size = _VIT_SIZES.get(words[0], words[0]) + "".join(
            "+" if w == "plus" else f"-{w}" for w in words[1:]
        )
        return f"ViT-{size}" + (f"/{patch}" if patch else "")
    return arch.replace("_", "-")


def describe_model(model: Mapping[str, Any] | str | None) -> str:
    """A readable name of one model, from its identity (what banks and runs record, see
    :func:`model_identity`) or its source (a hub id or path, as configurations name it).

    Known hub ids get the presets' names (``"SAM 2.1 Hiera-T"``, ``"DINOv2 ViT-S/14"``);
    other weights their family, version and size, with the file or folder name
    (``"SAM 2.1 hiera-tiny (x.pt)"``); the test models say so (``"fake ColorEncoder
    (testing)"``, ``"tiny random DINOv2 (testing)"``).
    """
    # deferred: torch loads only when this runs
    from fiftyone_ntt.models.catalog import FAMILY_NAMES

    if isinstance(model, Mapping):
        identity = dict(model)
    else:
        identity = {"source": model} if model else {}
    source = str(identity.get("source") or "")
    family = str(identity.get("family") or "")
    if source and model_label(source) != source:
        return model_label(source)
    fake = _FAKE_FAMILIES.get(family) or _FAKE_SOURCES.get(source)
    if fake or source.startswith("fiftyone_ntt.testing."):
        return f"fake {fake or source.rsplit('.', 1)[-1]} (testing)"
    if source.startswith("tiny-random-"):
        family = family or source[len("tiny-random-") :].split("(")[0]
        return f"tiny random {FAMILY_NAMES.get(family, family)} (testing)"
    where = os.path.basename(source.rstrip("/\\")) or source
    if not family:
        return where or "unknown model"
    name = FAMILY_NAMES.get(family, family)
    if family == "sam2" and identity.get("version"):
        name = f"SAM {identity['version']}"
    arch = _arch_text(family, str(identity.get("arch") or ""), identity.get("patch_size"))
    text = f"{name} {arch}".strip()
    return f"{text} ({where})" if where else text


def describe_models(models: Mapping[str, Any] | None) -> str:
    """``"<proposer> + <encoder>"`` (:func:`describe_model` of each) from identities
    (``{"proposer": ..., "encoder": ...}``, :func:`model_identity`) or a configuration's
    sources (``{"sam2": ..., "dinov2": ...}``, :class:`~fiftyone_ntt.config.ModelConfig`)."""
    models = models or {}
    proposer = models.get("proposer", models.get("sam2"))
    encoder = models.get("encoder", models.get("dinov2"))
    return f"{describe_model(proposer)} + {describe_model(encoder)}"
