"""What the tests of the two video-memory propagators (SAM 2's and EdgeTAM's, docs/method.md
§17.3) share: a stand-in segmenter and a video of two moving squares to track, one
description per family (:data:`SAM2`, :data:`EDGETAM`, together :data:`FAMILIES`) for the
checks that hold for both, the one-thread fixture, and, for the reliability tables, the makers
of proposer sources that hold no video memory and the refusal such a source gets.

A plain module next to the tests (importable through pytest's ``pythonpath``), not a test file:
``test_sam2_video.py`` runs the family-independent checks over :data:`FAMILIES`;
``test_edgetam_video.py``, ``test_reliability_sam2_video_source.py`` and
``test_reliability_edgetam_video.py`` keep what is one family's own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from fiftyone_ntt.models.edgetam.proposer import EdgeTamProposer
from fiftyone_ntt.models.edgetam.video import EdgeTamVideoPropagator
from fiftyone_ntt.models.sam2.proposer import Sam2Proposer
from fiftyone_ntt.models.sam2.video import Sam2VideoPropagator
from fiftyone_ntt.models.tiny_video import tiny_edgetam_video_model, tiny_sam2_video_model
from fiftyone_ntt.testing import paint
from fiftyone_ntt.types import Predictions

#: (height, width) of the frames of :func:`moving_squares`.
FRAME_SIZE = (48, 64)

#: (video model, image model): a family's tiny random models, as its ``tiny_models`` makes them.
Models = tuple[Any, Any]

#: makes a proposer's source (a path or a text) from the tiny models and an empty folder.
SourceMaker = Callable[[Models, Path], str]


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Import into a test file to run its tests on one torch thread: on the shared CPU one
    thread is several times faster here than contended ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Squares:
    """A stand-in segmenter: one detection per coloured square (exact masks, score 0.9)."""

    class_names = ("red", "green")

    def predict(self, image):
        masks, classes = [], []
        for class_id, colour in enumerate(((220, 30, 30), (30, 180, 30))):
            mask = (image == colour).all(-1)
            if mask.any():
                masks.append(mask)
                classes.append(class_id)
        if not masks:
            return Predictions.empty(*FRAME_SIZE, self.class_names)
        boxes = []
        for mask in masks:
            rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
            boxes.append([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1])
        return Predictions(np.stack(masks), boxes, [0.9] * len(masks), classes, self.class_names)


def moving_squares(frames: int) -> list[tuple[int, np.ndarray]]:
    """``(frame number, image)`` of a video of a red and a green square moving one pixel a
    frame (numbers from 1), for :class:`Squares` to detect."""
    return [
        (n, paint(FRAME_SIZE, [(1, (2 + n, 4, 14 + n, 16)), (2, (40, 2 + n, 52, 14 + n))]))
        for n in range(1, frames + 1)
    ]


@dataclass(frozen=True)
class VideoFamily:
    """One family of video-memory propagators, as the family-independent tests need it."""

    #: the test id.
    id: str
    #: ``tiny_models(seed=...)``: the tiny random (video model, image model of the same sizes).
    tiny_models: Callable[..., Models]
    proposer_class: type
    propagator_class: type
    #: the ``source`` of the tiny proposer (a name, not loadable).
    tiny_source: str
    #: the propagator's ``identity["family"]``.
    identity_family: str
    #: the name of its transformers inference session class.
    session_class: str
    #: parameters and buffers the propagator shares with the proposer (the same tensors).
    shared_weights: tuple[str, ...]
    #: memory-module parameters: the video checkpoint's own, which the proposer lacks.
    memory_weights: tuple[str, ...]
    #: video-config values that make the memory window small (long videos run fast), ...
    small_window: dict[str, int]
    #: ... the window they give (``memory_window``), ...
    window: int
    #: ... and the frames of a video long enough for pruning to keep fewer than it saw.
    long_video: int

    def proposer(self, models: Models, source: object = None) -> Any:
        """The family's proposer over the tiny image model, from ``source`` (by default the
        tiny source)."""
        return self.proposer_class(
            models[1], source=self.tiny_source if source is None else str(source)
        )

    def propagator(self, models: Models, **kwargs: Any) -> Any:
        """A propagator sharing the image weights of a fresh tiny proposer."""
        return self.propagator_class.from_proposer(self.proposer(models), models[0], **kwargs)


SAM2 = VideoFamily(
    id="sam2",
    tiny_models=tiny_sam2_video_model,
    proposer_class=Sam2Proposer,
    propagator_class=Sam2VideoPropagator,
    tiny_source="tiny-random-sam2-video",
    identity_family="sam2-video",
    session_class="Sam2VideoInferenceSession",
    shared_weights=(
        "vision_encoder.backbone.patch_embed.projection.weight",  # Hiera
        "vision_encoder.neck.convs.0.weight",  # the FPN neck
        "prompt_encoder.mask_embed.conv1.weight",
        "mask_decoder.iou_prediction_head.proj_out.weight",
        "shared_image_embedding.positional_embedding",
        "no_memory_embedding",
    ),
    memory_weights=(
        "memory_attention.layer_norm.weight",
        "memory_encoder.mask_downsampler.layers.0.conv.weight",
    ),
    small_window={"max_object_pointers_in_encoder": 4},
    window=8,
    long_video=14,
)

EDGETAM = VideoFamily(
    id="edgetam",
    tiny_models=tiny_edgetam_video_model,
    proposer_class=EdgeTamProposer,
    propagator_class=EdgeTamVideoPropagator,
    tiny_source="tiny-random-edgetam-video",
    identity_family="edgetam-video",
    session_class="EdgeTamVideoInferenceSession",
    shared_weights=(
        "vision_encoder.backbone.timm_model.stem.conv1.c.weight",  # RepViT
        "vision_encoder.backbone.timm_model.stem.conv1.bn.running_mean",  # its BN stats
        "vision_encoder.neck.convs.0.weight",  # the FPN neck
        "prompt_encoder.mask_embed.conv1.weight",
        "mask_decoder.iou_prediction_head.proj_out.weight",
        "shared_image_embedding.positional_embedding",
        "no_memory_embedding",
    ),
    memory_weights=("spatial_perceiver.latents_2d", "memory_attention.layer_norm.weight"),
    small_window={"max_object_pointers_in_encoder": 2, "num_maskmem": 3},
    window=4,
    long_video=8,
)

FAMILIES = (SAM2, EDGETAM)


# ---------------------------------------------------------------- sources that hold no video memory


def refusal_message(family: VideoFamily, models: Models, source: str) -> str:
    """What ``family``'s propagator says when it refuses a tiny proposer from ``source`` (a
    source without video memory); fails the test where it is not refused."""
    with pytest.raises(ValueError) as caught:
        family.propagator_class.from_proposer(family.proposer(models, source))
    return str(caught.value)


def fixed_source(source: str) -> SourceMaker:
    """A maker of the source ``source`` as it is (no file written)."""
    return lambda _models, _folder: source


def meta_file(name: str, key: str) -> SourceMaker:
    """A maker of a file ``name`` in Meta's original format (``{"model": {key: tensor}}``):
    image weights only, whatever the name."""

    def make(_models: Models, folder: Path) -> str:
        path = folder / name
        torch.save({"model": {key: torch.zeros(1)}}, path)
        return str(path)

    return make


def image_only_folder(models: Models, folder: Path) -> str:
    """A ``save_pretrained`` folder of the image model (``Sam2Model``, ``EdgeTamModel``): no
    memory modules."""
    models[1].save_pretrained(folder)
    return str(folder)


def lacking_tensors(prefix: str) -> SourceMaker:
    """A maker of a video checkpoint folder whose weights lack the tensors under ``prefix``."""

    def make(models: Models, folder: Path) -> str:
        models[0].save_pretrained(folder)
        weights = folder / "model.safetensors"
        state = load_file(weights)
        kept = {k: v for k, v in state.items() if not k.startswith(prefix)}
        assert len(kept) < len(state)
        save_file(kept, weights, metadata={"format": "pt"})
        return str(folder)

    return make


def empty_folder(_models: Models, folder: Path) -> str:
    """A folder without a checkpoint."""
    return str(folder)
