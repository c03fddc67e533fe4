"""Reliability (issue 9 §3) of choosing models by preset everywhere (issue 12 §2): the
*build memory bank* form refuses relative model paths (the App's server reads them from its
own folder, not the user's) and words an encoder that does not fit the preset for the form;
the command line and the protocol runner refuse a DINOv3 encoder on the ``paper`` preset
before anything is read, written or loaded, as Python and the form do.

Each case asserts the message names the value and the fix, and that the ground truth (with
its tags) and an unrelated field stay byte-identical, no bank and no dataset appear.
"""

from __future__ import annotations

import json

import pytest
from test_ntt_operators import GT, _validation_error

pytestmark = pytest.mark.integration

DINOV3_S = "facebook/dinov3-vits16-pretrain-lvd1689m"

#: (id, form params, words the message must contain); ``{cwd}`` is the test's folder
FORM_CASES = [
    (
        "relative encoder path that is not there",
        {"encoder": "./nowhere/dinov3_vits16_pretrain.pth"},
        [
            "Path: encoder",
            "'./nowhere/dinov3_vits16_pretrain.pth'",
            "does not exist there",
            "absolute path",
            "hub id",
        ],
    ),
    (
        "relative proposer folder that exists",
        {"proposer": "./my-sam2"},
        ["Path: proposer", "'./my-sam2' is relative", "{cwd}", "absolute path"],
    ),
    (
        "DINOv3 encoder on the paper preset",
        {"preset": "paper", "encoder": DINOV3_S},
        [
            "Path: encoder",
            DINOV3_S,
            "does not fit preset 'paper'",
            "518-px input",
            "'fast'",
            "leave the encoder empty",
        ],
    ),
]

#: (id, where, words)
LIBRARY_CASES = [
    ("DINOv3 encoder on the paper preset, CLI build-bank", "cli", ["does not fit", "'accurate'"]),
    ("DINOv3 encoder on the paper preset, protocol", "protocol", ["does not fit", "'accurate'"]),
]


def _count_cases() -> dict[str, int]:
    """How many bad-input cases this file covers (reported in the issue)."""
    return {"presets (form)": len(FORM_CASES), "presets (CLI, protocol)": len(LIBRARY_CASES)}


@pytest.fixture
def prepared(painted_dataset, tmp_path, monkeypatch):
    import fiftyone as fo

    dataset = painted_dataset
    dataset.add_sample_field("note", fo.StringField)
    dataset.set_values("note", [f"n{i}" for i in range(len(dataset))])
    monkeypatch.chdir(tmp_path)  # the "server's folder" of the relative paths
    (tmp_path / "my-sam2").mkdir()
    return dataset


def _bank_keys(dataset):
    import fiftyone_ntt.fiftyone as nf

    return [b["key"] for b in nf.list_banks(dataset)]


@pytest.mark.parametrize(
    "params, words", [c[1:] for c in FORM_CASES], ids=[c[0] for c in FORM_CASES]
)
def test_bad_preset_choice_in_the_form(prepared, field_hash, tmp_path, params, words):
    dataset = prepared
    before = {f: field_hash(dataset, f) for f in (GT, "note")}
    full = {"gt_field": GT, "bank_key": "b", "advanced_models": True, **params}
    message = _validation_error("ntt_build_bank", dataset, full)
    for word in words:
        word = word.replace("{cwd}", str(tmp_path))
        assert word in message, (word, message)
    assert {f: field_hash(dataset, f) for f in (GT, "note")} == before
    assert _bank_keys(dataset) == []


@pytest.mark.parametrize(
    "where, words", [c[1:] for c in LIBRARY_CASES], ids=[c[0] for c in LIBRARY_CASES]
)
def test_bad_preset_choice_outside_the_app(
    prepared, field_hash, tmp_path, capsys, where, words, fo_session
):
    from test_cli import _write_split

    from fiftyone_ntt.cli import main

    before = field_hash(prepared, GT)
    datasets = set(fo_session.list_datasets())
    images, gt = tmp_path / "imgs", tmp_path / "gt.json"
    gt.write_text(json.dumps(_write_split(images, [(150, 70)], 0, 0)))
    bank = tmp_path / "bank.safetensors"
    if where == "cli":
        argv = ["build-bank", str(gt), "--images", str(images), "--out", str(bank)]
        code = main([*argv, "--preset", "paper", "--dinov2", DINOV3_S])
        message = capsys.readouterr().err
        assert code != 0, message
    else:
        from fiftyone_ntt.fiftyone.protocols import custom_spec, run_protocol

        spec = custom_spec(str(gt), str(gt), str(images), name="misfit")
        with pytest.raises(ValueError) as info:
            run_protocol(spec, preset="paper", dinov2=DINOV3_S, output_dir=tmp_path / "out")
        message = str(info.value)
    for word in [DINOV3_S, "preset 'paper'", *words]:
        assert word in message, (word, message)
    assert not bank.exists() and not (tmp_path / "out").exists()
    assert set(fo_session.list_datasets()) == datasets
    assert field_hash(prepared, GT) == before


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(_count_cases()))
