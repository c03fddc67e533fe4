"""Reliability (issue 19 items 4 and 9): one bad image never stops a run, and every skip says
why, library side (``load_image``, the folder scan) and through ``fiftyone-ntt predict``.

Bad files (``bad_images``): forged PNG/JPEG headers claiming 40000 x 40000 px, a real
30000 x 30000 PNG, truncated, zero-byte and text files, a folder and a symlink loop named like
images, a broken symlink, a pixel format PIL does not decode. GIF and JFIF are read; other
formats PIL reads (PCX, ...) are left out of folder scans with a note naming them.
"""

from __future__ import annotations

import json
import struct
import warnings

import bad_images
import numpy as np
import pytest
from PIL import Image, ImageFile
from test_cli import FAST, TINY, _write_split

from fiftyone_ntt.cli import main
from fiftyone_ntt.images import (
    MAX_PIXELS_ENV,
    ImageLoadError,
    folder_images,
    load_image,
    max_image_pixels,
)

pytestmark = [
    pytest.mark.unit,
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]

# ---------------------------------------------------------------- load_image: bad files

BAD_CASES = sorted(bad_images.BAD_IMAGES)


@pytest.mark.parametrize("name", BAD_CASES)
def test_each_bad_file_is_an_image_load_error_with_its_reason(tmp_path, name):
    maker, reason = bad_images.BAD_IMAGES[name]
    path = tmp_path / name
    maker(path)
    limit_before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageLoadError) as caught:
        load_image(path)
    message = str(caught.value)
    assert reason in message and name in message, message
    assert "does not exist" not in message or name == "dangling.png", message
    assert Image.MAX_IMAGE_PIXELS == limit_before  # PIL's global guard is left as it was


def test_the_decompression_message_names_the_size_the_limit_and_the_knob(tmp_path):
    bad_images.forged_png(tmp_path / "bomb.png")
    with pytest.raises(ImageLoadError) as caught:
        load_image(tmp_path / "bomb.png")
    message = str(caught.value)
    assert "40000 x 40000" in message and "decompression" in message
    assert f"{MAX_PIXELS_ENV}=1600000000" in message  # the value that would let it through


READ_CASES = sorted(bad_images.READ_IMAGES)


@pytest.mark.parametrize("name", READ_CASES)
def test_gif_and_jfif_are_read(tmp_path, name):
    bad_images.READ_IMAGES[name](tmp_path / name)
    image = load_image(tmp_path / name)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert tuple(image[20, 20]) != tuple(image[2, 2])  # content, not a blank


# --------------------------------------------------- load_image: whatever PIL raises

UNEXPECTED = [
    (MemoryError(), "out of memory"),
    (Image.DecompressionBombError("too big"), NotImplemented),
    (Image.DecompressionBombWarning("too big"), NotImplemented),
    (struct.error("unpack requires a buffer of 4 bytes"), "unpack requires"),
    (IndexError("list index out of range"), "list index out of range"),
    (TypeError("odd tile"), "odd tile"),
    (EOFError("no more frames"), "no more frames"),
    (ValueError("conversion from HSV to RGB not supported"), "HSV"),
    (KeyError("PLTE"), "PLTE"),
]


@pytest.mark.parametrize("error, reason", UNEXPECTED, ids=[type(e).__name__ for e, _ in UNEXPECTED])
def test_any_error_while_decoding_is_an_image_load_error(tmp_path, monkeypatch, error, reason):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")

    def fail(self, *args, **kwargs):
        raise error

    monkeypatch.setattr(ImageFile.ImageFile, "load", fail)
    with pytest.raises(ImageLoadError) as caught:
        load_image(tmp_path / "a.png")
    message = str(caught.value)
    if reason is NotImplemented:  # PIL's own bomb guard: the message says how to raise ours
        reason = MAX_PIXELS_ENV
    assert "a.png" in message and reason in message, message


# ------------------------------------------------------------ the limit and its knob


