"""EdgeTAM as the mask proposer, over ``transformers`` ``EdgeTamModel``.

EdgeTAM (Meta, 2025) is SAM 2 for devices: its image encoder is a RepViT-M1 CNN with SAM 2's
FPN neck, giving the same 256²/128²/64² feature pyramid; its prompt encoder and mask decoder
are SAM 2's (``transformers`` generates ``EdgeTamMaskDecoder`` / ``EdgeTamPromptEncoder`` from
the SAM 2 classes, with the same parameter names and shapes). What differs from SAM 2 is only
the image encoder and the video memory (a spatial perceiver, unused for single images). So
proposals run through the same fast decoder as SAM 2
(:class:`~fiftyone_ntt.models.sam2.proposer.Sam2Proposer`): we hand it a ``Sam2Model`` whose prompt
encoder and mask decoder are loaded *strictly* from EdgeTAM's weights (a layout difference
would fail loudly) and whose vision encoder *is* EdgeTAM's module.

No ``timm`` needed: transformers builds EdgeTAM's RepViT through ``timm`` (which imports
``torchvision``, absent or broken on many CPU machines). :func:`build_edgetam_model` and
:func:`~fiftyone_ntt.models.edgetam.loader.load_edgetam` build it with :class:`~fiftyone_ntt.models.edgetam.repvit.RepVitBackbone`
instead, always (whether timm is installed or not, so results do not depend on it): a
pure-PyTorch RepViT with the wrapper's parameter names, so EdgeTAM checkpoints load strictly
and ``save_pretrained`` folders stay readable by stock transformers. Only a backbone config
that is not a RepViT falls back to timm (and :func:`require_timm` explains what to install).

Sources: a hub id (``"yonigozlan/EdgeTAM-hf"``, the checkpoint transformers documents), a
local ``save_pretrained`` folder, or Meta's original ``edgetam.pt`` (facebookresearch/EdgeTAM,
under any file name): recognised from its tensors (a RepViT trunk under
``image_encoder.trunk.body.*``) and converted at load by
:mod:`fiftyone_ntt.models.edgetam.conversion`; its video-only modules are ignored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from fiftyone_ntt.models.edgetam.repvit import RepVitBackbone, repvit_spec
from fiftyone_ntt.models.sam2.proposer import Sam2Proposer

__all__ = [
    "EDGETAM_HUB_ID",
    "EdgeTamProposer",
    "backbone_arch",
    "build_edgetam_model",
    "native_backbone_problem",
    "native_repvit",
    "plain_sub_config",
    "require_timm",
    "sam2_view",
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
    """Why :class:`~fiftyone_ntt.models.edgetam.repvit.RepVitBackbone` cannot stand in for this
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
    RepViT image backbone as :class:`~fiftyone_ntt.models.edgetam.repvit.RepVitBackbone` (no timm).

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


def plain_sub_config(config: Any) -> dict[str, Any]:
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
        prompt_encoder_config=plain_sub_config(config.prompt_encoder_config),
        mask_decoder_config=plain_sub_config(config.mask_decoder_config),
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


def backbone_arch(model: Any) -> str:
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
            arch=arch or backbone_arch(model),
        )
        self.identity["family"] = "edgetam"

    def __repr__(self) -> str:
        return (
            f"EdgeTamProposer(arch={self.identity['arch']!r}, device={str(self.device)!r}, "
            f"precision={self.precision!r})"
        )
