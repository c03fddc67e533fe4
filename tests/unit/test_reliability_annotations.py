"""Reliability (issue 19.5-19.7): COCO files and banks that used to give silently wrong
results. Duplicate ids are refused (naming the ids and the file); annotations that cannot
be references are refused with their ids and the reason, or skipped and reported when the
user asks; a bank whose features do not fit the encoder is refused when it is matched with
the encoder, not in a matmul later."""

from __future__ import annotations

import copy
import json
import math
import warnings

import numpy as np
import pytest
from PIL import Image

from fiftyone_ntt.coco import CocoFormatError, evaluate, iter_references, load_coco
from fiftyone_ntt.coco.references import InvalidAnnotationsWarning

pytestmark = [
    pytest.mark.unit,
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]

SQUARE = [[4, 4, 20, 4, 20, 20, 4, 20]]


def _coco():
    return {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 40, "height": 30},
            {"id": 2, "file_name": "b.png", "width": 40, "height": 30},
        ],
        "annotations": [
            {
                "id": 10,
                "image_id": 1,
                "category_id": 1,
                "bbox": [4, 4, 16, 16],
                "segmentation": SQUARE,
            },
            {"id": 11, "image_id": 1, "category_id": 2, "bbox": [22, 5, 10, 12]},
            {
                "id": 12,
                "image_id": 2,
                "category_id": 1,
                "bbox": [4, 4, 16, 16],
                "segmentation": SQUARE,
            },
        ],
        "categories": [{"id": 1, "name": "square"}, {"id": 2, "name": "bar"}],
    }


@pytest.fixture
def folder(tmp_path):
    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "a.png")
    Image.new("RGB", (40, 30), (30, 200, 30)).save(tmp_path / "b.png")
    return tmp_path


# ------------------------------------------------------------------ 19.5 duplicate ids
# (name, mutation of the file, words the error must contain)
def _dup_image(c):
    c["images"].append({"id": 1, "file_name": "b.png", "width": 40, "height": 30})


def _dup_two_images(c):
    c["images"] += [dict(r) for r in c["images"]]


def _dup_string_image(c):
    for r, i in zip(c["images"], ("x", "x")):
        r["id"] = i
    for a in c["annotations"]:
        a["image_id"] = "x"


def _dup_annotation(c):
    c["annotations"][2]["id"] = 10


def _dup_category(c):
    c["categories"].append({"id": 1, "name": "disc"})


def _dup_category_same_name(c):
    c["categories"].append({"id": 2, "name": "bar"})


DUPLICATE_ID_CASES = [
    ("image id", _dup_image, ["image id", "[1]", "'images'"]),
    ("two image ids", _dup_two_images, ["image id", "[1, 2]"]),
    ("string image id", _dup_string_image, ["image id", "['x']"]),
    ("annotation id", _dup_annotation, ["annotation id", "[10]", "'annotations'"]),
    ("category id", _dup_category, ["category id", "[1]", "'categories'"]),
    ("category id, same name", _dup_category_same_name, ["category id", "[2]"]),
]


@pytest.mark.parametrize(
    ("name", "mutate", "words"), DUPLICATE_ID_CASES, ids=lambda v: v if isinstance(v, str) else ""
)
def test_duplicate_ids_are_refused_naming_ids_and_file(tmp_path, name, mutate, words):
    coco = _coco()
    mutate(coco)
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(coco))
    with pytest.raises(CocoFormatError) as error:
        load_coco(path)
    message = str(error.value)
    for word in [*words, "gt.json"]:
        assert word in message, (word, message)
    # evaluate must not blame the results for a broken ground truth
    with pytest.raises(CocoFormatError) as error:
        evaluate(coco, [])
    assert words[0] in str(error.value) and "result" not in str(error.value)


def test_duplicate_image_ids_of_a_targets_file_are_refused(tmp_path):
    path = tmp_path / "targets.json"
    path.write_text(json.dumps({"images": [{"id": 3, "file_name": "a.png"}] * 2}))
    with pytest.raises(CocoFormatError, match=r"targets\.json.*image id.*\[3\]"):
        load_coco(path, require=("images",))


