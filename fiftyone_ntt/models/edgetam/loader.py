"""Load EdgeTAM (``transformers.EdgeTamModel``) from a hub id (``"yonigozlan/EdgeTAM-hf"``), a
``save_pretrained`` folder or Meta's original ``edgetam.pt`` (converted at load by
:mod:`fiftyone_ntt.models.edgetam.conversion`), and wrap it as an
:class:`~fiftyone_ntt.models.edgetam.proposer.EdgeTamProposer`."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from fiftyone_ntt.models import load_adapter
from fiftyone_ntt.models.checkpoints import (
    CheckpointError,
    classify_source,
    convert_original_file,
    finish_model,
    from_pretrained_folder,
    instantiate_model,
    local_weights,
)
from fiftyone_ntt.models.edgetam.conversion import convert_edgetam_state_dict
from fiftyone_ntt.models.edgetam.proposer import (
    EDGETAM_HUB_ID,
    EdgeTamProposer,
    backbone_arch,
    native_backbone_problem,
    native_repvit,
    plain_sub_config,
    require_timm,
)
from fiftyone_ntt.models.sam2.conversion import SAM2_WRAPPERS, original_proposer_family
from fiftyone_ntt.models.state_dict import unwrap_state_dict

__all__ = ["load_edgetam", "load_edgetam_proposer"]

logger = logging.getLogger(__name__)


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

    text = os.fspath(source)
    kind = classify_source(text, "EdgeTAM")
    path, local_kind, weights = local_weights(text, kind, "EdgeTAM")
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
                vision_config=plain_sub_config(raw.vision_config),
                prompt_encoder_config=plain_sub_config(raw.prompt_encoder_config),
                mask_decoder_config=plain_sub_config(raw.mask_decoder_config),
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

    model = from_pretrained_folder(folder, "EdgeTAM", build)
    arch = backbone_arch(model)
    logger.info("Loaded EdgeTAM (%s) from %s %s (%s)", arch, kind, text, weights)
    return finish_model(model.float()), {
        "source": text,
        "kind": kind,
        "arch": arch,
        "weights": weights,
    }


def _edgetam_from_file(path: Path) -> tuple[Any, str]:
    """Meta's original EdgeTAM checkpoint → ``(EdgeTamModel, arch)``, converted strictly."""
    from transformers import EdgeTamModel

    state_dict, arch, skipped = convert_original_file(
        path,
        "EdgeTAM",
        "edgetam.pt",
        _convert_edgetam,
        hint="; pass Meta's edgetam.pt (facebookresearch/EdgeTAM), an EdgeTAM save_pretrained "
        f"folder or a hub id such as {EDGETAM_HUB_ID!r}",
    )
    problem = native_backbone_problem(arch.to_config().vision_config.backbone_config)
    if problem is not None:  # cannot happen for EDGETAM_SPECS sizes; kept as a guard
        require_timm(problem)
    with native_repvit():
        model = instantiate_model(
            EdgeTamModel, arch.to_config(), state_dict, str(path), arch.describe()
        )
    logger.info(
        "Recognised %s in %s (%d video-only tensors ignored)", arch.describe(), path, len(skipped)
    )
    return model, arch.spec.architecture


def _convert_edgetam(checkpoint: Any) -> Any:
    """:func:`convert_edgetam_state_dict`, refusing Meta's SAM 2 file (a Hiera trunk)."""
    state = unwrap_state_dict(checkpoint, SAM2_WRAPPERS, "EdgeTAM")
    if original_proposer_family(state) == "sam2":
        raise CheckpointError(
            "this is Meta's SAM 2 checkpoint (a Hiera trunk), not EdgeTAM; load it as a "
            "SAM 2 proposer (load_proposer / load_sam2)"
        )
    return convert_edgetam_state_dict(checkpoint)


def load_edgetam_proposer(
    source: str | os.PathLike[str],
    *,
    device: str | torch.device = "auto",
    precision: str = "float32",
) -> EdgeTamProposer:
    """:func:`load_edgetam` wrapped as an :class:`EdgeTamProposer`."""
    return load_adapter(
        load_edgetam,
        lambda model, info, resolved: EdgeTamProposer(
            model, source=info["source"], device=resolved, precision=precision, arch=info["arch"]
        ),
        source,
        device,
        precision,
    )
