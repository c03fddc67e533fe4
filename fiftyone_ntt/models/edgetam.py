"""EdgeTAM as the mask proposer, over ``transformers`` ``EdgeTamModel``.

EdgeTAM (Meta, 2025) is SAM 2 for devices: its image encoder is a RepViT-M1 CNN (run through
``timm``) with SAM 2's FPN neck, giving the same 256²/128²/64² feature pyramid; its prompt
encoder and mask decoder are SAM 2's (``transformers`` generates ``EdgeTamMaskDecoder`` /
``EdgeTamPromptEncoder`` from the SAM 2 classes, with the same parameter names and shapes).
What differs from SAM 2 is only the image encoder and the video memory (a spatial perceiver,
unused for single images). So proposals run through the same fast decoder as SAM 2
(:class:`~fiftyone_ntt.models.sam2.Sam2Proposer`): we hand it a ``Sam2Model`` whose prompt
encoder and mask decoder are loaded *strictly* from EdgeTAM's weights (a layout difference
would fail loudly) and whose vision encoder *is* EdgeTAM's module.

Requirements: ``timm`` (and therefore ``torchvision``, which timm imports), for the RepViT
backbone. Without them :func:`load_edgetam` raises with the install hint.

Sources: a hub id (``"yonigozlan/EdgeTAM-hf"``, the checkpoint transformers documents) or a
local ``save_pretrained`` folder. Meta's original ``edgetam.pt`` is not converted (its RepViT
tensors would need a timm key mapping): convert it once with transformers' own script.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from fiftyone_ntt.models.sam2 import Sam2Proposer

__all__ = [
    "EDGETAM_HUB_ID",
    "EdgeTamProposer",
    "load_edgetam",
    "load_edgetam_proposer",
    "proposer_family",
    "require_timm",
]

logger = logging.getLogger(__name__)

#: The EdgeTAM checkpoint in transformers' layout that transformers' documentation uses.
EDGETAM_HUB_ID = "yonigozlan/EdgeTAM-hf"


def require_timm() -> None:
    """Raise a clear error when the RepViT backbone's packages are missing."""
    try:
        import timm  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "EdgeTAM needs the 'timm' package for its RepViT image encoder (timm in turn needs "
            f"a torchvision that matches your torch): {error}. Install them "
            "(pip install timm torchvision, matching torch's version), or use a SAM 2 "
            "proposer such as 'facebook/sam2.1-hiera-tiny'"
        ) from error


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


def proposer_family(source: str | os.PathLike[str]) -> str:
    """``"edgetam"`` or ``"sam2"`` for a source, without loading weights (folder config, the
    cached hub config, else ``edgetam`` in a hub id's name). Files are SAM 2's."""
    from fiftyone_ntt.models.checkpoints import classify_source

    text = os.fspath(source)
    try:
        kind = classify_source(text, "mask proposer")
    except (ValueError, OSError):
        return "sam2"
    if kind == "folder":
        return "edgetam" if _model_type(Path(text).expanduser()) in _EDGETAM_TYPES else "sam2"
    if kind == "file":
        return "sam2"
    try:
        from fiftyone_ntt.models.hub import cached_repo_files

        cached = cached_repo_files(text)
    except Exception:  # best effort: decide by name
        cached = None
    if cached is not None and "config.json" in cached[2]:
        return "edgetam" if _model_type(cached[0]) in _EDGETAM_TYPES else "sam2"
    return "edgetam" if "edgetam" in text.lower() else "sam2"


def load_edgetam(source: str | os.PathLike[str]) -> tuple[Any, dict[str, Any]]:
    """Load an ``EdgeTamModel`` from a hub id or a ``save_pretrained`` folder.

    Returns:
        ``(model, info)``; ``info`` has ``source``, ``kind`` and ``arch``.

    Raises:
        ImportError: ``timm`` is missing.
        CheckpointError: not an EdgeTAM folder/checkpoint, or a single file.
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
    if kind == "file":
        raise CheckpointError(
            f"{text}: EdgeTAM loads from a hub id (e.g. {EDGETAM_HUB_ID!r}) or a "
            "save_pretrained folder; Meta's original edgetam.pt must be converted with "
            "transformers' EdgeTAM conversion script first"
        )
    require_timm()
    path, local_kind, weights = _local(text, kind, "EdgeTAM")
    if local_kind == "file":
        raise CheckpointError(
            f"hub repo {text!r} holds only an original checkpoint ({path.name}); EdgeTAM needs "
            f"the transformers files (e.g. {EDGETAM_HUB_ID!r})"
        )
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
        return EdgeTamModel.from_pretrained(
            folder, config=config, local_files_only=local_files_only
        )

    model = _from_pretrained(folder, "EdgeTAM", build)
    arch = _backbone_arch(model)
    logger.info("Loaded EdgeTAM (%s) from %s %s (%s)", arch, kind, text, weights)
    return _finish(model.float()), {"source": text, "kind": kind, "arch": arch, "weights": weights}


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