# ------------------------------------------------- 19.6 annotations that cannot be used
def _set(key, value):
    def mutate(ann):
        ann[key] = value

    return mutate


# (name, mutation of annotation 11, words of the reason)
INVALID_ANNOTATION_CASES = [
    ("unknown category", _set("category_id", 99), ["category id 99", "categories"]),
    ("two-point polygon", _set("segmentation", [[22, 5, 32, 17]]), ["fewer than 3 points"]),
    ("one-point polygon", _set("segmentation", [[22, 5]]), ["fewer than 3 points"]),
    ("odd coordinates", _set("segmentation", [[22, 5, 32, 5, 32, 17, 22]]), ["odd"]),
    ("empty polygon", _set("segmentation", [[]]), ["empty"]),
    ("second polygon empty", _set("segmentation", [SQUARE[0], []]), ["polygon 1", "empty"]),
    ("polygon of text", _set("segmentation", [["a", "b", "c", "d", "e", "f"]]), ["number"]),
    ("collinear polygon", _set("segmentation", [[22, 5, 26, 5, 30, 5]]), ["no pixel"]),
    ("segmentation is text", _set("segmentation", "mask"), ["polygons", "RLE"]),
    ("RLE without counts", _set("segmentation", {"size": [30, 40]}), ["RLE", "counts"]),
    ("RLE of another size", _set("segmentation", {"size": [5, 5], "counts": [25]}), ["size"]),
    ("NaN box", _set("bbox", [22, 5, math.nan, 12]), ["box", "finite"]),
    ("infinite box", _set("bbox", [math.inf, 5, 10, 12]), ["box", "finite"]),
    ("negative width", _set("bbox", [22, 5, -10, 12]), ["box", "width"]),
    ("zero height", _set("bbox", [22, 5, 10, 0]), ["box", "height"]),
]


def _with_bad_11(mutate):
    coco = _coco()
    mutate(coco["annotations"][1])
    return coco


