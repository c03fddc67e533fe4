"""SAM 2's video memory as a propagator of keyframe masks (docs/method.md §17.3), over
``transformers.Sam2VideoModel`` and its ``Sam2VideoInferenceSession``.

* One inference session per video (:meth:`Sam2VideoPropagator.start_video`), reused for all
  its keyframes: at a keyframe the session's objects are replaced
  (``reset_tracking_data``; the vision-feature cache is kept) by the keyframe's masks, given as
  mask prompts (``add_mask_inputs``: SAM 2 takes an input mask as the conditioning frame's
  output), and every following frame is streamed in (``model(session, frame=...)``), all
  objects of the frame in one call.
* Long videos: the session keeps only what SAM 2's memory attention reads back, the
  outputs of the last ``max(num_maskmem, max_object_pointers_in_encoder) + 1`` frames (17 for
  the released models), without their full-resolution mask logits, and the current frame's
  pixels; older ones are dropped as the video goes on. Memory per object is then bounded whatever the video length, and the masks are
  those of an unpruned session (a test checks).
* Object cap: at most ``max_objects`` objects per session (the keyframe loop seeds the
  best-scored tracks); memory grows linearly with them (docs/benchmarks.md).
* Weights: the image modules (Hiera, prompt encoder, mask decoder) are *shared* with the
  bank's proposer (:meth:`Sam2VideoPropagator.from_proposer`: the same tensors, no copy); the
  memory modules come from a ``Sam2VideoModel`` of the same checkpoint (a Hugging Face id or
  folder: Meta's ``.pt`` files are converted for images only, without them).

:class:`Sam2VideoPropagator` is also the base of EdgeTAM's propagator
(:class:`fiftyone_ntt.models.edgetam.video.EdgeTamVideoPropagator`): the session, pruning and
cap logic is this one copy; a subclass names its model and session classes, its proposer
family and how its video model loads (the class attributes and hooks below).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fiftyone_ntt.models import resolve_device
from fiftyone_ntt.models.imagenet import IMAGENET_MEAN, IMAGENET_STD
from fiftyone_ntt.preprocess import squash_image

__all__ = ["Sam2VideoPropagator", "memory_window"]


def memory_window(config: Any) -> int:
    """Frames of outputs SAM 2's memory attention can read back: the ``num_maskmem - 1``
    previous masks, the object pointers of up to ``max_object_pointers_in_encoder`` frames,
    and the current one."""
    return max(int(config.num_maskmem), int(config.max_object_pointers_in_encoder)) + 1


class Sam2VideoPropagator:
    """A :class:`~fiftyone_ntt.tracking.protocol.Propagator` over a ``Sam2VideoModel``.

    Attributes:
        model: the ``transformers.Sam2VideoModel``.
        max_objects: objects per session at most (checked where a run's settings are,
            :func:`fiftyone_ntt.tracking.check_max_objects`; :meth:`seed` refuses more).
        input_size: the side frames are squashed to (1024 for the released models).
        sessions_started: inference sessions opened (one per video).
        session: the current ``Sam2VideoInferenceSession`` (None between videos).
        identity: ``{"family": "sam2-video", "source", "max_objects"}``.
    """

    #: ``identity["family"]`` of the propagator.
    family = "sam2-video"
    #: ``identity["family"]`` of the proposers whose image weights it can share.
    proposer_family = "sam2"
    #: the model's name in messages, and with its article.
    model_name = "SAM 2"
    a_model = "a SAM 2"

    @classmethod
    def model_class(cls) -> type:
        """The transformers video model class (``Sam2VideoModel``)."""
        from transformers import Sam2VideoModel

        return Sam2VideoModel

    @classmethod
    def session_class(cls) -> type:
        """The transformers inference session class (``Sam2VideoInferenceSession``)."""
        from transformers import Sam2VideoInferenceSession

        return Sam2VideoInferenceSession

    @classmethod
    def load_video_model(cls, source: str) -> Any:
        """The video model of the proposer's ``source`` (its memory modules' weights).

        Raises:
            ValueError: ``source`` holds no video weights; the message names it and the fix.
        """
        return load_sam2_video_model(source)

    def __init__(
        self,
        model: Any,
        *,
        max_objects: int = 16,
        device: str | torch.device | None = None,
        source: str = "",
        prune: bool = True,
    ) -> None:
        expected = self.model_class()
        if not isinstance(model, expected):
            raise TypeError(
                f"model must be a transformers {expected.__name__}, got {type(model).__name__}"
            )
        self.device = resolve_device(device) if device is not None else model.device
        self.model = model.to(self.device).eval()
        self.model.requires_grad_(False)
        self.max_objects = max_objects
        self.input_size = int(model.config.image_size)
        self.window = memory_window(model.config)
        self.prune = prune
        self.identity: dict[str, Any] = {
            "family": self.family,
            "source": str(source),
            "max_objects": max_objects,
        }
        self.sessions_started = 0
        self.session: Any = None
        self._frame = -1
        self._size: tuple[int, int] | None = None
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=self.device).view(3, 1, 1)

    @classmethod
    def from_image_model(cls, image_model: Any, video_model: Any, **kwargs: Any):
        """``video_model`` with its image modules replaced by ``image_model``'s tensors
        (shared, not copied): the memory modules are ``video_model``'s own.

        Raises:
            ValueError: the two models do not have the same image modules (other sizes).
        """
        state = image_model.state_dict()
        try:
            _, unexpected = video_model.load_state_dict(state, strict=False, assign=True)
        except RuntimeError as error:  # size mismatches
            raise ValueError(
                f"the {cls.model_name} video model and the "
                "proposer's image model differ in size; load the video model of the "
                f"proposer's checkpoint ({error})"
            ) from error
        if unexpected:
            raise ValueError(
                f"the proposer's {cls.model_name} has modules the "
                f"video model lacks: {unexpected[:5]}"
            )
        return cls(video_model, **kwargs)

    @classmethod
    def from_proposer(cls, proposer: Any, video_model: Any = None, **kwargs: Any):
        """A propagator sharing the image weights of a
        :class:`~fiftyone_ntt.models.sam2.proposer.Sam2Proposer`; the memory modules from
        ``video_model`` or, by default, the ``Sam2VideoModel`` of the proposer's source (a
        Hugging Face model id or folder).

        Raises:
            ValueError: the proposer is not a SAM 2 one, or its source holds no video
                (memory) weights.
        """
        model = getattr(proposer, "model", None)
        identity = dict(getattr(proposer, "identity", {}) or {})
        if identity.get("family") != cls.proposer_family or model is None:
            raise ValueError(
                f"keyframe tracking needs {cls.a_model} proposer (its video memory); this one "
                f"is {identity.get('family', type(proposer).__name__)!r}: use {cls.a_model} "
                "preset, pass a propagator, or keyframe_every=1"
            )
        source = str(identity.get("source", ""))
        if video_model is None:
            video_model = cls.load_video_model(source)
        kwargs.setdefault("device", getattr(proposer, "device", None))
        kwargs.setdefault("source", source)
        return cls.from_image_model(model, video_model, **kwargs)

    # ---------------------------------------------------------------- the propagator protocol

    def start_video(self) -> None:
        self.session = self.session_class()(
            inference_device=self.device,
            inference_state_device=self.device,
            video_storage_device=self.device,
            dtype=torch.float32,
        )
        self.sessions_started += 1
        self._frame = -1
        self._size = None

    def _pixels(self, image: np.ndarray) -> torch.Tensor:
        squashed = squash_image(image, self.input_size).to(self.device)
        return (squashed - self._mean) / self._std

    def seed(self, image: np.ndarray, masks: Mapping[int, np.ndarray]) -> None:
        if self.session is None:
            self.start_video()
        if len(masks) > self.max_objects:
            raise ValueError(
                f"{len(masks)} objects to track > max_objects={self.max_objects}; seed the "
                "best-scored ones or raise max_objects"
            )
        session = self.session
        session.reset_tracking_data()
        self._frame += 1
        self._size = (int(image.shape[0]), int(image.shape[1]))
        self._drop_frames(self._frame)
        if not masks:
            return
        session.add_new_frame(self._pixels(image), self._frame)
        ids = [int(i) for i in masks]
        for track_id in ids:
            mask = torch.from_numpy(np.asarray(masks[track_id], dtype=np.float32))[None, None]
            mask = F.interpolate(
                mask.to(self.device),
                size=(self.input_size, self.input_size),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
            session.add_mask_inputs(session.obj_id_to_idx(track_id), self._frame, mask >= 0.5)
        session.obj_with_new_inputs = list(ids)
        with torch.inference_mode():
            self.model(session, frame_idx=self._frame)
        if self.prune:
            self._prune(self._frame)

    def propagate(self, image: np.ndarray) -> dict[int, np.ndarray]:
        session = self.session
        self._frame += 1
        if session is None or session.get_obj_num() == 0:
            return {}
        with torch.inference_mode():
            out = self.model(session, frame_idx=self._frame, frame=self._pixels(image))
        height, width = image.shape[:2]
        logits = F.interpolate(
            out.pred_masks.float(), size=(height, width), mode="bilinear", align_corners=False
        )
        masks = (logits[:, 0] > 0).cpu().numpy()
        if self.prune:
            self._prune(self._frame)
        return {int(i): masks[k] for k, i in enumerate(out.object_ids)}

    def end_video(self) -> None:
        self.session = None

    # ---------------------------------------------------------------- bounded state

    def _drop_frames(self, before: int) -> None:
        frames = self.session.processed_frames
        for index in [i for i in (frames or {}) if i < before]:
            del frames[index]

    def _prune(self, frame: int) -> None:
        """Drop what memory attention no longer reads: outputs older than the window, and
        pixels of frames before this one."""
        self._drop_frames(frame)
        oldest = frame - self.window
        for outputs in self.session.output_dict_per_obj.values():
            stale = outputs["non_cond_frame_outputs"]
            for index in [i for i in stale if i < oldest]:
                del stale[index]
            for kept in (*stale.values(), *outputs["cond_frame_outputs"].values()):
                # full-resolution logits, read only while their own frame is encoded
                kept.pop("high_res_masks", None)
        for tracked in self.session.frames_tracked_per_obj.values():
            for index in [i for i in tracked if i < oldest]:
                del tracked[index]

    def stored_frames(self) -> int:
        """The most frames of outputs the session holds for one object (for tests and
        benchmarks)."""
        if self.session is None:
            return 0
        return max(
            (
                len(o["cond_frame_outputs"]) + len(o["non_cond_frame_outputs"])
                for o in self.session.output_dict_per_obj.values()
            ),
            default=0,
        )


def load_video_checkpoint(
    model_class: Any,
    source: str,
    *,
    model_type: str,
    family: str,
    hint: str,
    file_text: str = "an image-only file",
    context: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> Any:
    """The video model (``model_class``, e.g. ``Sam2VideoModel``) of a hub id or
    ``save_pretrained`` folder, float32, eval, no grad: one rule for every family.

    transformers fills the tensors a checkpoint lacks with random values and only warns: a
    checkpoint without the memory modules would track with noise, so it is refused.

    Raises:
        ValueError: ``source`` is empty or a file (an image-only checkpoint), holds no model,
            a model of another type than ``model_type``, or lacks tensors; the message
            names ``source`` and ends with ``hint`` (the fix).
    """
    text = str(source or "").strip()
    if not text or text.endswith((".pt", ".pth", ".safetensors")) or Path(text).is_file():
        raise ValueError(f"the proposer's weights {text!r} are {file_text}; {hint}")
    try:
        with context():
            model, loading = model_class.from_pretrained(text, output_loading_info=True)
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(f"no {family} video model at {text!r} ({error}); {hint}") from error
    missing = sorted(loading.get("missing_keys") or [])
    if getattr(model.config, "model_type", None) != model_type or missing:
        what = (
            f"lacks {len(missing)} memory tensors ({', '.join(missing[:4])})"
            if missing
            else f"is a {model.config.model_type!r} model"
        )
        raise ValueError(
            f"{text!r} {what}, not {_article(family)} {family} video checkpoint; {hint}"
        )
    model = model.float().eval()
    model.requires_grad_(False)
    return model


def _article(word: str) -> str:
    return "an" if word[:1].upper() in "AEIOU" else "a"


def load_sam2_video_model(source: str) -> Any:
    """The ``Sam2VideoModel`` of a SAM 2 hub id or folder (:func:`load_video_checkpoint`)."""
    from transformers import Sam2VideoModel

    hint = (
        "keyframe tracking needs SAM 2's memory weights, which a Sam2VideoModel of the same "
        "checkpoint holds: give the proposer as a Hugging Face model id or folder (e.g. "
        "facebook/sam2.1-hiera-tiny), pass propagator=, or keyframe_every=1"
    )
    return load_video_checkpoint(
        Sam2VideoModel, source, model_type="sam2_video", family="SAM 2", hint=hint
    )
