"""Command-line input that used to be silent (issue 9 §2): each case fails loudly now.

- ``build-bank`` with the default class selection refuses a listed class without a usable
  reference (``--allow-missing-classes`` drops it with a warning that names it);
- ``predict`` on an empty target list refuses before loading any model (``--allow-empty``
  writes ``[]``, still loading nothing);
- a bank used with another encoder is refused from the encoder's config/checkpoint, before
  its weights load;
- ``--quiet`` hides ``sample-references``' per-class summary.
"""

from __future__ import annotations

import json

import pytest
from test_cli import CATEGORIES, FAST, TINY, _write_split

from fiftyone_ntt.cli import main

pytestmark = [
    pytest.mark.unit,
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("silent")
    train = _write_split(root / "train", [(150, 70), (160, 80)], 0, 0)
    # A listed category without any annotation: the default selection used to drop it.
    train["categories"] = [*CATEGORIES, {"id": 9, "name": "ghost"}]
    (root / "train.json").write_text(json.dumps(train))
    bank = root / "bank.safetensors"
    code = main(
        [
            "--quiet",
            "build-bank",
            str(root / "train.json"),
            "--images",
            str(root / "train"),
            "--classes",
            "square,disc",
            "--out",
            str(bank),
            *TINY,
        ]
    )
    assert code == 0
    return root


def _run(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _build(data, out, *extra):
    return [
        "build-bank",
        str(data / "train.json"),
        "--images",
        str(data / "train"),
        "--out",
        str(out),
        *TINY,
        *extra,
    ]


def test_build_bank_refuses_a_listed_class_without_references(data, capsys, tmp_path):
    out = tmp_path / "b.safetensors"
    code, _, err = _run(_build(data, out), capsys)
    assert code == 2, err
    assert "ghost (9)" in err and "--allow-missing-classes" in err
    assert not out.exists()


def test_build_bank_allow_missing_classes_warns_and_names_them(data, capsys, tmp_path):
    out = tmp_path / "b.safetensors"
    code, _, err = _run(["--quiet", *_build(data, out, "--allow-missing-classes")], capsys)
    assert code == 0, err
    # A warning, shown even with --quiet.
    assert "warning" in err and "ghost (9)" in err
    from fiftyone_ntt.memory_bank import MemoryBank

    assert list(MemoryBank.load(out).class_names) == ["disc", "square", "bar"]


def _empty_targets(tmp_path):
    targets = tmp_path / "empty.json"
    targets.write_text(json.dumps({"images": [], "annotations": [], "categories": CATEGORIES}))
    return targets


def _predict_empty(data, tmp_path, *extra):
    # Model paths that cannot load: if anything is loaded, the error says so.
    return [
        "predict",
        str(data / "bank.safetensors"),
        "--targets",
        str(_empty_targets(tmp_path)),
        "--images",
        str(data / "train"),
        "--out",
        str(tmp_path / "r.json"),
        "--dinov2",
        str(tmp_path / "no_dinov2.pth"),
        "--sam2",
        str(tmp_path / "no_sam2.pt"),
        *extra,
    ]


def test_predict_refuses_an_empty_target_list_before_loading_models(data, capsys, tmp_path):
    code, _, err = _run(_predict_empty(data, tmp_path), capsys)
    assert code == 2
    assert "no target images" in err and "empty.json" in err and "--allow-empty" in err
    assert "cannot load" not in err
    assert not (tmp_path / "r.json").exists()


def test_predict_allow_empty_writes_an_empty_list_without_models(data, capsys, tmp_path):
    code, _, err = _run(_predict_empty(data, tmp_path, "--allow-empty"), capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "r.json").read_text()) == []
    assert "cannot load" not in err


def test_bank_encoder_mismatch_is_refused_before_the_weights_load(data, capsys, tmp_path):
    from transformers import Dinov2Config

    # A DINOv2 ViT-B folder with its config.json but no weights: loading it would fail, so
    # the mismatch can only be reported if the identity is read before loading.
    folder = tmp_path / "dinov2-base"
    Dinov2Config(hidden_size=768, num_hidden_layers=12, num_attention_heads=12).save_pretrained(
        folder
    )
    code, _, err = _run(
        [
            "predict",
            str(data / "bank.safetensors"),
            str(data / "train" / "img_01.png"),
            "--out",
            str(tmp_path / "r.json"),
            "--dinov2",
            str(folder),
            "--sam2",
            "tiny",
        ],
        capsys,
    )
    assert code == 2
    assert "memory bank was built with dinov2 vit_tiny_random" in err
    assert "vit_base" in err and "dim 768" in err
    assert "cannot load" not in err


def test_quiet_hides_the_sample_references_summary(data, capsys, tmp_path):
    args = [
        "sample-references",
        str(data / "train.json"),
        "--shots",
        "1",
        "--seed",
        "0",
        "--classes",
        "square",
        "--out",
        str(tmp_path / "refs.json"),
    ]
    code, _, err = _run(args, capsys)
    assert code == 0 and "square (3): 1 of 1" in err
    code, out, err = _run(["--quiet", *args], capsys)
    assert code == 0
    assert out == "" and err == ""


def test_quiet_still_reports_unreadable_images(data, capsys, tmp_path):
    code, _, err = _run(
        [
            "--quiet",
            "predict",
            str(data / "bank.safetensors"),
            str(tmp_path / "missing.png"),
            "--out",
            str(tmp_path / "r.json"),
            *FAST,
        ],
        capsys,
    )
    assert code == 1
    assert "missing.png" in err