@pytest.mark.parametrize(
    ("name", "mutate", "words"),
    INVALID_ANNOTATION_CASES,
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_unusable_annotation_is_refused_with_id_and_reason(folder, name, mutate, words):
    coco = _with_bad_11(mutate)
    with pytest.raises(CocoFormatError) as error:
        list(iter_references(coco, folder))
    message = str(error.value)
    for word in ["annotation 11", "skip_invalid", *words]:
        assert word in message, (word, message)


@pytest.mark.parametrize(
    ("name", "mutate", "words"),
    INVALID_ANNOTATION_CASES,
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_unusable_annotation_is_skipped_and_reported_on_request(folder, name, mutate, words):
    coco = _with_bad_11(mutate)
    with pytest.warns(InvalidAnnotationsWarning) as caught:
        refs = list(iter_references(coco, folder, skip_invalid=True))
    assert [r.ref_id for r in refs] == ["10", "12"]
    message = str(caught[0].message)
    assert "skipped 1 annotation" in message and "11" in message and words[0] in message


def test_every_unusable_annotation_is_listed_at_once(folder):
    coco = _coco()
    coco["annotations"][1]["bbox"] = [22, 5, -1, 12]
    coco["annotations"][2]["segmentation"] = [[1, 2, 3]]
    with pytest.raises(CocoFormatError, match=r"2 annotation.*annotation 11.*annotation 12"):
        list(iter_references(coco, folder))


# valid annotations that must keep working (box-only with an empty polygon list, no
# segmentation, a crowd annotation with a broken polygon that is not used)
VALID_ANNOTATION_CASES = [
    ("empty segmentation list", _set("segmentation", []), 3),
    ("segmentation None", _set("segmentation", None), 3),
    ("crowd, not used", lambda a: a.update(iscrowd=1, segmentation=[[1, 2]]), 2),
]


@pytest.mark.parametrize(
    ("name", "mutate", "count"),
    VALID_ANNOTATION_CASES,
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_usable_annotations_are_accepted(folder, name, mutate, count):
    coco = _with_bad_11(mutate)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InvalidAnnotationsWarning)
        refs = list(iter_references(coco, folder))
    assert len(refs) == count


def test_cli_build_bank_refuses_or_skips_invalid_annotations(folder, tmp_path, capsys):
    from test_cli import TINY

    from fiftyone_ntt.cli import main
    from fiftyone_ntt.memory_bank import MemoryBank

    coco = _coco()
    coco["annotations"].append(copy.deepcopy(coco["annotations"][1]))
    coco["annotations"][-1].update(id=13, bbox=[22, 5, math.nan, 12])
    path = tmp_path / "refs.json"
    path.write_text(json.dumps(coco))
    out = tmp_path / "bank.safetensors"
    args = ["build-bank", str(path), "--images", str(folder), "--out", str(out), *TINY]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "annotation 13" in err and "--skip-invalid-annotations" in err
    assert main([*args, "--skip-invalid-annotations"]) == 0
    err = capsys.readouterr().err
    assert "skipped 1 annotation" in err and "13" in err
    assert MemoryBank.load(out).reference_ids == ("10", "11", "12")


# ------------------------------------------------ 19.7 bank features vs the encoder
def _bank(dim):
    """A bank of ``dim``-wide features whose encoder record is the fake encoder's."""
    from fiftyone_ntt.memory_bank import MemoryBank
    from fiftyone_ntt.testing import ColorEncoder

    encoder = dict(ColorEncoder().identity)
    return MemoryBank(
        features=np.ones((2, dim), dtype=np.float32),
        class_ids=np.array([0, 1]),
        class_names=("a", "b"),
        reference_ids=("r1", "r2"),
        generated_masks=np.zeros(2, dtype=bool),
        encoder=encoder,
        settings={"reference_context_ratio": 0.2, "reference_size": 518},
    )


def _real_dim():
    from fiftyone_ntt.testing import ColorEncoder

    return ColorEncoder().feature_dim


# (name, width of the bank's features)
BANK_DIM_CASES = [
    ("wider features", lambda: _real_dim() + 2),
    ("narrower features", lambda: _real_dim() - 1),
    ("1024-wide features", lambda: 1024),
]


@pytest.mark.parametrize(
    ("name", "dim"), BANK_DIM_CASES, ids=lambda v: v if isinstance(v, str) else ""
)
def test_bank_of_another_width_is_refused_by_the_segmenter(name, dim):
    from fiftyone_ntt.memory_bank import EncoderMismatchError
    from fiftyone_ntt.segmenter import Segmenter
    from fiftyone_ntt.testing import ColorEncoder, RegionProposer

    bank = _bank(dim())
    with pytest.raises(EncoderMismatchError) as error:
        Segmenter(ColorEncoder(), RegionProposer(), bank)
    message = str(error.value)
    assert f"{dim()}" in message and f"{_real_dim()}" in message and "fake-color" in message
    assert "rebuild" in message


@pytest.mark.parametrize(
    ("name", "dim"), BANK_DIM_CASES, ids=lambda v: v if isinstance(v, str) else ""
)
def test_bank_file_whose_features_contradict_its_encoder_is_refused_at_load(tmp_path, name, dim):
    from fiftyone_ntt.memory_bank import BankFormatError, MemoryBank

    path = _bank(dim()).save(tmp_path / "bank.safetensors")
    with pytest.raises(BankFormatError) as error:
        MemoryBank.load(path)
    message = str(error.value)
    assert "bank.safetensors" in message and f"{dim()}" in message and f"{_real_dim()}" in message


def _count_cases():
    return {
        "duplicate_ids": len(DUPLICATE_ID_CASES) + 1,
        "invalid_annotations": len(INVALID_ANNOTATION_CASES) + 1,
        "valid_annotations": len(VALID_ANNOTATION_CASES),
        "bank_dims": len(BANK_DIM_CASES),
    }
