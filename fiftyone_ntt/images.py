"""Reading images into the library's convention: RGB ``uint8`` arrays ``(H, W, 3)``.

What happens to unusual inputs (documented for users, tested in ``tests/unit/test_images.py``):

* 8-bit modes (RGB, L, 1, P, CMYK, YCbCr, LAB, RGBA, LA, PA) go through PIL's
  ``convert("RGB")``, exactly as the reference loader does (docs/method.md §1.3). Alpha is dropped,
  not composited, which is what the reference does too.
* 16-bit and 32-bit integer images are scaled to 8 bits (``value / 257`` for 16-bit; 32-bit
  images by their maximum), float images are clipped to ``[0, 255]``.
* EXIF orientation is applied by default (what a user sees in a viewer and in the FiftyOne App).
  COCO annotations refer to stored pixels, so the COCO tools pass ``exif_transpose=False``.
* Images larger than :data:`DEFAULT_MAX_PIXELS` (250 megapixels) are refused before they are
  decoded, as PIL's decompression-bomb guard does (a 60-byte file can claim 40000 x 40000 px).
  The environment variable ``NTT_MAX_IMAGE_PIXELS`` sets another limit (``none``: no limit);
  decoding needs about ``3 x width x height`` bytes of memory.
* Whatever goes wrong while reading one file (not a file, an unreadable or truncated one, a
  pixel format PIL cannot decode, a huge size, memory running out) is an
  :class:`ImageLoadError` naming the file and the reason, so that a long run skips that image
  and reports it.
"""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS_ENV",
    "ImageLoadError",
    "folder_images",
    "load_image",
    "max_image_pixels",
    "to_rgb_uint8",
]

#: Images larger than this many pixels are refused (what a user may reasonably have,
#: 12000 x 9000 = 108 MP, and a bit more); PIL's own default guard is 89 MP.
DEFAULT_MAX_PIXELS = 250_000_000
#: Environment variable that sets the limit: a number of pixels, or ``none``.
MAX_PIXELS_ENV = "NTT_MAX_IMAGE_PIXELS"
#: Extensions read from folders (lower case). PIL reads more formats: a folder scan names the
#: files of those it leaves out; a file given by name is read whatever its extension.
IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".jpe",
    ".jfif",
    ".jif",
    ".png",
    ".bmp",
    ".dib",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".pbm",
    ".pgm",
    ".ppm",
    ".pnm",
)

# PIL's guard is a module global; it is lifted (under this lock) only while a file's header
# is read, and the size is then checked against our limit.
_OPEN_LOCK = threading.Lock()


class ImageLoadError(ValueError):
    """An image could not be read; the message names the file and the reason."""


def max_image_pixels() -> int | None:
    """The largest image (in pixels) :func:`load_image` decodes: ``NTT_MAX_IMAGE_PIXELS``, or
    :data:`DEFAULT_MAX_PIXELS` when unset; None when set to ``none`` (no limit).

    Raises:
        ValueError: the variable is not a positive whole number or ``none``.
    """
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    if text.lower() == "none":
        return None
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(
            f"{MAX_PIXELS_ENV}={os.environ[MAX_PIXELS_ENV]!r} is not a number of pixels; set "
            f"it to a positive whole number (default {DEFAULT_MAX_PIXELS}) or 'none' for no "
            "limit, or unset it"
        )
    return value


def _not_a_file(path: Path) -> str | None:
    """Why ``path`` is not a readable file, or None when it is one."""
    try:
        info = os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "is a symbolic link loop; point the link at an image file"
        if path.is_symlink():
            return f"is a broken symbolic link (to {os.readlink(path)!r}); fix or remove it"
        if error.errno in (errno.ENOENT, errno.ENOTDIR):
            return "does not exist; check the filepath"
        return f"cannot be read ({error.strerror or error}); check its permissions"
    if os.path.isdir(path):
        return "is a folder, not an image file; give the image files in it"
    if not os.path.isfile(path):
        return "is not a regular file (a device, pipe or socket); give an image file"
    if info.st_size == 0:
        return "is empty (0 bytes); replace or remove it"
    return None


