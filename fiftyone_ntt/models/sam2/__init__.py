"""SAM 2 / SAM 2.1 as the mask proposer: :class:`Sam2Proposer` (:mod:`.proposer`) with its fast
and low-rank mask decoders (:mod:`.decoder`, :mod:`.lowrank`, :mod:`.lowrank_upscale`), the
conversion of Meta's ``sam2*_hiera_*.pt`` (:mod:`.conversion`, sizes in :mod:`.specs`) and the
loader (:mod:`.loader`). Names are imported from their submodule when first used."""

from __future__ import annotations

from fiftyone_ntt.models.lazy_exports import lazy_exports

_EXPORTS = {
    "FastMaskDecoder": "decoder",
    "HIERA_SPECS": "specs",
    "HieraSpec": "specs",
    "LowRankMaskDecoder": "lowrank",
    "Sam2Architecture": "conversion",
    "Sam2Embedding": "proposer",
    "Sam2Proposer": "proposer",
    "UpscalePlan": "decoder",
    "convert_sam2_state_dict": "conversion",
    "hiera_arch_name": "specs",
    "infer_sam2_architecture": "conversion",
    "load_sam2": "loader",
    "supports_low_rank": "lowrank",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
