"""The panel's curation actions (issue 23; fiftyone_ntt/fiftyone/app/curation_actions.py)
tested without the App, on a real MongoDB with the fake models: each returns the Effect the
panel applies (message, view, reload) and changes the tags it says."""

from __future__ import annotations

import pytest
from test_reference_audit_queue import _plant_bad_reference

pytestmark = pytest.mark.integration

GT = "ground_truth"


def _segment_and_evaluate(dataset, keep_features=True):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.config import NTTConfig
    from fiftyone_ntt.fiftyone.evaluation.evaluate import evaluate

    config = NTTConfig(points_per_side=16, keep_features=keep_features)
    nf.build_bank(dataset, GT, "colours", config=config)
    nf.segment(dataset, "colours", "ntt")
    evaluate(dataset, "ntt", "ev", gt_field=GT, exclude_references=True)


def _tags(dataset, field, label_id):
    view = dataset.select_labels(ids=[label_id], fields=field)
    return set(view.distinct(f"{field}.detections.tags"))


def test_audit_actions_show_untag_and_replace(painted_dataset):
    from fiftyone_ntt.fiftyone.app.curation_actions import (
        replace_audited_reference,
        save_class_thresholds,
        show_reference_audit_row,
        untag_audited_reference,
    )
    from fiftyone_ntt.fiftyone.banks.audit import reference_audit

    dataset = painted_dataset
    bad_id = _plant_bad_reference(dataset)
    _segment_and_evaluate(dataset)

    saved = save_class_thresholds(dataset, "ev", "colours")
    assert "saved as version 2 of 'colours'" in saved.message and saved.variant == "success"

    audit = reference_audit(dataset, "ev", "colours")
    row = audit["rows"][0]
    assert row["reference_id"] == bad_id
    shown = show_reference_audit_row(dataset, row, "ntt")
    assert shown.view.count(f"{GT}.detections") == 1  # the reference alone of its field
    assert sorted(shown.view.values("ntt.detections.id", unwind=True)) == sorted(
        row["false_positives"]
    )

    replaced = replace_audited_reference(dataset, audit, row)
    accepted = replaced.result["accepted"]
    assert "replaced reference" in replaced.message and replaced.reload
    assert "ntt:ref" not in _tags(dataset, GT, bad_id)
    assert "ntt:ref" in _tags(dataset, "ntt", accepted)
    assert dataset.select_labels(ids=[accepted]).distinct("ntt.detections.label") == ["blue"]

    other = next(r for r in audit["rows"] if r["class_name"] == "red")
    untagged = untag_audited_reference(dataset, other)
    assert untagged.result == 1 and "rebuild" in untagged.message
    assert "ntt:ref" not in _tags(dataset, GT, other["reference_id"])


def test_decide_and_next_walks_the_review_queue(painted_dataset):
    from fiftyone_ntt.fiftyone.app.curation_actions import decide_and_next
    from fiftyone_ntt.fiftyone.banks.review import review_queue

    dataset = painted_dataset
    _segment_and_evaluate(dataset, keep_features=False)
    with pytest.raises(ValueError, match="no review queue"):
        decide_and_next(dataset, "ntt", "x", "accept")
    queue = review_queue(dataset, "ntt", "colours")["label_ids"]
    with pytest.raises(ValueError, match="decision='maybe'"):
        decide_and_next(dataset, "ntt", queue[0], "maybe")

    effect = decide_and_next(dataset, "ntt", queue[0], "accept")
    assert effect.extra["next"] == queue[1] and effect.reload
    assert len(effect.view) == len(queue) - 1
    assert "ntt:ref" in _tags(dataset, "ntt", queue[0])
    effect = decide_and_next(dataset, "ntt", queue[1], "reject")
    assert effect.extra["next"] == queue[2] and "ntt:neg" in _tags(dataset, "ntt", queue[1])
    assert f"{len(queue) - 2} left to review" in effect.message
