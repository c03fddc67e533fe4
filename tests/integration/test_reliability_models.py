"""Reliability (issue 9 §3) of the model-choice surface (issue 12): the preset dropdown and
the advanced model fields of *build memory bank*, and presets with free model choice through
the library. Each bad value is refused before anything runs, with a message naming the value
and the fix, and the ground truth (with its tags) and an unrelated field stay byte-identical;
no bank is written.

The form itself (choices showing each preset's models and cost, the preset table, the advanced
fields) is checked in ``test_model_choice_form``.
"""

from __future__ import annotations

import json

import pytest
from test_ntt_operators import GT, _form, _run, _validation_error

pytestmark = pytest.mark.integration

DINOV3_L = "facebook/dinov3-vitl16-pretrain-lvd1689m"

#: (id, params, words the message must contain)
FORM_CASES = [
    ("unknown preset", {"preset": "quick"}, ["preset", "quick"]),
    (
        "empty advanced proposer",
        {"advanced_models": True, "proposer": "   "},
        ["Path: proposer", "empty"],
    ),
    (
        "missing encoder file",
        {"advanced_models": True, "encoder": "./nowhere/dinov3_vitl16.pth"},
        ["Path: encoder", "does not exist", "hub id"],
    ),
    (
        "proposer neither path nor hub id",
        {"advanced_models": True, "proposer": "my sam model!"},
        ["Path: proposer", "'my sam model!'", "hub id like"],
    ),
    (
        "DINOv3 encoder on the paper preset",
        {"preset": "paper", "advanced_models": True, "encoder": DINOV3_L},
        ["Path: encoder", "518-px input", "16-px", "'accurate'"],
    ),
]

#: (id, resolve_config kwargs, words)
LIBRARY_CASES = [
    (
        "DINOv3 encoder on the paper preset",
        {"preset": "paper", "encoder": DINOV3_L},
        ["does not fit preset 'paper'", "592"],
    ),
    ("unknown preset", {"preset": "quick"}, ["unknown preset 'quick'", "accurate"]),
]


def _count_cases() -> dict[str, int]:
    """How many bad-input cases this file covers (reported in the issue)."""
    return {
        "model choice (forms)": len(FORM_CASES),
        "model choice (library)": len(LIBRARY_CASES),
        # + the foreign frames.<field> refusal in test_video_frames.py
        "video (library)": 1 + 1,
    }


@pytest.fixture
def prepared(painted_dataset):
    import fiftyone as fo

    dataset = painted_dataset
    dataset.add_sample_field("note", fo.StringField)
    dataset.set_values("note", [f"n{i}" for i in range(len(dataset))])
    return dataset


def _bank_keys(dataset):
    import fiftyone_ntt.fiftyone as nf

    return [b["key"] for b in nf.list_banks(dataset)]


@pytest.mark.parametrize(
    "params, words", [c[1:] for c in FORM_CASES], ids=[c[0] for c in FORM_CASES]
)
def test_bad_model_choice_is_refused_and_changes_nothing(prepared, field_hash, params, words):
    dataset = prepared
    before = {f: field_hash(dataset, f) for f in (GT, "note")}
    full = {"gt_field": GT, "bank_key": "b", **params}
    message = _validation_error("ntt_build_bank", dataset, full)
    for word in words:
        assert word in message, (word, message)
    assert {f: field_hash(dataset, f) for f in (GT, "note")} == before
    assert _bank_keys(dataset) == []


@pytest.mark.parametrize(
    "kwargs, words", [c[1:] for c in LIBRARY_CASES], ids=[c[0] for c in LIBRARY_CASES]
)
def test_bad_library_model_choice_is_refused(prepared, field_hash, kwargs, words):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.presets import resolve_config

    dataset = prepared
    before = field_hash(dataset, GT)
    with pytest.raises(ValueError) as info:
        nf.build_bank(dataset, GT, "b", config=resolve_config(**kwargs))
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    assert field_hash(dataset, GT) == before and _bank_keys(dataset) == []


def test_model_choice_form(prepared):
    from fiftyone_ntt.presets import preset_table_markdown

    form = json.dumps(_form("ntt_build_bank", prepared, {"gt_field": GT}))
    header = preset_table_markdown().split("\n")[0]
    assert "| preset | mask proposer | semantic encoder |" in header and "CPU s / image" in header
    for text in (
        "fast: SAM 2.1 Hiera-T + DINOv2 ViT-S/14",
        "accurate: SAM 2.1 Hiera-L + DINOv3 ViT-L/16",
        "paper: SAM 2.0 Hiera-L + DINOv2 ViT-L/14",
        json.dumps(header)[1:-1],
        "Advanced: choose each model",
    ):
        assert text in form, text
    assert '"proposer"' not in form  # the advanced fields only show when asked for
    advanced = json.dumps(
        _form("ntt_build_bank", prepared, {"gt_field": GT, "advanced_models": True})
    )
    assert '"proposer"' in advanced and '"encoder"' in advanced


def test_advanced_models_build_a_bank(prepared):
    """The advanced fields pass validation and the build runs (in test-model mode the fake
    models run whatever the sources say)."""
    params = {"preset": "fast", "advanced_models": True, "encoder": DINOV3_L}
    built = _run("ntt_build_bank", prepared, {"gt_field": GT, "bank_key": "b", **params}).result
    assert built["bank_key"] == "b" and _bank_keys(prepared) == ["b"]


def test_segment_frames_of_an_image_dataset_is_refused(prepared, field_hash):
    from fiftyone_ntt.bank_build import build_memory_bank
    from fiftyone_ntt.fiftyone.runs.job import segment_frames
    from fiftyone_ntt.testing import ColorEncoder, RegionProposer, paint
    from fiftyone_ntt.types import Reference

    image = paint((40, 40), [(1, (5, 5, 30, 30))])
    bank = build_memory_bank(
        [Reference(image, "red", "r", box=(5, 5, 30, 30))], ColorEncoder(), RegionProposer()
    )
    before = field_hash(prepared, GT)
    with pytest.raises(ValueError, match="holds image samples, not videos"):
        segment_frames(prepared, bank, "ntt")
    assert field_hash(prepared, GT) == before and not prepared.has_sample_field("ntt")


def test_segment_form_names_the_bank_models(prepared):
    params = {"gt_field": GT, "bank_key": "b", "preset": "fast"}
    _run("ntt_build_bank", prepared, params)
    form = json.dumps(_form("ntt_segment", prepared, {"bank": "b"}))
    # test-model mode records the fake models that ran
    assert (
        "Models (the bank's): fake RegionProposer (testing) + fake ColorEncoder (testing)" in form
    )


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(_count_cases()))
