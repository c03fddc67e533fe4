"""DINOv3 ViT as the semantic encoder: :class:`Dinov3Encoder` (:mod:`.encoder`, a
:class:`~fiftyone_ntt.models.dinov2.Dinov2Encoder` over ``DINOv3ViTModel``), the conversion
of Meta's ``dinov3_vit*16*_pretrain_*.pth`` (:mod:`.conversion`) and the loader
(:mod:`.loader`). Names are imported from their submodule when first used."""

from __future__ import annotations

from fiftyone_ntt.models.lazy_exports import lazy_exports

_EXPORTS = {
    "DINOV3_SPECS": "conversion",
    "Dinov3Architecture": "conversion",
    "Dinov3Encoder": "encoder",
    "Dinov3Spec": "conversion",
    "convert_dinov3_state_dict": "conversion",
    "dinov3_arch_name": "conversion",
    "encoder_family": "fiftyone_ntt.models.families",
    "infer_dinov3_architecture": "conversion",
    "load_dinov3": "loader",
    "load_dinov3_encoder": "loader",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
