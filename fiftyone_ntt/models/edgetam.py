"""EdgeTAM as the mask proposer, over ``transformers`` ``EdgeTamModel``.

EdgeTAM (Meta, 2025) is SAM 2 for devices: its image encoder is a RepViT-M1 CNN with SAM 2's
FPN neck, giving the same 256²/128²/64² feature pyramid; its prompt encoder and mask decoder
are SAM 2's (``transformers`` generates ``EdgeTamMaskDecoder`` / ``EdgeTamPromptEncoder`` from
the SAM 2 classes, with the same parameter names and shapes). What differs from SAM 2 is only
the image encoder and the video memory (a spatial perceiver, unused for single images). So
proposals run through the same fast decoder as SAM 2
(:class:`~fiftyone_ntt.models.sam2.Sam2Proposer`): we hand it a ``Sam2Model`` whose prompt
encoder and mask decoder are loaded *strictly* from EdgeTAM's weights (a layout difference
would fail loudly) and whose vision encoder *is* EdgeTAM's module.

No ``timm`` needed: transformers builds EdgeTAM's RepViT through ``timm`` (which imports
``torchvision``, absent or broken on many CPU machines). :func:`build_edgetam_model` and
:func:`load_edgetam` build it with :class:`~fiftyone_ntt.models.repvit.RepVitBackbone`
instead, always (whether timm is installed or not, so results do not depend on it): a
pure-PyTorch RepViT with the wrapper's parameter names, so EdgeTAM checkpoints load strictly
and ``save_pretrained`` folders stay readable by stock transformers. Only a backbone config
that is not a RepViT falls back to timm (and :func:`require_timm` explains what to install).

Sources: a hub id (``"yonigozlan/EdgeTAM-hf"``, the checkpoint transformers documents), a
local ``save_pretrained`` folder, or Meta's original ``edgetam.pt`` (facebookresearch/EdgeTAM,
under any file name): recognised from its tensors (a RepViT trunk under
``image_encoder.trunk.body.*``) and converted at load by
:mod:`fiftyone_ntt.models.edgetam_conversion`; its video-only modules are ignored.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from fiftyone_ntt.models.repvit import RepVitBackbone, repvit_spec
from fiftyone_ntt.models.sam2 import Sam2Proposer

__all__ = [
    "EDGETAM_HUB_ID",
    "EdgeTamProposer",
    "build_edgetam_model",
    "load_edgetam",
    "load_edgetam_proposer",
    "native_backbone_problem",
    "native_repvit",
    "proposer_family",
    "require_timm",
]

logger = logging.getLogger(__name__)

#: The EdgeTAM checkpoint in transformers' layout that transformers' documentation uses.
EDGETAM_HUB_ID = "yonigozlan/EdgeTAM-hf"


def require_timm(reason: str = "its image backbone is not a RepViT") -> None:
    """Raise a clear error when an EdgeTAM backbone needs ``timm`` and timm does not import.

    Args:
        reason: why this backbone cannot be built without timm (RepViT backbones never need it).
    """
    try:
        import timm  # noqa: F401
    except (ImportError, RuntimeError) as error:  # a broken torchvision raises RuntimeError
        raise ImportError(
            f"this EdgeTAM checkpoint needs the 'timm' package ({reason}; timm in turn needs "
            f"a torchvision that matches your torch): {error}. Install them "
            "(pip install timm torchvision, matching torch's version), or use a RepViT EdgeTAM "
            f"such as {EDGETAM_HUB_ID!r} or a SAM 2 proposer such as 'facebook/sam2.1-hiera-tiny'"
        ) from error


def native_backbone_problem(backbone_config: Any) -> str | None:
    """Why :class:`~fiftyone_ntt.models.repvit.RepVitBackbone` cannot stand in for this
    EdgeTAM ``backbone_config`` (``None``: it can, no timm needed)."""
    model_type = getattr(backbone_config, "model_type", None)
    if model_type != "timm_wrapper":
        return f"its backbone config is {model_type!r}, not a timm_wrapper RepViT"
    try:
        repvit_spec(str(backbone_config.architecture), backbone_config.model_args)
    except ValueError as error:
        return str(error)
    return None


class _AutoModelWithRepVit:
    """``AutoModel`` as transformers' EdgeTAM module sees it inside :func:`native_repvit`:
    RepViT backbone configs build our backbone, everything else goes to ``AutoModel``."""

    def __init__(self, auto_model: Any) -> None:
        self._auto_model = auto_model

    def from_config(self, config: Any, **kwargs: Any) -> Any:
        if native_backbone_problem(config) is None:
            return RepVitBackbone(config)
        return self._auto_model.from_config(config, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._auto_model, name)


_BUILD_LOCK = threading.RLock()


@contextmanager
def native_repvit() -> Iterator[None]:
    """While active, ``EdgeTamModel(...)`` / ``EdgeTamModel.from_pretrained(...)`` build their
    RepViT image backbone as :class:`~fiftyone_ntt.models.repvit.RepVitBackbone` (no timm).

    ``EdgeTamVisionModel.__init__`` builds its backbone with the ``AutoModel`` name of its own
    module; we swap that one name for the duration (under a lock, restored on exit). Nothing
    else in transformers changes.
    """
    from transformers.models.edgetam import modeling_edgetam

    with _BUILD_LOCK:
        original = modeling_edgetam.AutoModel
        if isinstance(original, _AutoModelWithRepVit):  # nested
            yield
            return
        modeling_edgetam.AutoModel = _AutoModelWithRepVit(original)
        try:
            yield
        finally:
            modeling_edgetam.AutoModel = original


def build_edgetam_model(config: Any) -> Any:
    """``EdgeTamModel(config)`` with the native RepViT backbone (random weights, train mode,
    as transformers initialises them)."""
    from transformers import EdgeTamModel

    problem = native_backbone_problem(config.vision_config.backbone_config)
    if problem is not None:
        require_timm(problem)
    with native_repvit():
        return EdgeTamModel(config)


def _sub_config(config: Any) -> dict[str, Any]:
    data = config.to_dict()
    for key in ("model_type", "transformers_version", "architectures"):
        data.pop(key, None)
    return data


def sam2_view(model: Any) -> Any:
    """A ``Sam2Model`` that shares EdgeTAM's image encoder and carries its decoder weights.

    Raises:
        RuntimeError: EdgeTAM's prompt encoder / mask decoder do not load strictly into SAM 2's
            (i.e. the decoder is not SAM 2's).
    """
    from transformers import Sam2Config, Sam2Model, Sam2VisionConfig

    config = model.config
    vision = config.vision_config
    sam_config = Sam2Config(
        # Only the neck's width matters (no_memory_embedding); the Hiera trunk this config
        # names is built on the meta device and replaced by EdgeTAM's encoder.
        vision_config=Sam2VisionConfig(
            fpn_hidden_size=vision.fpn_hidden_size,
            backbone_feature_sizes=vision.backbone_feature_sizes,
            num_feature_levels=vision.num_feature_levels,
        ),
        prompt_encoder_config=_sub_config(config.prompt_encoder_config),
        mask_decoder_config=_sub_config(config.mask_decoder_config),
    )
    with torch.device("meta"):
        view = Sam2Model(sam_config)
    view.vision_encoder = model.vision_encoder
    # strict: every SAM 2 decoder/prompt tensor must come from EdgeTAM with the same shape.
    view.load_state_dict(model.state_dict(), strict=True, assign=True)
    left = [n for n, t in [*view.named_parameters(), *view.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"EdgeTAM lacks SAM 2 decoder tensors: {left[:5]}")
    view.config.vision_config = config.vision_config
    view.eval()
    view.requires_grad_(False)
    return view


def _backbone_arch(model: Any) -> str:
    backbone = getattr(model.config.vision_config, "backbone_config", None)
    name = getattr(backbone, "architecture", None)
    return str(name) if name else "edgetam_custom"


class EdgeTamProposer(Sam2Proposer):
    """A :class:`~fiftyone_ntt.models.protocols.MaskProposer` over an ``EdgeTamModel``.

    Behaves exactly like :class:`~fiftyone_ntt.models.sam2.Sam2Proposer` (1024² input,
    256² logits, proposals without ``no_memory_embedding``, boxes with it).

    Attributes:
        edgetam: the wrapped ``transformers.EdgeTamModel``.
        identity: ``{"family": "edgetam", "version": "1", "arch": <timm backbone>, ...}``.
    """

    def __init__(
        self,
        model: Any,
        *,
        source: str,
        device: str | torch.device = "cpu",
        precision: str = "float32",
        decode_batch_size: int | None = None,
        arch: str | None = None,
    ) -> None:
        from transformers import EdgeTamModel

        if not isinstance(model, EdgeTamModel):
            raise TypeError(
                f"model must be a transformers EdgeTamModel, got {type(model).__name__}"
            )
        self.edgetam = model
        super().__init__(
            sam2_view(model),
            source=source,
            version="1",
            device=device,
            precision=precision,
            decode_batch_size=decode_batch_size,
            arch=arch or _backbone_arch(model),
        )
        self.identity["family"] = "edgetam"

    def __repr__(self) -> str:
        return (
            f"EdgeTamProposer(arch={self.identity['arch']!r}, device={str(self.device)!r}, "
            f"precision={self.precision!r})"
        )


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------

_EDGETAM_TYPES = ("edgetam", "edgetam_video")


def _model_type(folder: Path) -> str | None:
    import json

    try:
        return json.loads((folder / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None


def _file_family(path: Path) -> str:
    from fiftyone_ntt.models.checkpoints import CheckpointError, _torch_load
    from fiftyone_ntt.models.conversion_specs import _unwrap
    from fiftyone_ntt.models.edgetam_conversion import original_proposer_family

    try:
        state = _unwrap(_torch_load(path, "mask proposer"), ("model", "state_dict"), "SAM 2")
    except CheckpointError:
        return "sam2"
    return original_proposer_family(state) or "sam2"


def proposer_family(source: str | os.PathLike[str]) -> str:
    """``"edgetam"`` or ``"sam2"`` for a source (folder config, the cached hub config, else
    ``edgetam`` in a hub id's name; a file by its tensor names, memory-mapped, so whatever
    it is called). Unreadable or foreign files count as SAM 2's: the SAM 2 loader explains."""
    from fiftyone_ntt.models.checkpoints import classify_source

    text = os.fspath(source)
    try:
        kind = classify_source(text, "mask proposer")
    except (ValueError, OSError):
        return "sam2"
    if kind == "folder":
        return "edgetam" if _model_type(Path(text).expanduser()) in _EDGETAM_TYPES else "sam2"
    if kind == "file":
        return _file_family(Path(text).expanduser())
    try:
        from fiftyone_ntt.models.hub import cached_repo_files

        cached = cached_repo_files(text)
    except Exception:  # best effort: decide by name
        cached = None
    if cached is not None and "config.json" in cached[2]:
        return "edgetam" if _model_type(cached[0]) in _EDGETAM_TYPES else "sam2"
    return "edgetam" if "edgetam" in text.lower() else "sam2"


def load_edgetam(source: str | os.PathLike[str]) -> tuple[Any, dict[str, Any]]:
    """Load an ``EdgeTamModel`` from a hub id, a ``save_pretrained`` folder or Meta's
    original ``edgetam.pt`` (converted at load, see :func:`_edgetam_from_file`).

    Returns:
        ``(model, info)``; ``info`` has ``source``, ``kind`` and ``arch``.

    Raises:
        ImportError: the backbone is not a RepViT and ``timm`` is missing.
        CheckpointError: not an EdgeTAM folder/checkpoint (a SAM 2 or foreign file, an
            unreadable file, a bare .safetensors), or weights that lack tensors (named).
        ModelNotAvailableError: a hub id that is neither cached nor downloadable.
    """
    from transformers import AutoConfig, EdgeTamConfig, EdgeTamModel

    from fiftyone_ntt.models.checkpoints import (
        CheckpointError,
        _finish,
        _from_pretrained,
        _local,
        classify_source,
    )

    text = os.fspath(source)
    kind = classify_source(text, "EdgeTAM")
    path, local_kind, weights = _local(text, kind, "EdgeTAM")
    if local_kind == "file":
        model, arch = _edgetam_from_file(path)
        logger.info("Loaded EdgeTAM (%s) from %s %s (%s)", arch, kind, text, weights)
        return model, {"source": text, "kind": kind, "arch": arch, "weights": weights}
    folder = str(path)

    def build(local_files_only: bool) -> Any:
        raw = AutoConfig.from_pretrained(folder, local_files_only=local_files_only)
        model_type = getattr(raw, "model_type", None)
        if model_type == "edgetam":
            config = raw
        elif model_type == "edgetam_video":
            config = EdgeTamConfig(
                vision_config=_sub_config(raw.vision_config),
                prompt_encoder_config=_sub_config(raw.prompt_encoder_config),
                mask_decoder_config=_sub_config(raw.mask_decoder_config),
            )
        else:
            raise CheckpointError(
                f"{text!r} is a {model_type!r} model, not EdgeTAM; pass an EdgeTAM hub id "
                f"(e.g. {EDGETAM_HUB_ID!r}) or folder"
            )
        problem = native_backbone_problem(config.vision_config.backbone_config)
        if problem is not None:
            require_timm(problem)
        with native_repvit():
            model, loading = EdgeTamModel.from_pretrained(
                folder, config=config, local_files_only=local_files_only, output_loading_info=True
            )
        # transformers fills missing tensors with random values and only warns: a proposer
        # with a random layer would run and produce garbage.
        missing = sorted(loading.get("missing_keys") or [])
        if missing:
            raise CheckpointError(
                f"{text!r} lacks {len(missing)} EdgeTAM tensors ({', '.join(missing[:4])}"
                f"{' ...' if len(missing) > 4 else ''}); re-save it with save_pretrained or "
                f"use {EDGETAM_HUB_ID!r}"
            )
        return model

    model = _from_pretrained(folder, "EdgeTAM", build)
    arch = _backbone_arch(model)
    logger.info("Loaded EdgeTAM (%s) from %s %s (%s)", arch, kind, text, weights)
    return _finish(model.float()), {"source": text, "kind": kind, "arch": arch, "weights": weights}


def _edgetam_from_file(path: Path) -> tuple[Any, str]:
    """Meta's original EdgeTAM checkpoint → ``(EdgeTamModel, arch)``, converted strictly."""
    from transformers import EdgeTamModel

    from fiftyone_ntt.models.checkpoints import CheckpointError, _instantiate, _torch_load
    from fiftyone_ntt.models.conversion_specs import _unwrap
    from fiftyone_ntt.models.edgetam_conversion import (
        convert_edgetam_state_dict,
        original_proposer_family,
    )

    if path.suffix.lower() == ".safetensors":
        raise CheckpointError(
            f"{path}: a bare .safetensors file has no config; pass the folder that holds it "
            "together with its config.json, or Meta's original edgetam.pt"
        )
    checkpoint = _torch_load(path, "EdgeTAM")
    try:
        state = _unwrap(checkpoint, ("model", "state_dict"), "EdgeTAM")
        if original_proposer_family(state) == "sam2":
            raise CheckpointError(
                "this is Meta's SAM 2 checkpoint (a Hiera trunk), not EdgeTAM; load it as a "
                "SAM 2 proposer (load_proposer / load_sam2)"
            )
        state_dict, arch, skipped = convert_edgetam_state_dict(checkpoint)
    except CheckpointError as error:
        raise CheckpointError(
            f"{path}: {error}; pass Meta's edgetam.pt (facebookresearch/EdgeTAM), an EdgeTAM "
            f"save_pretrained folder or a hub id such as {EDGETAM_HUB_ID!r}"
        ) from None
    problem = native_backbone_problem(arch.to_config().vision_config.backbone_config)
    if problem is not None:  # cannot happen for EDGETAM_SPECS sizes; kept as a guard
        require_timm(problem)
    with native_repvit():
        model = _instantiate(EdgeTamModel, arch.to_config(), state_dict, str(path), arch.describe())
    logger.info(
        "Recognised %s in %s (%d video-only tensors ignored)", arch.describe(), path, len(skipped)
    )
    return model, arch.spec.architecture


def load_edgetam_proposer(
    source: str | os.PathLike[str],
    *,
    device: str | torch.device = "auto",
    precision: str = "float32",
) -> EdgeTamProposer:
    """:func:`load_edgetam` wrapped as an :class:`EdgeTamProposer`."""
    from fiftyone_ntt.models import resolve_device, resolve_precision

    resolved = resolve_device(device)
    resolve_precision(precision, resolved)
    model, info = load_edgetam(source)
    proposer = EdgeTamProposer(
        model, source=info["source"], device=resolved, precision=precision, arch=info["arch"]
    )
    proposer.identity["weights"] = info["weights"]
    return proposer
