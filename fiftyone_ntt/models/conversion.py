"""Meta's original SAM 2 and DINOv2 checkpoints → Hugging Face ``transformers`` modules.

The reference implementation loads Meta's own files (``sam2_hiera_large.pt``,
``dinov2_vitl14_pretrain.pth``; docs/method.md §1.1, §1.2); we run ``transformers`` modules, so
those files are renamed (and a few tensors split or joined) at load time. The architecture is
read from the tensors themselves (users rename files):

* SAM 2 Hiera size from the trunk's width and blocks per stage; the settings that shapes
  cannot show (heads, window sizes, global-attention blocks) come from :data:`HIERA_SPECS`,
  Meta's published configs ``sam2{,.1}_hiera_{t,s,b+,l}.yaml``.
* SAM 2.0 vs 2.1 from tensors only 2.1 has (``no_obj_embed_spatial``, ``obj_ptr_tpos_proj``).
* DINOv2 size from width/depth (:data:`DINOV2_SPECS`), registers from ``register_tokens``,
  SwiGLU (ViT-g) from ``mlp.w12``.

Nothing here touches the network or the disk; :mod:`fiftyone_ntt.models.checkpoints` does.
The code lives in :mod:`.conversion_specs` (tables, shared helpers), :mod:`.conversion_sam2`
and :mod:`.conversion_dinov2`; this module is the public face.
"""

from __future__ import annotations

from fiftyone_ntt.models.conversion_dinov2 import (  # noqa: F401 - _normalise: compatibility
    Dinov2Architecture,
    _normalise_dinov2_keys,
    convert_dinov2_state_dict,
    infer_dinov2_architecture,
    peek_dinov2_architecture,
)
from fiftyone_ntt.models.conversion_sam2 import (
    Sam2Architecture,
    convert_sam2_state_dict,
    infer_sam2_architecture,
)
from fiftyone_ntt.models.conversion_specs import (  # noqa: F401 - _unwrap: compatibility
    DINOV2_SPECS,
    HIERA_SPECS,
    CheckpointError,
    Dinov2Spec,
    HieraSpec,
    _unwrap,
    dinov2_arch_name,
    hiera_arch_name,
)

__all__ = [
    "DINOV2_SPECS",
    "HIERA_SPECS",
    "CheckpointError",
    "Dinov2Architecture",
    "Dinov2Spec",
    "HieraSpec",
    "Sam2Architecture",
    "convert_dinov2_state_dict",
    "convert_sam2_state_dict",
    "dinov2_arch_name",
    "hiera_arch_name",
    "infer_dinov2_architecture",
    "infer_sam2_architecture",
    "peek_dinov2_architecture",
]
