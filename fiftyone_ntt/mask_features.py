"""The semantic feature of a mask already segmented: features only, no new masks
(docs/method.md §15, "Features of a field written without them").

A prediction written without ``embeddings=True`` keeps its mask but not the vector it was
matched with. :func:`mask_features` computes that vector again from the stored mask, the way
the segmenter computed it (:meth:`~fiftyone_ntt.segmenter.Segmenter._predict_one`): the
image through the encoder at the run's semantic size, the mask brought back to the
proposer's low-resolution grid (:func:`low_res_masks`), and the same pooling
(:func:`~fiftyone_ntt.matching.pool_mask_features`). Where the stored mask is the low-res
mask exactly (images of the low-res size, 256 px for SAM 2, or a whole multiple of it) the
vector is the one matching used; elsewhere only the mask's boundary cells can differ.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from fiftyone_ntt.matching import pool_mask_features

__all__ = ["low_res_masks", "mask_features"]


def low_res_masks(masks: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """Full-image masks on the proposer's ``size`` x ``size`` grid of the squashed image.

    Each cell is on when at least half of the image area it covers is on (area averaging):
    the inverse of :func:`~fiftyone_ntt.masks.upsample_masks` for a mask the segmenter
    upsampled from that grid.

    Args:
        masks: ``(K, H, W)`` bool.
        size: the low-res side (``proposer.mask_size``).

    Returns:
        ``(K, size, size)`` bool.
    """
    masks = torch.as_tensor(
        np.asarray(masks, dtype=bool) if isinstance(masks, np.ndarray) else masks
    )
    if masks.ndim != 3:
        raise ValueError(f"masks must be (K, H, W) booleans, got shape {tuple(masks.shape)}")
    if len(masks) == 0:
        return torch.zeros((0, size, size), dtype=torch.bool)
    area = F.interpolate(masks[:, None].float(), size=(size, size), mode="area")[:, 0]
    return area >= 0.5


def mask_features(segmenter, image: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The L2-normalised pooled feature of each mask of one image, as matching computes it.

    Args:
        segmenter: a :class:`~fiftyone_ntt.segmenter.Segmenter` with the bank's encoder and
            the run's settings (its semantic size); its proposer gives the low-res size.
        image: RGB ``uint8`` ``(H, W, 3)``.
        masks: ``(K, H, W)`` bool full-image masks of that image.

    Returns:
        ``(K, D)`` float32 (NaN rows for masks that are empty on the low-res grid).
    """
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3 or masks.shape[1:] != image.shape[:2]:
        raise ValueError(
            f"masks of shape {masks.shape} do not cover the image of shape {image.shape[:2]}: "
            "pass (K, H, W) masks of this image"
        )
    prepared = segmenter.prepare(image)
    device = segmenter.encoder.device
    with torch.inference_mode():
        features = segmenter.encoder.encode(prepared.semantic.to(device)).float()[0]
        low_res = low_res_masks(masks, int(segmenter.proposer.mask_size)).to(features.device)
        return pool_mask_features(features, low_res).cpu().numpy()