def _too_large(path: Path, width: int, height: int, limit: int | None) -> str | None:
    """The message for an image over ``limit`` pixels, or None."""
    if limit is None or width * height <= limit:
        return None
    return _bomb_message(path, width, height, f"{limit} pixels")


def _bomb_message(path: Path, width: int, height: int, limit: str) -> str:
    pixels = width * height
    return (
        f"image {str(path)!r} is {width} x {height} = {pixels} pixels, over the "
        f"decompression limit of {limit} (PIL's decompression-bomb guard; a forged or corrupt "
        f"header can claim such a size); skipped. If the image is real, raise the limit with "
        f"the environment variable {MAX_PIXELS_ENV}={pixels} (or 'none'), which needs about "
        f"{3 * pixels / 2**20:,.0f} MiB of memory to decode it, or use a smaller copy of the image"
    )


def _open(path: Path) -> Image.Image:
    with _OPEN_LOCK:
        previous = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # our own limit is checked on the header's size
        try:
            return Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = previous


def load_image(path: str | os.PathLike, *, exif_transpose: bool = True) -> np.ndarray:
    """Read an image file as RGB ``uint8`` ``(H, W, 3)``.

    Args:
        path: the image file.
        exif_transpose: rotate/flip according to the EXIF orientation tag.

    Raises:
        ImageLoadError: whatever keeps this file from being read (see the module doc).
        ValueError: ``NTT_MAX_IMAGE_PIXELS`` is not a valid setting.
    """
    path = Path(path)
    limit = max_image_pixels()
    why = _not_a_file(path)
    if why is not None:
        raise ImageLoadError(f"image file {str(path)!r} {why}")
    size = None
    try:
        with _open(path) as img:
            size = img.size
            too_large = _too_large(path, *size, limit)
            if too_large:
                raise ImageLoadError(too_large)
            img.load()
            if exif_transpose:
                img = ImageOps.exif_transpose(img)
            return pil_to_rgb_uint8(img)
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        width, height = size or (0, 0)
        raise ImageLoadError(
            _bomb_message(path, width, height, f"PIL.Image.MAX_IMAGE_PIXELS ({error})")
        ) from error
    except MemoryError as error:
        where = f" ({size[0]} x {size[1]} px)" if size else ""
        raise ImageLoadError(
            f"out of memory reading image {str(path)!r}{where}; skipped: free memory, or use a "
            f"smaller copy of the image (or a lower {MAX_PIXELS_ENV} to skip such images early)"
        ) from error
    except Exception as error:  # anything PIL raises on one file must not stop a run
        raise ImageLoadError(
            f"cannot read image {str(path)!r}: {error or type(error).__name__}; the file is "
            "corrupt or not an image (or in a pixel format PIL cannot decode: convert it to "
            "8-bit RGB PNG or JPEG)"
        ) from error


def folder_images(folder: str | os.PathLike) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The images of ``folder`` (not its sub-folders), sorted, and the files left out.

    Returns:
        ``(images, left_out)``: every entry whose extension is in :data:`IMAGE_EXTENSIONS`
        (also folders and broken links named like images: reading them says what they are),
        and ``(path, why)`` for each file of another format PIL reads.
    """
    Image.init()
    readable = {ext: fmt for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
    images, left_out = [], []
    for path in sorted(Path(folder).iterdir()):
        suffix = path.suffix.lower()
        if suffix in IMAGE_EXTENSIONS:
            images.append(path)
        elif suffix in readable and path.is_file():
            left_out.append(
                (
                    path,
                    f"{readable[suffix]} files are not read from folders (extensions read: "
                    f"{' '.join(IMAGE_EXTENSIONS)}); give the file by name to read it anyway, "
                    "or convert it to PNG or JPEG",
                )
            )
    return images, left_out


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