def test_over_the_limit_but_under_pils_error_is_refused_without_a_warning(tmp_path):
    """16000 x 16000 = 256 MP: over the default 250 MP, under 2 x (where PIL errors): PIL
    would only warn and then decode a quarter-gigapixel image."""
    bad_images.forged_png(tmp_path / "big.png", 16000, 16000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a DecompressionBombWarning would raise here
        with pytest.raises(ImageLoadError, match=MAX_PIXELS_ENV):
            load_image(tmp_path / "big.png")


def test_the_knob_lowers_the_limit(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "a.png")
    monkeypatch.setenv(MAX_PIXELS_ENV, "1000")
    assert max_image_pixels() == 1000
    with pytest.raises(ImageLoadError, match=rf"64 x 64.*1000.*{MAX_PIXELS_ENV}=4096"):
        load_image(tmp_path / "a.png")


def test_the_knob_raises_the_limit(tmp_path, monkeypatch):
    """With the limit raised, the forged header passes the size check and fails as what it
    is: a file whose pixel data is missing."""
    bad_images.forged_png(tmp_path / "bomb.png")
    monkeypatch.setenv(MAX_PIXELS_ENV, "2000000000")
    with pytest.raises(ImageLoadError) as caught:
        load_image(tmp_path / "bomb.png")
    assert MAX_PIXELS_ENV not in str(caught.value), caught.value


def test_the_knob_none_lifts_the_limit(monkeypatch):
    monkeypatch.setenv(MAX_PIXELS_ENV, "none")
    assert max_image_pixels() is None


KNOB_CASES = ["abc", "-5", "0", "1.5e9x", ""]


@pytest.mark.parametrize("value", KNOB_CASES)
def test_a_bad_knob_value_is_refused_naming_it(tmp_path, monkeypatch, value):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    monkeypatch.setenv(MAX_PIXELS_ENV, value)
    if value == "":  # unset in effect: the default
        assert max_image_pixels() == 250_000_000
        return
    with pytest.raises(ValueError, match=rf"{MAX_PIXELS_ENV}={value!r}") as caught:
        load_image(tmp_path / "a.png")
    # a setting, not an image problem: a run stops on it rather than skipping every image
    assert not isinstance(caught.value, ImageLoadError)


# ------------------------------------------------------------------------ folder scans


def test_folder_scan_takes_gif_and_jfif_and_names_what_it_leaves_out(tmp_path):
    bad_images.write_all(tmp_path)
    (tmp_path / "notes.txt").write_text("not an image format at all")
    images, left_out = folder_images(tmp_path)
    names = {p.name for p in images}
    assert set(bad_images.READ_IMAGES) <= names
    # things named like images are taken, so that reading them reports what they are
    assert set(bad_images.BAD_IMAGES) <= names
    assert [p.name for p, _ in left_out] == ["scan.pcx"]
    assert "PCX" in left_out[0][1] and "by name" in left_out[0][1]


# ------------------------------------------------------------- fiftyone-ntt predict


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    root = tmp_path_factory.mktemp("badimages")
    train = _write_split(root / "train", [(150, 70), (160, 80)], 0, 0)
    (root / "train.json").write_text(json.dumps(train))
    out = root / "bank.safetensors"
    code = main(
        [
            "--quiet",
            "build-bank",
            str(root / "train.json"),
            "--images",
            str(root / "train"),
            "--out",
            str(out),
            *TINY,
        ]
    )
    assert code == 0
    return out


def _run(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_predict_over_a_folder_skips_and_reports_every_bad_file(bank, tmp_path, capsys):
    folder = tmp_path / "images"
    _write_split(folder, [(100, 70), (64, 64)], 3, 0)  # img_01.png, img_02.png: good
    bad_images.write_all(folder)
    out = tmp_path / "results.json"
    code, _, err = _run(
        ["--quiet", "predict", str(bank), "--images", str(folder), "--out", str(out), *FAST],
        capsys,
    )
    assert code == 1, err  # some images could not be read
    good = ["anim.gif", "img_01.png", "img_02.png", "photo.jfif"]
    mapping = json.loads((tmp_path / "results.images.json").read_text())
    assert sorted(r["file_name"].rsplit("/", 1)[-1] for r in mapping["images"]) == good
    ids = {r["id"] for r in mapping["images"]}
    results = json.loads(out.read_text())
    assert results and {d["image_id"] for d in results} <= ids
    assert f"{len(bad_images.BAD_IMAGES)} of {len(bad_images.BAD_IMAGES) + 4} images" in err
    lines = err.splitlines()
    for name, (_, reason) in bad_images.BAD_IMAGES.items():
        line = next((x for x in lines if f"({folder / name})" in x), None)
        assert line is not None and reason in line, (name, err)
    assert "scan.pcx" in err and "left out" in err  # said, not silently dropped
    assert "Traceback" not in err


def test_predict_on_paths_names_a_loop_and_a_folder_for_what_they_are(bank, tmp_path, capsys):
    _write_split(tmp_path, [(64, 64)], 4, 0)
    bad_images.symlink_loop(tmp_path / "loop.png")
    out = tmp_path / "r.json"
    code, _, err = _run(
        [
            "--quiet",
            "predict",
            str(bank),
            str(tmp_path / "img_01.png"),
            str(tmp_path / "loop.png"),
            "--out",
            str(out),
            *FAST,
        ],
        capsys,
    )
    assert code == 1
    assert "symbolic link loop" in err and "does not exist" not in err, err
    assert json.loads((tmp_path / "r.images.json").read_text())["images"][0]["id"] == 1


def test_predict_refuses_a_bad_knob_before_loading_models(bank, tmp_path, capsys, monkeypatch):
    _write_split(tmp_path, [(64, 64)], 4, 0)
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    code, _, err = _run(
        ["predict", str(bank), str(tmp_path / "img_01.png"), "--out", str(tmp_path / "r.json")],
        capsys,
    )
    assert code == 2 and f"{MAX_PIXELS_ENV}='lots'" in err, err
    assert not (tmp_path / "r.json").exists()


def _count_cases() -> dict[str, int]:
    """How many bad-input cases this file covers."""
    return {
        "bad image files": len(BAD_CASES),
        "formats read (gif, jfif)": len(READ_CASES),
        "errors while decoding": len(UNEXPECTED),
        "pixel limit and its knob": 3 + len(KNOB_CASES),
        "folder scan": 1,
        "predict (folder, paths, knob)": 3,
    }


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(_count_cases()))
