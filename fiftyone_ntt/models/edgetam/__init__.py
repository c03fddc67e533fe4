"""EdgeTAM as the mask proposer: :class:`EdgeTamProposer` (:mod:`.proposer`, SAM 2's decoder
over a RepViT image encoder, :mod:`.repvit`), the conversion of Meta's ``edgetam.pt``
(:mod:`.conversion`) and the loader (:mod:`.loader`). Names are imported from their
submodule when first used."""

from __future__ import annotations

from fiftyone_ntt.models.lazy_exports import lazy_exports

_EXPORTS = {
    "EDGETAM_HUB_ID": "proposer",
    "EDGETAM_SPECS": "conversion",
    "EdgeTamArchitecture": "conversion",
    "EdgeTamProposer": "proposer",
    "EdgeTamSpec": "conversion",
    "REPVIT_VARIANTS": "repvit",
    "RepVitBackbone": "repvit",
    "build_edgetam_model": "proposer",
    "convert_edgetam_state_dict": "conversion",
    "infer_edgetam_architecture": "conversion",
    "load_edgetam": "loader",
    "load_edgetam_proposer": "loader",
    "native_backbone_problem": "proposer",
    "native_repvit": "proposer",
    "proposer_family": "fiftyone_ntt.models.families",
    "repvit_spec": "repvit",
    "require_timm": "proposer",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
