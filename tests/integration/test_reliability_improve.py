"""Reliability of the panel's section *Improve the bank* (issue 23; operators/panel/improve.py
over app/curation_actions.py): a field no run wrote, a run without (or with another field's)
evaluation, predictions without stored features, a user's own saved view "to review", and
buttons clicked before what they need are refused, each with a message naming the value
and the fix; the labels, the banks and the user's view are left as they were. One dataset
for the whole table (real MongoDB, fake models)."""

from __future__ import annotations

import pytest
from panel_driver import PanelDriver

pytestmark = pytest.mark.integration

GT = "ground_truth"
BANK = "colours"

#: (case, curation_actions function, positional arguments after the dataset, words)
LIBRARY_CASES = [
    (
        "thresholds of a field no run wrote",
        "thresholds_for_run",
        ("ntt_copy", "ev_copy"),
        "field 'ntt_copy' was not written by a No Time to Train segmentation",
    ),
    (
        "thresholds of a run without evaluation",
        "thresholds_for_run",
        ("ntt", None),
        "segmentation 'ntt' has no evaluation yet: click Evaluate",
    ),
    ("thresholds of an unknown evaluation", "thresholds_for_run", ("ntt", "nope"), "'nope'"),
    (
        "thresholds of another field's evaluation",
        "thresholds_for_run",
        ("ntt2", "ev"),
        "evaluation 'ev' is of field 'ntt', not 'ntt2': evaluate 'ntt2' first",
    ),
    (
        "audit of a field no run wrote",
        "audit_for_run",
        (GT, "ev"),
        "field 'ground_truth' was not written by a No Time to Train segmentation",
    ),
    (
        "audit of a run without evaluation",
        "audit_for_run",
        ("ntt2", ""),
        "segmentation 'ntt2' has no evaluation yet",
    ),
    ("audit without stored features", "audit_for_run", ("ntt", "ev"), "keep_features=True"),
    (
        "queue of a field no run wrote",
        "review_for_run",
        ("ntt_copy",),
        "field 'ntt_copy' was not written by a No Time to Train segmentation",
    ),
    (
        "queue over the user's own view 'to review'",
        "review_for_run",
        ("ntt",),
        "has a saved view 'to review' of its own; rename it, or pass overwrite=True",
    ),
    ("compare with an unknown evaluation", "compare_for_runs", ("ev", "nope"), "['nope']"),
]

#: (case, panel callback, words of the panel's message): buttons clicked too early
PANEL_CASES = [
    ("save before any thresholds", "improve_save_thresholds", "click Thresholds first"),
    (
        "compare before thresholds were saved",
        "improve_compare",
        "save thresholds, segment again and evaluate first",
    ),
    ("accept with no queue", "improve_accept", "the queue is empty: click Review queue"),
    ("reject with no queue", "improve_reject", "the queue is empty: click Review queue"),
]


def _count_cases() -> dict[str, int]:
    """How many bad-input cases this file covers."""
    return {
        "improve-the-bank actions refused": len(LIBRARY_CASES),
        "improve-the-bank buttons clicked too early": len(PANEL_CASES),
    }


def test_bad_inputs_of_the_improve_section_are_refused(painted_dataset, field_hash):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.config import NTTConfig
    from fiftyone_ntt.fiftyone.app import curation_actions
    from fiftyone_ntt.fiftyone.banks.index import bank_versions
    from fiftyone_ntt.fiftyone.evaluation.evaluate import evaluate

    dataset = painted_dataset
    nf.build_bank(dataset, GT, BANK, config=NTTConfig(points_per_side=16))
    nf.segment(dataset, BANK, "ntt")
    evaluate(dataset, "ntt", "ev", gt_field=GT)
    nf.segment(dataset, BANK, "ntt2")
    dataset.clone_sample_field("ntt", "ntt_copy")
    evaluate(dataset, "ntt_copy", "ev_copy", gt_field=GT)
    dataset.save_view("to review", dataset.limit(2))  # the user's own view of that name
    fields = (GT, "ntt", "ntt2")
    before = {f: field_hash(dataset, f) for f in fields}
    versions = len(bank_versions(dataset, BANK))

    failures = []
    for case, name, args, words in LIBRARY_CASES:
        try:
            getattr(curation_actions, name)(dataset, *args)
        except ValueError as error:
            if words not in str(error):
                failures.append(f"{case}: {error}")
        else:
            failures.append(f"{case}: not refused")

    panel = PanelDriver(dataset)
    panel.call("on_load")
    for case, callback, words in PANEL_CASES:
        panel.call(callback)
        if words not in panel.notice() or panel.state.get("message_variant") != "error":
            failures.append(f"{case}: {panel.notice()!r}")
    assert not failures, "\n".join(failures)

    assert {f: field_hash(dataset, f) for f in fields} == before
    assert len(bank_versions(dataset, BANK)) == versions
    assert len(dataset.load_saved_view("to review")) == 2
