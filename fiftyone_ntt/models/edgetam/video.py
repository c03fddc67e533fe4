"""EdgeTAM's video memory as a propagator of keyframe masks (docs/method.md §17.3), over
``transformers.EdgeTamVideoModel`` and its ``EdgeTamVideoInferenceSession``.

EdgeTAM's video model differs from SAM 2's in its image encoder (RepViT instead of Hiera)
and in its memory: a *spatial perceiver* compresses each stored frame's memory to a few
hundred latents (256 global, 16×16 windowed in the released model) before memory attention
reads it, and memory attention has RoPE keys sized for those latents. Its inference session
and the ``model(session, frame_idx=..., frame=...)`` streaming call are the same as SAM 2's
(same methods, same stored-output layout), so :class:`EdgeTamVideoPropagator` *is*
:class:`~fiftyone_ntt.models.sam2.video.Sam2VideoPropagator` (one session per video, mask
prompts at keyframes, the memory window pruning and the object cap: one copy of that logic)
with EdgeTAM's model, session and loader.

* Shared with the bank's :class:`~fiftyone_ntt.models.edgetam.proposer.EdgeTamProposer` (the
  same tensors, no copy): the image modules the proposer runs, i.e. the RepViT trunk and FPN
  neck (``vision_encoder.*``, batch-norm statistics included), the prompt encoder, the mask
  decoder, ``shared_image_embedding`` and ``no_memory_embedding``.
* From the video checkpoint: the memory modules (``memory_attention``, ``memory_encoder``,
  ``spatial_perceiver``, ``object_pointer_proj``, ``mask_downsample``, the temporal and
  occlusion embeddings, ``no_object_pointer``).
* Refused with the fix: a proposer from Meta's original ``edgetam.pt`` (the loader converts
  its image modules only), an image-only ``EdgeTamModel`` folder, a checkpoint lacking
  memory tensors (transformers would fill them with random values).
"""

from __future__ import annotations

from typing import Any

from fiftyone_ntt.models.edgetam.proposer import EDGETAM_HUB_ID, native_repvit
from fiftyone_ntt.models.sam2.video import Sam2VideoPropagator, load_video_checkpoint

__all__ = ["EdgeTamVideoPropagator", "load_edgetam_video_model"]

_HINT = (
    "keyframe tracking with EdgeTAM needs its memory weights, which an EdgeTamVideoModel of "
    "the same checkpoint holds: give the proposer as a Hugging Face model id or "
    f"save_pretrained folder (e.g. {EDGETAM_HUB_ID!r}), pass propagator=, or keyframe_every=1"
)


class EdgeTamVideoPropagator(Sam2VideoPropagator):
    """A :class:`~fiftyone_ntt.tracking.protocol.Propagator` over an ``EdgeTamVideoModel``:
    :class:`~fiftyone_ntt.models.sam2.video.Sam2VideoPropagator`'s sessions, pruning and cap
    with EdgeTAM's model (``identity["family"] == "edgetam-video"``)."""

    family = "edgetam-video"
    proposer_family = "edgetam"
    model_name = "EdgeTAM"
    a_model = "an EdgeTAM"

    @classmethod
    def model_class(cls) -> type:
        from transformers import EdgeTamVideoModel

        return EdgeTamVideoModel

    @classmethod
    def session_class(cls) -> type:
        from transformers import EdgeTamVideoInferenceSession

        return EdgeTamVideoInferenceSession

    @classmethod
    def load_video_model(cls, source: str) -> Any:
        return load_edgetam_video_model(source)


def load_edgetam_video_model(source: str) -> Any:
    """The ``EdgeTamVideoModel`` of an EdgeTAM hub id or ``save_pretrained`` folder (built
    with the native RepViT, no timm), float32, eval, no grad.

    Raises:
        ValueError: ``source`` is empty or a file (Meta's ``edgetam.pt`` under any name), not
            an EdgeTAM video checkpoint, or lacks memory tensors; the message names it and
            the fix.
    """
    from transformers import EdgeTamVideoModel

    return load_video_checkpoint(
        EdgeTamVideoModel,
        source,
        model_type="edgetam_video",
        family="EdgeTAM",
        hint=_HINT,
        file_text="Meta's original EdgeTAM file, converted for images only",
        context=native_repvit,
    )
