"""Reliability of the panel's own inputs (issue 20, items 11 and 12): the preview N field,
the bank key and the preset of *Build*.

Each case puts a bad value in the panel's field (as the App does: the value in the panel
state, then the field's ``on_change``), presses the button, and checks that the panel
refuses with a message naming the value and the fix, shown next to the field that caused
it (the field is marked invalid with the message under it), that nothing was previewed or built, and that the
ground truth, the label tags and an unrelated field are hash-identical afterwards.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

sys.path.insert(0, str(Path(__file__).resolve().parent))

from panel_driver import PanelDriver  # noqa: E402

GT = "ground_truth"
BANK = "ground_truth-refs"

#: (name, value typed in N, words the message must hold)
PREVIEW_N_CASES = [
    ("fraction", 2.5, "2.5"),
    ("fraction as text", "2.5", "2.5"),
    ("zero", 0, "0"),
    ("negative", -1, "-1"),
    ("cleared (empty text)", "", "empty"),
    ("cleared (None)", None, "empty"),
    ("letters", "abc", "'abc'"),
    ("huge", 1e9, "at most 100"),
    ("huge integer", 10**12, "at most 100"),
    ("just above the most", 101, "101"),
    ("not a number", float("nan"), "nan"),
    ("infinite", float("inf"), "inf"),
    ("true", True, "True"),
]

#: (name, bank key, preset, field with the error, words the message must hold)
BUILD_CASES = [
    ("key with a space", "my bank", "default", "build_key", "'my bank'"),
    ("key with a slash", "../banks", "default", "build_key", "'../banks'"),
    ("key starting with a dot", ".hidden", "default", "build_key", "'.hidden'"),
    ("key too long", "k" * 101, "default", "build_key", "1-100"),
    ("key empty", "", "default", "build_key", "empty"),
    ("key taken, other preset", BANK, "fast", "build_key", "preset 'default'"),
    ("preset unknown", "new-bank", "fastest", "build_preset", "'fastest'"),
    ("preset wrong case", "new-bank", "Paper", "build_preset", "'Paper'"),
    ("preset empty", "new-bank", "", "build_preset", "''"),
]


def _count_cases() -> dict[str, int]:
    """How many bad-input cases this file covers."""
    return {"panel preview N": len(PREVIEW_N_CASES), "panel build inputs": len(BUILD_CASES)}


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(_count_cases()))


def _protected(dataset, field_hash) -> tuple[str, ...]:
    return tuple(field_hash(dataset, f) for f in (GT, "notes", "tags"))


@pytest.fixture
def panel(painted_dataset):
    import fiftyone as fo

    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    dataset.add_sample_field("notes", fo.StringField)
    dataset.set_values("notes", [f"note {i}" for i in range(len(dataset))])
    nf.build_bank(dataset, GT, BANK)  # preset "default"
    driver = PanelDriver(dataset)
    driver.call("on_load")
    return driver


def _error_next_to(panel, field: str) -> str:
    """The error shown under field ``field`` of the rendered panel."""
    prop = panel.find(field)
    assert prop is not None, panel.layout_names()
    assert prop.get("invalid"), (field, prop)
    return str(prop.get("error_message"))


@pytest.mark.parametrize("name, value, words", PREVIEW_N_CASES, ids=[c[0] for c in PREVIEW_N_CASES])
def test_bad_preview_n_is_refused_next_to_the_field(panel, field_hash, name, value, words):
    dataset = panel.dataset
    before = _protected(dataset, field_hash)
    panel.state["preview_n"] = value
    panel.call("set_preview_n", value=value)
    error = panel.state["errors"]["preview_n"]
    assert words in error and "N (samples of the view to preview)" in error, (name, error)
    assert words in _error_next_to(panel, "preview_n")

    panel.call("preview_view")
    assert panel.state["message_variant"] == "error", (name, panel.notice())
    assert words in panel.notice(), (name, panel.notice())
    assert panel.state["message_at"] == "preview"
    assert not dataset.has_sample_field("ntt_preview"), name
    assert _protected(dataset, field_hash) == before, name
    # the field still shows what was typed: the value shown is the value used (none)
    assert panel.state.get("preview_n") == value or value != value  # nan != nan

    panel.state["preview_n"] = 2
    panel.call("set_preview_n", value=2)
    assert not (panel.state.get("errors") or {}).get("preview_n")
    assert not panel.find("preview_n").get("invalid")


@pytest.mark.parametrize(
    "name, key, preset, field, words", BUILD_CASES, ids=[c[0] for c in BUILD_CASES]
)
def test_bad_build_input_is_refused_next_to_the_field(
    panel, field_hash, name, key, preset, field, words
):
    import fiftyone_ntt.fiftyone as nf

    dataset = panel.dataset
    before = _protected(dataset, field_hash)
    banks_before = [(b["key"], b["version"]) for b in nf.list_banks(dataset)]
    panel.state["build_key"] = key
    panel.state["build_preset"] = preset
    panel.call("build")

    assert panel.state["message_variant"] == "error", (name, panel.notice())
    assert words in panel.notice(), (name, panel.notice())
    assert words in panel.state["errors"][field], (name, panel.state["errors"])
    assert words in _error_next_to(panel, field)
    assert panel.state.get("busy") is None  # nothing started
    assert [(b["key"], b["version"]) for b in nf.list_banks(dataset)] == banks_before
    assert _protected(dataset, field_hash) == before, name
