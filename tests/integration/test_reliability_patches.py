"""Reliability of the panel's selection buttons in patches views (issue 20.4): evaluation
TP/FP/FN patches, the references patches (*Show references*), a patches view of a
prediction field, mixed selections (ticked patches and clicked labels), empty and stale
selections.

Each case builds a bank, segments and evaluates (fake models), shows a view, selects, and
presses one button through the panel's callbacks; it checks the panel's message and the
label tags of the ground truth and of the predictions afterwards (accept/reject change
predictions only; untag removes tags wherever they are), and that the ground truth is
byte-identical when its tags are not what the button changes.
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
PRED = "ntt_predictions"
REF, NEG = "ntt:ref", "ntt:neg"
EVAL = f"eval_{PRED}"


# --- views --------------------------------------------------------------------------------


def _eval_view(dataset):
    return dataset.to_evaluation_patches(EVAL)


def _refs_view(dataset):
    from fiftyone_ntt.fiftyone.app.panel_actions import reference_view

    return reference_view(dataset)


def _pred_view(dataset):
    return dataset.to_patches(PRED)


def _samples_view(dataset):
    return dataset.view()


# --- selections: view -> (ticked ids, clicked labels) ---------------------------------------


def _of_type(kind, n=1):
    def pick(view):
        from fiftyone import ViewField as F

        return view.match(F("type") == kind).limit(n).values("id"), []

    return pick


def _tp_and_fp(view):
    return _of_type("tp")(view)[0] + _of_type("fp")(view)[0], []


def _first(n):
    def pick(view):
        return view.limit(n).values("id"), []

    return pick


def _tick_one_click_another(view):
    """One FP patch ticked, and a prediction clicked in another FP patch (the App names the
    patch as the label's sample)."""
    from fiftyone import ViewField as F

    ticked, other = view.match(F("type") == "fp").limit(2)
    label = other[PRED].detections[0]
    return [ticked.id], [{"label_id": label.id, "sample_id": other.id, "field": PRED}]


def _clicked_in_patch(view):
    patch = view.first()
    return [], [{"label_id": patch[PRED].id, "sample_id": patch.id, "field": PRED}]


def _nothing(view):
    return [], []


def _stale_patch(view):
    return ["0123456789abcdef01234567"], []


def _sample_ids(view):
    return view.limit(2).values("id"), []


# --- set-ups before the selection -----------------------------------------------------------


def _accept_a_tp(dataset):
    """A TP's prediction accepted beforehand (so untagging it has something to remove)."""
    from fiftyone import ViewField as F

    import fiftyone_ntt.fiftyone as nf

    patch = _eval_view(dataset).match(F("type") == "tp").first()
    nf.accept_predictions(dataset, PRED, label_ids=[patch[PRED].detections[0].id])


def _none(dataset):
    return None


#: (name, set-up, view, selection, callback, variant, words, label tags after:
#: {field: {tag: count}})
CASES = [
    (
        "evaluation FP patch, reject",
        _none,
        _eval_view,
        _of_type("fp"),
        "reject",
        "success",
        "Rejected 1 prediction(s)",
        {GT: {REF: 3}, PRED: {NEG: 1}},
    ),
    (
        "evaluation TP patch, accept (its ground truth left alone)",
        _none,
        _eval_view,
        _of_type("tp"),
        "accept",
        "success",
        "Accepted 1 prediction(s)",
        {GT: {REF: 3}, PRED: {REF: 1}},
    ),
    (
        "evaluation FN patch, reject",
        _none,
        _eval_view,
        _of_type("fn"),
        "reject",
        "warning",
        "hold no prediction",
        {GT: {REF: 3}, PRED: {}},
    ),
    (
        "evaluation TP and FP patches, reject",
        _none,
        _eval_view,
        _tp_and_fp,
        "reject",
        "success",
        "Rejected 2 prediction(s)",
        {GT: {REF: 3}, PRED: {NEG: 2}},
    ),
    (
        "evaluation TP patch accepted before, untag",
        _accept_a_tp,
        _eval_view,
        _of_type("tp"),
        "untag",
        "success",
        "Removed 1 tag(s)",
        {GT: {REF: 3}, PRED: {}},
    ),
    (
        "mixed: a ticked patch and a label clicked in another",
        _none,
        _eval_view,
        _tick_one_click_another,
        "reject",
        "success",
        "Rejected 2 prediction(s)",
        {GT: {REF: 3}, PRED: {NEG: 2}},
    ),
    (
        "references patch, untag",
        _none,
        _refs_view,
        _first(1),
        "untag",
        "success",
        "Removed 1 tag(s)",
        {GT: {REF: 2}, PRED: {}},
    ),
    (
        "references patches, accept",
        _none,
        _refs_view,
        _first(2),
        "accept",
        "warning",
        "hold no prediction",
        {GT: {REF: 3}, PRED: {}},
    ),
    (
        "prediction-field patches, reject",
        _none,
        _pred_view,
        _first(2),
        "reject",
        "success",
        "Rejected 2 prediction(s)",
        {GT: {REF: 3}, PRED: {NEG: 2}},
    ),
    (
        "prediction-field patch, label clicked in it",
        _none,
        _pred_view,
        _clicked_in_patch,
        "accept",
        "success",
        "Accepted 1 prediction(s)",
        {GT: {REF: 3}, PRED: {REF: 1}},
    ),
    (
        "empty selection in evaluation patches",
        _none,
        _eval_view,
        _nothing,
        "accept",
        "warning",
        "Select predictions",
        {GT: {REF: 3}, PRED: {}},
    ),
    (
        "empty selection in references patches, untag",
        _none,
        _refs_view,
        _nothing,
        "untag",
        "warning",
        "Select labels",
        {GT: {REF: 3}, PRED: {}},
    ),
    (
        "stale patch id (not in this view)",
        _none,
        _pred_view,
        _stale_patch,
        "reject",
        "warning",
        "Select predictions",
        {GT: {REF: 3}, PRED: {}},
    ),
    (
        "samples ticked in a view of samples (not their labels)",
        _none,
        _samples_view,
        _sample_ids,
        "accept",
        "warning",
        "Select predictions",
        {GT: {REF: 3}, PRED: {}},
    ),
]


def _count_cases() -> dict[str, int]:
    """How many patches-view selection cases this file covers."""
    return {"panel patches selections": len(CASES)}


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(_count_cases()))


