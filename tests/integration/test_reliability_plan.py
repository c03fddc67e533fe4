"""Issue 21: bad requests to segment, as the run's plan (``runs/plan.plan_segment``) words
them. For each: the plan names the problem, the SDK's run refuses with exactly those words
(the same exception) before anything is written, and where the *Segment* form has the
field, it shows the same words."""

from __future__ import annotations

import os

import pytest
from test_ntt_operators import GT, _form

pytestmark = pytest.mark.integration

#: (case, segment kwargs, the plan's field, exception, words)
BANK_CASES = [
    ("no bank chosen, none built", {"bank": None}, "bank", KeyError, ["no memory bank yet"]),
    ("unknown bank key", {"bank": "nope"}, "bank", KeyError, ["'nope'", "known: ['colours']"]),
    ("bank file deleted", {"bank": "colours", "delete": True}, "bank", ValueError, ["missing"]),
]
OUTPUT_CASES = [
    ("not an identifier", {"out_field": "my preds!"}, "out_field", ValueError, ["'my preds!'"]),
    ("reserved name", {"out_field": "_x"}, "out_field", ValueError, ["reserves names"]),
    ("the ground truth", {"out_field": GT}, "out_field", ValueError, ["ground-truth field"]),
    ("a curation field", {"out_field": "ntt_curated"}, "out_field", ValueError, ["ntt_curated"]),
]
DEVICE_CASES = [
    ("not a device", {"device": "banana"}, "device", ValueError, ["'banana'", "available here"]),
    ("no such GPU", {"device": "cuda:9"}, "device", ValueError, ["'cuda:9'", "available here"]),
    ("a number", {"device": "7"}, "device", ValueError, ["'7'", "available here"]),
]
REQUEST_CASES = [
    ("batch_images zero", {"batch_images": 0}, "batch_images", ValueError, ["batch_images=0"]),
    ("batch_images bool", {"batch_images": True}, "batch_images", ValueError, ["True"]),
    ("batch_images text", {"batch_images": "4"}, "batch_images", ValueError, ["'4'"]),
    ("shard out of range", {"shard": (2, 2)}, "shard", ValueError, ["0..1"]),
    ("shard not a pair", {"shard": 3}, "shard", ValueError, ["pair of integers"]),
    ("zero shards", {"shard": (0, 0)}, "shard", ValueError, ["at least 1"]),
    ("detections cap zero", {"max_detections": 0}, "settings", ValueError, ["max_detections"]),
    ("threshold above 1", {"score_threshold": 2.0}, "settings", ValueError, ["[0, 1]"]),
]


def _count_cases() -> dict[str, int]:
    """How many bad-input cases this file covers (reported in the issue)."""
    return {
        "segment plan: bank": len(BANK_CASES),
        "segment plan: output field": len(OUTPUT_CASES),
        "segment plan: device": len(DEVICE_CASES),
        "segment plan: request": len(REQUEST_CASES),
    }


def _words(error: BaseException) -> str:
    return str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)


def _check(dataset, cases, form_fields=()) -> None:
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.runs.plan import plan_segment

    for name, kwargs, field, kind, words in cases:
        kwargs = {"bank": "colours", "out_field": "ntt", **kwargs}
        if kwargs.pop("delete", False):
            os.remove(nf.get_bank_info(dataset, "colours")["path"])
        bank, out_field = kwargs.pop("bank"), kwargs.pop("out_field")
        plan = plan_segment(dataset, bank, out_field, **kwargs)
        said = plan.problem(field)
        assert said is not None, (name, plan.problems)
        for word in words:
            assert word in said, (name, said)
        with pytest.raises(kind) as refused:
            nf.segment(dataset, bank, out_field, progress=None, **kwargs)
        assert _words(refused.value) == said, name
        assert dataset.list_runs() == [] and not dataset.has_sample_field("ntt"), name
        if field in form_fields:
            params = {"bank": bank, "out_field": out_field, **kwargs}
            prop = _form("ntt_segment", dataset, params)["type"]["properties"][field]
            assert said in prop.get("error_message", ""), (name, prop)


def test_bank_problems(painted_dataset):
    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    _check(dataset, BANK_CASES[:1], form_fields=("bank",))
    nf.build_bank(dataset, GT, "colours")
    _check(dataset, BANK_CASES[1:], form_fields=("bank",))


def test_output_field_problems(painted_dataset):
    import fiftyone_ntt.fiftyone as nf

    nf.build_bank(painted_dataset, GT, "colours")
    _check(painted_dataset, OUTPUT_CASES, form_fields=("out_field",))


def test_device_problems(painted_dataset):
    import fiftyone_ntt.fiftyone as nf

    nf.build_bank(painted_dataset, GT, "colours")
    _check(painted_dataset, DEVICE_CASES, form_fields=("device",))


def test_request_problems(painted_dataset):
    import fiftyone_ntt.fiftyone as nf

    nf.build_bank(painted_dataset, GT, "colours")
    _check(painted_dataset, REQUEST_CASES)
