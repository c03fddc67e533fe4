"""DINOv2 (with or without registers) as the semantic encoder: :class:`Dinov2Encoder`
(:mod:`.encoder`), the conversion of Meta's ``dinov2_vit*14*_pretrain.pth``
(:mod:`.conversion`, with the released sizes) and the loader (:mod:`.loader`). Names are
imported from their submodule when first used."""

from __future__ import annotations

from fiftyone_ntt.models.lazy_exports import lazy_exports

_EXPORTS = {
    "DINOV2_SPECS": "conversion",
    "Dinov2Architecture": "conversion",
    "Dinov2Encoder": "encoder",
    "Dinov2Spec": "conversion",
    "IMAGENET_MEAN": "encoder",
    "IMAGENET_STD": "encoder",
    "convert_dinov2_state_dict": "conversion",
    "dinov2_arch_name": "conversion",
    "infer_dinov2_architecture": "conversion",
    "load_dinov2": "loader",
    "peek_dinov2_architecture": "conversion",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
