"""Reliability of a lasso in FiftyOne's Embeddings panel reaching the panel (issue 22 §4),
table-driven.

Every shape the App may send besides a lasso of map points (no selection, a cleared one,
a sort or a sample selection among the extended stages, kwargs as pairs, garbage) gives
exactly the map label ids it names, never a crash; a lasso of ids that are not labels of a
map (samples, ground truth, unknown ids) leaves every tag alone and the panel says what to
select. The Embeddings plot itself is WebGL (no browser test): the App's payload is given.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_panel_lasso import lassoed  # noqa: E402, F401
from test_panel_map import GT, PRED  # noqa: E402

SELECT = "fiftyone.core.stages.Select"
MATCH = "fiftyone.core.stages.MatchLabels"
SORT = "fiftyone.core.stages.SortBy"

#: ``(case, extended_selection, extended_stages, ids lasso_ids finds)``
SHAPES = [
    ("nothing", None, None, []),
    ("cleared selection", {"selection": None, "scope": None}, {}, []),
    ("empty selection", {"selection": [], "scope": "@fiftyone/embeddings"}, None, []),
    ("a list of ids", ["a", "b"], None, ["a", "b"]),
    ("only a sort stage", None, {SORT: {"field_or_expr": "filepath"}}, []),
    ("select without ids", None, {SELECT: {"sample_ids": None}}, []),
    ("select kwargs as pairs", None, {SELECT: [["sample_ids", ["x"]], ["ordered", False]]}, ["x"]),
    ("serialized stages", None, [{"_cls": MATCH, "kwargs": {"ids": ["y"]}}], ["y"]),
    ("garbage kwargs", None, {MATCH: "abc", SELECT: 3}, []),
    ("ids not a list", None, {MATCH: {"ids": "abc"}}, []),
    ("duplicates", {"selection": ["z", "z"]}, {SELECT: {"sample_ids": ["z"]}}, ["z"]),
]


def _not_on_map(dataset, field):
    """``(case, extended_selection, extended_stages)``: lassos of ids that are no map label."""
    sample_ids = dataset.values("id")
    gt_ids = dataset.values(f"{GT}.detections.id", unwind=True)[:3]
    pred_ids = dataset.values(f"{PRED}.detections.id", unwind=True)[:3]
    return [
        ("sample ids (a samples plot)", None, {SELECT: {"sample_ids": sample_ids}}),
        ("ground-truth label ids", None, {MATCH: {"fields": [GT], "ids": gt_ids}}),
        ("prediction ids (not their map copies)", {"selection": pred_ids, "scope": "x"}, None),
        ("unknown ids", {"selection": ["0" * 24, "f" * 24], "scope": "global"}, None),
    ]


def _count_cases():
    return {"lasso_shapes": len(SHAPES), "lasso_not_on_map": 4}


@pytest.mark.parametrize("case,selection,stages,expected", SHAPES, ids=[c[0] for c in SHAPES])
def test_every_shape_of_the_apps_payload_gives_the_ids_it_names(case, selection, stages, expected):
    from fiftyone_ntt.fiftyone.app.map_actions import lasso_ids

    assert lasso_ids(selection, stages) == expected, case


def test_a_lasso_of_ids_that_are_not_on_a_map_changes_nothing(lassoed):  # noqa: F811
    from fiftyone_ntt.fiftyone.app.map_actions import lasso_labels

    panel, field = lassoed
    dataset = panel.dataset
    cases = _not_on_map(dataset, field)
    assert len(cases) == _count_cases()["lasso_not_on_map"]
    tags = dataset.count_label_tags()  # the bank's references
    for case, selection, stages in cases:
        assert lasso_labels(dataset, selection, stages) == [], case
        panel.extended_selection, panel.extended = selection, stages
        panel.call("on_change_view")
        assert panel.state["selection"]["labels"] == 0, case
        for action in ("reject", "accept"):
            panel.call(action)
            assert panel.state["message_variant"] == "warning", (case, panel.notice())
            assert "lasso them on the map" in panel.notice(), (case, panel.notice())
        assert dataset.count_label_tags() == tags, case
