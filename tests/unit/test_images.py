"""Image loading and conversion of unusual inputs (documented in fiftyone_ntt/images.py)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fiftyone_ntt.images import ImageLoadError, load_image, to_rgb_uint8
from fiftyone_ntt.preprocess import squash_image

pytestmark = pytest.mark.unit


@pytest.fixture
def rgb():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)


def test_rgb_png_round_trip(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "a.png")
    np.testing.assert_array_equal(load_image(tmp_path / "a.png"), rgb)


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "1", "CMYK"])
def test_8bit_modes_follow_pil_convert_rgb(tmp_path, rgb, mode):
    img = Image.fromarray(rgb).convert(mode)
    path = tmp_path / ("a.jpg" if mode == "CMYK" else "a.png")
    img.save(path)
    loaded = load_image(path)
    assert loaded.shape == (12, 20, 3) and loaded.dtype == np.uint8
    with Image.open(path) as reopened:
        np.testing.assert_array_equal(loaded, np.asarray(reopened.convert("RGB")))


def test_16bit_is_scaled(tmp_path):
    values = np.array([[0, 257, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "a.png")
    loaded = load_image(tmp_path / "a.png")
    assert loaded[0, :, 0].tolist() == [0, 1, 255]
    assert (loaded[..., 0] == loaded[..., 2]).all()


def test_exif_orientation_applied_by_default(tmp_path):
    image = np.zeros((10, 30, 3), dtype=np.uint8)
    image[:, :5] = 255  # white band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(image).save(tmp_path / "a.jpg", exif=exif, quality=95)
    shown = load_image(tmp_path / "a.jpg")
    stored = load_image(tmp_path / "a.jpg", exif_transpose=False)
    assert stored.shape == (10, 30, 3)
    assert shown.shape == (30, 10, 3)
    assert shown[:5].mean() > 200  # the band is now at the top


@pytest.mark.parametrize(
    ("content", "match"),
    [(b"", "empty"), (b"not an image at all", "corrupt or not an image")],
)
def test_bad_files_raise_clear_errors(tmp_path, content, match):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageLoadError, match=match) as info:
        load_image(path)
    assert "bad.jpg" in str(info.value)


def test_missing_and_truncated_files(tmp_path, rgb):
    with pytest.raises(ImageLoadError, match="does not exist"):
        load_image(tmp_path / "nope.png")
    Image.fromarray(np.tile(rgb, (20, 20, 1))).save(tmp_path / "a.jpg")
    data = (tmp_path / "a.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageLoadError, match=r"cut\.jpg"):
        load_image(tmp_path / "cut.jpg")


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.full((2, 2), 7, dtype=np.uint8), 7),
        (np.full((2, 2, 4), 9, dtype=np.uint8), 9),
        (np.full((2, 2), 1.0, dtype=np.float32), 255),
        (np.full((2, 2), True), 255),
        (np.full((2, 2, 1), 514, dtype=np.uint16), 2),
    ],
)
def test_to_rgb_uint8(array, expected):
    out = to_rgb_uint8(array)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    assert (out == expected).all()


def test_to_rgb_uint8_rejects_odd_shapes():
    with pytest.raises(ValueError, match=r"shape \(2, 2, 2\)"):
        to_rgb_uint8(np.zeros((2, 2, 2)))


@pytest.mark.parametrize("size", [(1, 1), (4, 3000), (3000, 4)])
def test_tiny_and_thin_images_squash(size):
    image = np.full((*size, 3), 100, dtype=np.uint8)
    out = squash_image(image, 1024)
    assert out.shape == (3, 1024, 1024)
    assert abs(float(out.mean()) - 100 / 255) < 1e-3


def test_squash_uses_pil_bicubic(rgb):
    expected = np.asarray(Image.fromarray(rgb).resize((64, 64), Image.Resampling.BICUBIC))
    out = squash_image(rgb, 64)
    np.testing.assert_allclose(out.permute(1, 2, 0).numpy() * 255, expected, atol=1e-4)
