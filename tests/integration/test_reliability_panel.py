"""Reliability of the "No Time to Train" panel: bad input through its buttons.

Each case calls one panel callback in a state where it cannot do its job and checks that the
panel says what is wrong and what to do (a warning or error message in the panel, never a
crash of the panel), and that the ground truth, the label tags and an unrelated field are
hash-identical afterwards.
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


def _none(dataset):
    return []


def _gt_label(dataset):
    sample = dataset.first()
    det = sample[GT].detections[0]
    return [{"label_id": det.id, "sample_id": sample.id, "field": GT}]


def _unknown_label(dataset):
    return [{"label_id": "0123456789abcdef01234567", "sample_id": "x", "field": "ntt"}]


def _untag_all(dataset):
    dataset.untag_labels("ntt:ref")


def _with_bank(dataset):
    import fiftyone_ntt.fiftyone as nf

    nf.build_bank(dataset, GT, BANK)


def _with_run(dataset):
    import fiftyone_ntt.fiftyone as nf

    _with_bank(dataset)
    nf.segment(dataset, BANK, "ntt", points_per_side=16)


def _nothing(dataset):
    return None


#: (name, set-up, selected labels, callback, params, variant, words the message must hold)
CASES = [
    ("tag without selection", _nothing, _none, "tag_refs", {}, "warning", "Select labels"),
    ("negatives without selection", _nothing, _none, "tag_negs", {}, "warning", "Select labels"),
    ("untag without selection", _nothing, _none, "untag", {}, "warning", "Select labels"),
    ("show negatives, none tagged", _nothing, _none, "show_negs", {}, "warning", "Tag selected"),
    ("show references, none", _untag_all, _none, "show_refs", {}, "warning", "Tag selected"),
    ("build without references", _untag_all, _none, "build", {}, "warning", "tag a few"),
    ("preview without bank", _nothing, _none, "preview_view", {}, "warning", "Build / rebuild"),
    ("modal preview without bank", _nothing, _none, "preview_sample", {}, "warning", "bank"),
    ("segment without bank", _nothing, _none, "segment_view", {}, "warning", "Build / rebuild"),
    ("accept without selection", _with_run, _none, "accept", {}, "warning", "Select predictions"),
    ("reject ground truth", _with_run, _gt_label, "reject", {}, "warning", "not predictions"),
    ("reject unknown label", _with_run, _unknown_label, "reject", {}, "error", "ntt"),
    ("run action, stale row", _with_run, _none, "run_evaluate", {"row": 5}, "error", "Refresh"),
    ("run action, no row", _with_run, _none, "run_show", {}, "error", "Refresh"),
    (
        "mark failed, not delegated",
        _with_run,
        _none,
        "run_mark_failed",
        {"row": 0},
        "warning",
        "not a delegated",
    ),
    ("open evaluation, none", _with_run, _none, "run_open_eval", {"row": 0}, "warning", "Evaluate"),
    ("resume, stale row", _with_run, _none, "run_resume", {"row": 3}, "error", "Refresh"),
]


def _count_cases() -> dict[str, int]:
    """How many bad-input cases this file covers."""
    return {"panel actions": len(CASES)}


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(_count_cases()))


def _protected(dataset, field_hash) -> tuple[str, str, str]:
    return (field_hash(dataset, GT), field_hash(dataset, "notes"), field_hash(dataset, "tags"))


@pytest.mark.parametrize(
    "name, setup, selected, callback, params, variant, words",
    CASES,
    ids=[case[0] for case in CASES],
)
def test_bad_panel_input_is_explained_and_changes_nothing(
    painted_dataset, field_hash, name, setup, selected, callback, params, variant, words
):
    import fiftyone as fo

    dataset = painted_dataset
    dataset.add_sample_field("notes", fo.StringField)
    dataset.set_values("notes", [f"note {i}" for i in range(len(dataset))])
    setup(dataset)
    panel = PanelDriver(dataset)
    panel.call("on_load")
    before = _protected(dataset, field_hash)
    tags_before = dataset.count_label_tags()

    panel.selected_labels = selected(dataset)
    panel.call(callback, **params)

    assert panel.state["message_variant"] == variant, (name, panel.notice())
    assert words in panel.notice(), (name, panel.notice())
    assert _protected(dataset, field_hash) == before, name
    assert dataset.count_label_tags() == tags_before, name
    assert panel.output is not None  # the panel rendered again: still usable
