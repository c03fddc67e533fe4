"""Issue 21: the *Segment* form's early checks and a real run come from one function,
``runs/plan.plan_segment``: the counts and the taken field the form shows are the plan the
run starts from, and the run's summary counts the same samples."""

from __future__ import annotations

import pytest
from test_ntt_operators import GT, _form, _run

pytestmark = pytest.mark.integration


@pytest.fixture
def plans(monkeypatch):
    """Every plan made (by the form or the run), in order: the one function is spied on
    where the form and the job look it up."""
    import fiftyone_ntt.fiftyone.runs.job as job
    import fiftyone_ntt.fiftyone.runs.plan as plan

    made = []
    real = plan.plan_segment

    def spy(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(plan, "plan_segment", spy)
    monkeypatch.setattr(job, "plan_segment", spy)
    return made


def _props(form: dict) -> dict:
    return form["type"]["properties"]


def _shown_counts(form: dict) -> tuple[int, int | None, int]:
    """(total, references skipped or None, to segment) as the form's notice words them."""
    import re

    props = _props(form)
    prop = props.get("target_notice") or props["to_segment_warning"]
    text = prop["view"].get("label") or prop["view"].get("description")
    total = int(re.search(r"(\d+) sample\(s\) in the target", text).group(1))
    skipped = re.search(r", (\d+) hold the bank's references", text)
    to_segment = int(re.search(r": (\d+) will be segmented", text).group(1))
    return total, int(skipped.group(1)) if skipped else None, to_segment


@pytest.mark.parametrize(
    "params,ctx",
    [
        ({}, {}),
        ({"skip_references": False}, {}),
        ({}, {"view": "first 4"}),
    ],
    ids=["whole dataset", "references not skipped", "a view"],
)
def test_form_counts_are_the_run_plan(painted_dataset, plans, params, ctx):
    dataset = painted_dataset
    _run("ntt_build_bank", dataset, {"gt_field": GT, "bank_key": "colours"})
    if ctx.get("view"):
        ctx = {"view": dataset.limit(4)}
    params = {"bank": "colours", "points_per_side": 16, **params}

    plans.clear()
    total, skipped, to_segment = _shown_counts(_form("ntt_segment", dataset, params, **ctx))
    form_plan = plans[-1]
    assert (total, to_segment) == (form_plan.counts["total"], form_plan.counts["to_segment"])
    assert skipped in (None, form_plan.counts["references"])

    plans.clear()
    summary = _run("ntt_segment", dataset, params, **ctx).result
    assert "error" not in summary, summary
    run_plan = plans[-1]
    assert run_plan.counts == form_plan.counts
    # what the run did is what both said
    assert summary["references_skipped"] == form_plan.counts["references"]
    assert summary["total"] == form_plan.counts["to_segment"] == to_segment
    if skipped is None:
        assert summary["references_skipped"] == 0


def test_sdk_summary_counts_the_plan(painted_dataset):
    """The SDK's run reports the skipped references it planned (the form's number)."""
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.app.preflight import segment_counts

    dataset = painted_dataset
    nf.build_bank(dataset, GT, "colours")
    summary = nf.segment(dataset, "colours", "ntt", points_per_side=16, progress=None)
    counts = segment_counts(dataset, "colours")
    assert counts["references"] == 2
    assert summary["references_skipped"] == counts["references"]
    assert summary["total"] == counts["to_segment"]


def test_taken_field_shown_is_the_run_refusal(painted_dataset, plans):
    """A field holding another bank's predictions: the form's notice is the plan's
    conflict, and the run from the same plan refuses it (unless overwrite)."""
    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    nf.build_bank(dataset, GT, "colours")
    nf.build_bank(dataset, GT, "reds", classes=["red"])
    nf.segment(dataset, "colours", "ntt", points_per_side=16, progress=None)

    plans.clear()
    form = _props(_form("ntt_segment", dataset, {"bank": "reds", "out_field": "ntt"}))
    shown = form["conflict_notice"]["view"]["description"]
    form_plan = plans[0]
    assert form_plan.output_state == "other_run"
    assert shown.startswith(form_plan.conflict) and "bank 'colours'" in shown

    plans.clear()
    with pytest.raises(ValueError, match="holds predictions of another run") as refused:
        nf.segment(dataset, "reds", "ntt", progress=None)
    assert plans[0].output_state == "other_run"
    assert str(refused.value) == plans[0].problem("out_field")

    # with overwrite the same plan has no problem (the field's state stays worded)
    from fiftyone_ntt.fiftyone.runs.plan import plan_segment

    plans.clear()
    overwriting = plan_segment(dataset, "reds", "ntt", overwrite=True)
    assert overwriting.ok and overwriting.output_state == "other_run"


def test_resumable_field_is_no_problem_for_either(painted_dataset, plans):
    """Same bank, same settings: the form shows no conflict, the plan says resumable and
    the run resumes (nothing done again)."""
    dataset = painted_dataset
    _run("ntt_build_bank", dataset, {"gt_field": GT, "bank_key": "colours"})
    params = {"bank": "colours", "out_field": "ntt", "points_per_side": 16}
    _run("ntt_segment", dataset, params)

    plans.clear()
    form = _props(_form("ntt_segment", dataset, params))
    assert "conflict_notice" not in form and not form["out_field"].get("invalid")
    assert plans[-1].output_state == "resumable" and plans[-1].ok

    plans.clear()
    summary = _run("ntt_segment", dataset, params).result
    assert plans[-1].output_state == "resumable"
    assert summary["processed"] == 0 and summary["done_before"] == summary["total"] == 6
