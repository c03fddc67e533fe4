"""Image files that a long run must skip and report (issue 19 items 4 and 9), written into a
folder by the tests: forged headers that claim a huge size, a real 30000 x 30000 file, broken
files, things that are not files, and formats that are read (GIF, JFIF).

``BAD_IMAGES``: name -> (maker, what the skip reason must contain). ``READ_IMAGES``: files that
are images in formats PIL reads and the library accepts. ``NOTED_IMAGES``: files of a format
PIL reads that a folder scan does not take, and says so.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

HUGE = 40000  # forged headers claim 40000 x 40000 px (1.6 gigapixels)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def _png(width: int, height: int, bit_depth: int, color_type: int, idat: bytes) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", idat)
        + _chunk(b"IEND", b"")
    )


def forged_png(path: Path, width: int = HUGE, height: int = HUGE) -> None:
    """A 60-byte PNG whose IHDR claims ``width`` x ``height`` RGB pixels."""
    path.write_bytes(_png(width, height, 8, 2, zlib.compress(b"\x00" * 64)))


def forged_jpeg(path: Path, width: int = HUGE, height: int = HUGE) -> None:
    """A small real JPEG whose SOF0 marker is patched to claim ``width`` x ``height``."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))


def real_big_png(path: Path, side: int = 30000) -> None:
    """A complete, valid ``side`` x ``side`` 1-bit PNG (all black), written row by row so that
    neither the test nor the file is large (about 110 KB on disk)."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(row * 1000) for _ in range(side // 1000)]
    parts.append(compressor.compress(row * (side % 1000)))
    parts.append(compressor.flush())
    path.write_bytes(_png(side, side, 1, 0, b"".join(parts)))


def truncated_png(path: Path) -> None:
    rng = np.random.default_rng(1)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


def zero_bytes(path: Path) -> None:
    path.write_bytes(b"")


def not_an_image(path: Path) -> None:
    path.write_text("this is a text file with an image's name\n")


def a_folder(path: Path) -> None:
    path.mkdir()
    (path / "inside.txt").write_text("a folder named like an image")


def symlink_loop(path: Path) -> None:
    os.symlink(path.name, path)  # a link to itself


def broken_symlink(path: Path) -> None:
    os.symlink(path.parent / "gone-for-good.png", path)


def float_rgb_tiff(path: Path) -> None:
    """A baseline TIFF of 3 x 32-bit float samples per pixel: a pixel format PIL does not
    decode (SampleFormat 3, SamplesPerPixel 3)."""
    width = height = 4
    spp, bits = 3, 32
    data = bytes(width * height * spp * bits // 8)
    tags = 10
    extra = 8 + 2 + tags * 12 + 4
    bps_at, fmt_at = extra, extra + 2 * spp
    data_at = fmt_at + 2 * spp
    entries = [
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, spp, bps_at),
        (259, 3, 1, 1),
        (262, 3, 1, 2),
        (273, 4, 1, data_at),
        (277, 3, 1, spp),
        (278, 4, 1, height),
        (279, 4, 1, len(data)),
        (339, 3, spp, fmt_at),
    ]
    out = io.BytesIO()
    out.write(b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries)))
    for tag, kind, count, value in entries:
        if kind == 3 and count == 1:
            out.write(struct.pack("<HHIHH", tag, kind, count, value, 0))
        else:
            out.write(struct.pack("<HHII", tag, kind, count, value))
    out.write(struct.pack("<I", 0))
    out.write(struct.pack("<" + "H" * spp, *[bits] * spp))
    out.write(struct.pack("<" + "H" * spp, *[3] * spp))
    out.write(data)
    path.write_bytes(out.getvalue())


def _painted(size=(64, 64)) -> Image.Image:
    rng = np.random.default_rng(7)
    pixels = np.full((*size, 3), 90, dtype=np.uint8)
    pixels[8:40, 10:50] = (220, 30, 30)
    pixels[44:60, 20:30] = rng.integers(0, 256, (16, 10, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def gif(path: Path) -> None:
    _painted().convert("P").save(path, "GIF")


def jfif(path: Path) -> None:
    _painted().save(path, "JPEG")


def pcx(path: Path) -> None:
    _painted().save(path, "PCX")


#: name -> (maker, a part of the reason each skip must give).
BAD_IMAGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "bomb_header.png": (forged_png, "NTT_MAX_IMAGE_PIXELS"),
    "bomb_header.jpg": (forged_jpeg, "NTT_MAX_IMAGE_PIXELS"),
    "real_30000.png": (real_big_png, "NTT_MAX_IMAGE_PIXELS"),
    "truncated.png": (truncated_png, "truncated"),
    "zero.jpg": (zero_bytes, "empty (0 bytes)"),
    "text.png": (not_an_image, "cannot identify"),
    "folder.jpg": (a_folder, "is a folder"),
    "loop.jpg": (symlink_loop, "symbolic link loop"),
    "dangling.png": (broken_symlink, "broken symbolic link"),
    "float_rgb.tif": (float_rgb_tiff, "cannot identify"),
}

#: files in formats PIL reads and the library takes, also from folders
READ_IMAGES: dict[str, Callable[[Path], None]] = {"anim.gif": gif, "photo.jfif": jfif}

#: files of a format PIL reads that a folder scan leaves out, saying so
NOTED_IMAGES: dict[str, Callable[[Path], None]] = {"scan.pcx": pcx}


def write_all(folder: Path) -> None:
    """Every bad, read and noted file of this module into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (maker, _) in BAD_IMAGES.items():
        maker(folder / name)
    for name, maker in {**READ_IMAGES, **NOTED_IMAGES}.items():
        maker(folder / name)
