"""Reading images into the library's convention: RGB ``uint8`` arrays ``(H, W, 3)``.

What happens to unusual inputs (documented for users, tested in ``tests/unit/test_images.py``):

* 8-bit modes (RGB, L, 1, P, CMYK, YCbCr, LAB, RGBA, LA, PA) go through PIL's
  ``convert("RGB")``, exactly as the reference loader does (method §1.3). Alpha is dropped,
  not composited, which is what the reference does too.
* 16-bit and 32-bit integer images are scaled to 8 bits (``value / 257`` for 16-bit; 32-bit
  images by their maximum), float images are clipped to ``[0, 255]``.
* EXIF orientation is applied by default (what a user sees in a viewer and in the FiftyOne App).
  COCO annotations refer to stored pixels, so the COCO tools pass ``exif_transpose=False``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["ImageLoadError", "load_image", "to_rgb_uint8"]

# Images larger than this many pixels are refused by PIL's decompression-bomb guard; we raise
# the limit to what a user may reasonably have (12000 x 9000 = 108 MP) and a bit more.
_MAX_PIXELS = 250_000_000


class ImageLoadError(ValueError):
    """An image could not be read; the message names the file and the reason."""


def load_image(path: str | os.PathLike, *, exif_transpose: bool = True) -> np.ndarray:
    """Read an image file as RGB ``uint8`` ``(H, W, 3)``.

    Args:
        path: the image file.
        exif_transpose: rotate/flip according to the EXIF orientation tag.

    Raises:
        ImageLoadError: missing, empty, truncated or unreadable file.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(f"image file {str(path)!r} does not exist; check the filepath")
    if path.stat().st_size == 0:
        raise ImageLoadError(f"image file {str(path)!r} is empty (0 bytes); replace or remove it")
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max(previous or 0, _MAX_PIXELS)
    try:
        with Image.open(path) as img:
            img.load()
            if exif_transpose:
                img = ImageOps.exif_transpose(img)
            return pil_to_rgb_uint8(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageLoadError(
            f"cannot read image {str(path)!r}: {error}; the file is corrupt or not an image"
        ) from error
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def pil_to_rgb_uint8(img: Image.Image) -> np.ndarray:
    """Convert a PIL image of any mode to RGB ``uint8`` ``(H, W, 3)``."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return to_rgb_uint8(np.asarray(img))
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def to_rgb_uint8(array: np.ndarray) -> np.ndarray:
    """Convert an image array to RGB ``uint8`` ``(H, W, 3)``.

    Accepts ``(H, W)`` gray, ``(H, W, 1)``, ``(H, W, 3)`` and ``(H, W, 4)`` (alpha dropped);
    ``uint8``; ``uint16`` (scaled by 1/257); other integers (scaled by their maximum when it
    exceeds 255); ``bool`` (0/255); floats (assumed in ``[0, 1]`` when their maximum is at most
    1, else in ``[0, 255]``; clipped).
    """
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(
            f"cannot interpret an array of shape {array.shape} as an image; expected (H, W), "
            "(H, W, 3) or (H, W, 4)"
        )
    array = array[:, :, :3]
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"image of shape {array.shape} has no pixels")
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint16:
        return np.round(array.astype(np.float32) / 257.0).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        peak = int(array.max()) if array.size else 0
        scaled = array.astype(np.float64)
        if peak > 255:
            scaled = scaled * (255.0 / (65535.0 if peak <= 65535 else peak))
        return np.clip(np.round(scaled), 0, 255).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        values = np.nan_to_num(array.astype(np.float64))
        if values.size and values.max() <= 1.0:
            values = values * 255.0
        return np.clip(np.round(values), 0, 255).astype(np.uint8)
    raise ValueError(f"unsupported image dtype {array.dtype}")
