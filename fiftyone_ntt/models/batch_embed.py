"""Embedding several images with one SAM 2 image-encoder call (issue 13 §2).

:class:`~fiftyone_ntt.models.protocols.MaskProposer` embeds one image per call. On a GPU the
Hiera encoder is far better used with a batch of images, so :func:`embed_images` runs a
``Sam2Proposer``'s vision encoder on ``(B, 3, S, S)`` at once and splits the result into one
:class:`~fiftyone_ntt.models.sam2.Sam2Embedding` per image (what ``embed`` would return for
that image, up to float rounding of the batched matrix products). Any other proposer (the
test fakes, a proposer with its own ``embed_batch``) is served through its own methods.

A batch of one always goes through ``proposer.embed``: the paper path is unchanged.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

__all__ = ["embed_images"]


def embed_images(proposer: Any, pixels: torch.Tensor) -> list[Any]:
    """One embedding per image.

    Args:
        proposer: a :class:`~fiftyone_ntt.models.protocols.MaskProposer`.
        pixels: ``(B, 3, S, S)`` float32 RGB in ``[0, 1]`` with ``S = proposer.input_size``
            (any device; moved to the proposer's).

    Returns:
        ``B`` embeddings for :meth:`~fiftyone_ntt.models.protocols.MaskProposer.propose`.
    """
    if pixels.ndim != 4:
        raise ValueError(f"pixels must be (B, 3, S, S), got {tuple(pixels.shape)}")
    if pixels.shape[0] == 1:
        return [proposer.embed(pixels[0])]
    own = getattr(proposer, "embed_batch", None)
    if callable(own):
        return list(own(pixels))
    from fiftyone_ntt.models.sam2.proposer import Sam2Proposer

    if isinstance(proposer, Sam2Proposer):
        return _sam2_embed_batch(proposer, pixels)
    return [proposer.embed(p) for p in pixels]


def _sam2_embed_batch(proposer: Any, pixels: torch.Tensor) -> list[Any]:
    """``Sam2Proposer.embed`` for a batch: the same modules, the same order of operations."""
    from fiftyone_ntt.models.imagenet import IMAGENET_MEAN, IMAGENET_STD
    from fiftyone_ntt.models.sam2.proposer import Sam2Embedding

    size = proposer.input_size
    if tuple(pixels.shape[1:]) != (3, size, size):
        raise ValueError(
            f"pixels must be (B, 3, {size}, {size}) (resize the images to {size}² first, "
            f"§1.3), got {tuple(pixels.shape)}"
        )
    device = proposer.device
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    x = pixels.to(device=device, dtype=torch.float32, non_blocking=True)
    x = (x - mean) / std  # §1.1: ImageNet normalisation of the [0, 1] image
    model = proposer.model
    decoder = model.mask_decoder
    with torch.inference_mode(), _autocast(proposer):
        levels = model.vision_encoder(pixel_values=x).fpn_hidden_states  # 256², 128², 64²
        s0 = decoder.conv_s0(levels[0]).float()
        s1 = decoder.conv_s1(levels[1]).float()
        image = levels[-1].float()
        no_memory = model.no_memory_embedding.reshape(1, -1, 1, 1).float()
    return [
        Sam2Embedding(
            image=image[i : i + 1],
            high_res_s0=s0[i : i + 1],
            high_res_s1=s1[i : i + 1],
            no_memory=no_memory,
        )
        for i in range(x.shape[0])
    ]


def _autocast(proposer: Any) -> contextlib.AbstractContextManager[Any]:
    """The proposer's autocast (its ``precision``), or none for float32."""
    dtype = getattr(proposer, "_autocast", None)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=proposer.device.type, dtype=dtype)