@pytest.fixture
def evaluated(painted_dataset):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.evaluation.evaluate import evaluate

    dataset = painted_dataset
    nf.build_bank(dataset, GT, BANK)
    nf.segment(dataset, BANK, PRED, points_per_side=16)
    evaluate(dataset.exists(PRED), PRED, EVAL, exclude_references=True)
    return dataset


@pytest.mark.parametrize(
    "name, setup, make_view, select, callback, variant, words, tags",
    CASES,
    ids=[case[0] for case in CASES],
)
def test_patches_selection(
    evaluated, field_hash, name, setup, make_view, select, callback, variant, words, tags
):
    dataset = evaluated
    setup(dataset)
    gt_before = field_hash(dataset, GT)
    panel = PanelDriver(dataset)
    panel.view = make_view(dataset)
    panel.call("on_load")
    panel.selected, panel.selected_labels = select(panel.view)

    panel.call(callback)

    assert panel.state["message_variant"] == variant, panel.notice()
    assert words in panel.notice()
    for field, expected in tags.items():
        assert dataset.count_label_tags(label_fields=[field]) == expected, field
    if tags[GT] == {REF: 3}:  # the ground truth's tags unchanged: all of it unchanged
        assert field_hash(dataset, GT) == gt_before
    if variant == "success":  # the selection it used is gone: nothing carries over
        assert panel.selected == [] and panel.selected_labels == []
        assert panel.state["selection"] == {"labels": 0, "predictions": 0}
