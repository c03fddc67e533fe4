"""Reliability (issue 9 §3) of the operators' own surface: bad input through the forms.

Each case runs an operator through ``execute_operator`` with one bad value and asserts that
it is refused before anything runs, with a message naming the value (or the condition) and
the fix, and that the ground truth (with its tags), the predictions and an unrelated field
are byte-identical afterwards.
"""

from __future__ import annotations

import json

import pytest
from test_ntt_operators import GT, _run, _validation_error

pytestmark = pytest.mark.integration

OUT = "ntt_predictions"

#: (id, operator, params, context, words the message must contain)
FORM_CASES = [
    (
        "new field is the ground truth",
        "ntt_segment",
        {"bank": "reds", "new_field": GT},
        {},
        ["Path: new_field", f"'{GT}'", "choose another name"],
    ),
    (
        "output field not an identifier",
        "ntt_segment",
        {"bank": "colours", "out_field": "my preds!"},
        {},
        ["Path: out_field", "'my preds!'", "e.g. 'ntt_predictions'"],
    ),
    (
        "device that is not a device",
        "ntt_build_bank",
        {"gt_field": GT, "bank_key": "b", "device": "banana"},
        {},
        ["Path: device", "'banana'", "available here: auto, cpu"],
    ),
    (
        "GPU index that does not exist",
        "ntt_segment",
        {"bank": "colours", "out_field": "x", "device": "cuda:9"},
        {},
        ["Path: device", "'cuda:9'", "available here"],
    ),
    (
        "negative K",
        "ntt_sample_references",
        {"gt_field": GT, "shots": -2},
        {},
        ["Path: shots", "K) must be at least 1 (got -2)"],
    ),
    (
        "evaluation key not an identifier",
        "ntt_evaluate",
        {"pred_field": OUT, "gt_field": GT, "eval_key": "1st eval"},
        {},
        ["Path: eval_key", "'1st eval'", "letters, digits and '_'"],
    ),
    (
        "target holding only reference images",
        "ntt_segment",
        {"bank": "colours", "out_field": "x", "view_target": "SELECTED_SAMPLES"},
        {"selected": "references"},
        ["0 will be segmented", "untick 'Skip reference samples'"],
    ),
    (
        "mark failed with nothing running",
        "ntt_runs",
        {"action": "mark_failed", "op_id": "0123456789abcdef01234567"},
        {},
        ["Path: op_id", "No operation of this plugin is running"],
    ),
    (
        "unknown ground-truth field",
        "ntt_sample_references",
        {"gt_field": "gt_typo"},
        {},
        ["Path: gt_field", "'gt_typo'", "choose one of"],
    ),
]


def _count_cases() -> dict[str, int]:
    """How many bad-input cases this file covers (reported in the issue)."""
    return {"operator forms": len(FORM_CASES)}


@pytest.fixture
def prepared(painted_dataset):
    """The painted dataset with bank ``colours`` segmented into ``ntt_predictions``, a
    newer bank ``reds`` (so the default field is taken) and an unrelated field."""
    import fiftyone as fo

    dataset = painted_dataset
    _run("ntt_build_bank", dataset, {"gt_field": GT, "bank_key": "colours"})
    _run("ntt_segment", dataset, {"bank": "colours", "points_per_side": 16})
    _run("ntt_build_bank", dataset, {"gt_field": GT, "bank_key": "reds", "classes": ["red"]})
    dataset.add_sample_field("note", fo.StringField)
    dataset.set_values("note", [f"n{i}" for i in range(len(dataset))])
    return dataset


@pytest.mark.parametrize(
    "name, params, context, words", [c[1:] for c in FORM_CASES], ids=[c[0] for c in FORM_CASES]
)
def test_bad_operator_input_is_refused_and_changes_nothing(
    prepared, field_hash, name, params, context, words
):
    dataset = prepared
    fields = (GT, OUT, "note")
    before = {f: field_hash(dataset, f) for f in fields}
    runs, banks = dataset.list_runs(), _bank_keys(dataset)
    ctx = dict(context)
    if ctx.get("selected") == "references":
        ctx["selected"] = dataset.limit(2).values("id")
    message = _validation_error(name, dataset, params, **ctx)
    for word in words:
        assert word in message, (word, message)
    assert {f: field_hash(dataset, f) for f in fields} == before
    assert dataset.list_runs() == runs and _bank_keys(dataset) == banks


def _bank_keys(dataset):
    import fiftyone_ntt.fiftyone as nf

    return [b["key"] for b in nf.list_banks(dataset)]


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(_count_cases()))
