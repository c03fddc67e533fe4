"""``fiftyone-ntt build-bank --negatives``: COCO annotations of negatives into the bank;
``predict --negative-margin``. Tiny random-weight models (what negatives do to predictions
is tested with the deterministic fakes in ``test_negatives.py``)."""

from __future__ import annotations

import json

import pytest
from test_cli import TINY, _write_split

from fiftyone_ntt.cli import main

pytestmark = [
    pytest.mark.unit,
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-neg")
    refs = _write_split(root / "train", [(150, 70), (160, 80)], 0, 0)
    negs = _write_split(root / "neg", [(150, 80)], 2, 500)
    # the negatives file names its categories itself: a bank class ("square"), a global
    # one ("background") and one the bank does not have ("kite")
    negs["categories"] = [
        {"id": 3, "name": "square"},
        {"id": 1, "name": "background"},
        {"id": 7, "name": "kite"},
    ]
    (root / "refs.json").write_text(json.dumps(refs))
    (root / "negs.json").write_text(json.dumps(negs))
    return root


def _build(files, *extra):
    out = files / f"bank-{len(extra)}.safetensors"
    args = ["build-bank", str(files / "refs.json"), "--images", str(files / "train")]
    return main([*args, "--out", str(out), *TINY, *extra]), out


def test_negatives_file_adds_class_and_global_negatives(files, capsys):
    from fiftyone_ntt.memory_bank import MemoryBank

    code, out = _build(
        files, "--negatives", str(files / "negs.json"), "--negatives-images", str(files / "neg")
    )
    err = capsys.readouterr().err
    assert code == 0, err
    bank = MemoryBank.load(out)
    assert bank.class_names == ("disc", "square", "bar")  # category id order (docs/method.md §2.1)
    # one square (class negative), one "background" disc (global); the "kite" is skipped
    assert bank.negatives_per_class() == {"square": 1} and bank.num_global_negatives == 1
    assert all(i.startswith("neg:") for i in bank.negative_ids)
    assert "skipped negatives" in err and "kite: 1" in err and "--background-category" in err
    assert "negatives: square: 1; global: 1" in err
    # a bank without --negatives has none, and its predictions run
    code, plain = _build(files)
    assert code == 0 and MemoryBank.load(plain).num_negatives == 0


def test_background_category_option_and_errors(files, capsys):
    from fiftyone_ntt.memory_bank import MemoryBank

    code, out = _build(
        files,
        "--negatives",
        str(files / "negs.json"),
        "--negatives-images",
        str(files / "neg"),
        "--background-category",
        "kite",
    )
    assert code == 0
    bank = MemoryBank.load(out)
    assert bank.num_global_negatives == 1 and bank.negatives_per_class() == {"square": 1}
    capsys.readouterr()
    # the negatives' images are not under --images: the message names the file
    code, _ = _build(files, "--negatives", str(files / "negs.json"))
    assert code == 2
    assert "img_01.png" in capsys.readouterr().err
    code, _ = _build(files, "--negatives", str(files / "nope.json"))
    assert code == 2 and "nope.json" in capsys.readouterr().err


def test_predict_negative_margin_is_checked(files, capsys):
    code, bank = _build(
        files, "--negatives", str(files / "negs.json"), "--negatives-images", str(files / "neg")
    )
    assert code == 0
    capsys.readouterr()
    args = [
        "predict",
        str(bank),
        "--images",
        str(files / "neg"),
        "--out",
        str(files / "results.json"),
        *TINY,
        "--points-per-side",
        "4",
    ]
    assert main([*args, "--negative-margin", "1.5"]) == 2
    assert "negative_margin=1.5" in capsys.readouterr().err
    assert main([*args, "--negative-margin", "0.1"]) == 0
    assert isinstance(json.loads((files / "results.json").read_text()), list)
