"""Which samples are reference samples, for segment, evaluate and Results (issue 20 items 2
and 7): a sample is a reference sample only if its ground-truth field holds a reference. An
accepted prediction (a reference in ``ntt_curated``) leaves its image evaluable.

The App's loop, driven through the panel's callbacks (``PanelDriver``) on a real
MongoDB-backed painted dataset with the fake models: preview a target image, accept one of
its predictions, preview again (the accepted label moves to ``ntt_curated``), rebuild, segment,
evaluate, open the Results."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

sys.path.insert(0, str(Path(__file__).resolve().parent))

from panel_driver import PanelDriver  # noqa: E402

GT = "ground_truth"
OUT = "ntt_predictions"
TARGET = 2  # a target image (samples 0 and 1 hold the ground-truth references)


def _accept_one_preview_prediction(panel):
    """Preview on sample TARGET, accept one of its predictions, preview again (the accepted
    label moves to ntt_curated), rebuild: bank v2 has a reference in ntt_curated."""
    from fiftyone_ntt.fiftyone.dataset.fields import CURATED_FIELD, PREVIEW_FIELD

    dataset = panel.dataset
    target = dataset.values("id")[TARGET]
    panel.call("build")
    panel.current_sample = target
    panel.call("on_change_current_sample")
    panel.call("preview_sample")
    dataset.reload()
    label = dataset[target][PREVIEW_FIELD].detections[0]
    panel.selected_labels = [{"label_id": label.id, "sample_id": target, "field": PREVIEW_FIELD}]
    panel.call("on_change_selected_labels")
    panel.call("accept")
    assert "Accepted 1 prediction(s)" in panel.notice()
    panel.call("preview_sample")
    panel.selected_labels = []
    panel.current_sample = None
    dataset.reload()
    assert [d.id for d in dataset[target][CURATED_FIELD].detections] == [label.id]
    panel.call("build")
    assert "v2" in panel.notice()
    return target


def test_accept_then_segment_evaluate_and_results_use_one_reference_rule(painted_dataset):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.app.preflight import segment_counts

    dataset = painted_dataset
    panel = PanelDriver(dataset)
    panel.call("on_load")
    target = _accept_one_preview_prediction(panel)
    ids = dataset.values("id")
    gt_references = {ids[0], ids[1]}
    evaluable = set(ids) - gt_references
    assert target in evaluable

    # segment: the form's count and the run skip the same samples, the ground-truth ones
    counts = segment_counts(dataset, "ground_truth-refs")
    assert (counts["references"], counts["to_segment"]) == (2, len(ids) - 2)
    nf.segment(dataset, "ground_truth-refs", OUT, points_per_side=16)
    assert set(dataset.exists(OUT).values("id")) == evaluable

    # evaluate from the panel: every segmented sample, the left-out ones named, no "-1"
    panel.call("on_refresh")
    row = next(i for i, r in enumerate(panel.state["runs"]) if r["field"] == OUT)
    panel.call("run_evaluate", row=row)
    message = panel.notice()
    assert f"on {len(evaluable)} sample(s)" in message, message
    assert "-1" not in message, message
    assert "mAP" in message
    # the left-out samples: none of the run's (they hold the references and were skipped)
    evaluation = dataset.load_evaluation_view(f"eval_{OUT}")
    assert set(evaluation.values("id")) == evaluable

    # Results: TP/FP/FN patches of the evaluated samples only
    panel.call("on_refresh")
    row = next(i for i, r in enumerate(panel.state["runs"]) if r.get("can_open_eval"))
    panel.call("run_open_eval", row=row)
    patches = panel.view
    assert patches._is_patches
    types = patches.values("type")
    assert types and set(types) <= {"tp", "fp", "fn"}, sorted(map(str, set(types)))
    assert set(patches.values("sample_id")) <= evaluable
    assert target in set(patches.values("sample_id"))
    evaluated = dataset.select(list(evaluable))
    tp, fp, fn = (sum(evaluated.values(f"eval_{OUT}_{k}")) for k in ("tp", "fp", "fn"))
    assert len(patches) == tp + fp + fn


def test_evaluate_names_the_left_out_reference_samples(painted_dataset):
    """The whole dataset evaluated (the operator's default target): the ground-truth reference
    images are left out and named; the image with an accepted prediction is evaluated."""
    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    panel = PanelDriver(dataset)
    panel.call("on_load")
    target = _accept_one_preview_prediction(panel)
    nf.segment(dataset, "ground_truth-refs", OUT, points_per_side=16, skip_references=False)
    ids = dataset.values("id")
    names = [Path(p).name for p in dataset.values("filepath")]

    summary = nf.evaluate(dataset, OUT, "ev", exclude_references=True)
    assert summary["num_samples"] == len(ids) - 2
    assert target in set(dataset.load_evaluation_view("ev").values("id"))
    left_out = summary["left_out"]
    assert sorted(s["id"] for s in left_out) == sorted(ids[:2])
    assert all(s["reason"] for s in left_out)
    message = summary["message"]
    assert "left out 2 reference sample(s)" in message, message
    assert names[0] in message and names[1] in message and names[TARGET] not in message
    assert "-1" not in message

    # the Results of that evaluation: the evaluated samples' TP/FP/FN patches only
    from fiftyone_ntt.fiftyone.app.run_actions import open_evaluation

    effect = open_evaluation(dataset, {"evaluation": "ev", "field": OUT})
    patches = effect.view
    evaluated = set(ids[2:])
    assert set(patches.values("sample_id")) <= evaluated
    assert set(patches.values("type")) <= {"tp", "fp", "fn"}
    tp = sum(dataset.select(list(evaluated)).values("ev_tp"))
    fp = sum(dataset.select(list(evaluated)).values("ev_fp"))
    fn = sum(dataset.select(list(evaluated)).values("ev_fn"))
    # FiftyOne's patches: one per TP pair (ground truth and prediction merged), FP, FN
    assert len(patches) == tp + fp + fn
