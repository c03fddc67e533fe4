"""The App's "output field taken" pre-check (app/preflight.output_conflict) and a real run
(runs/job.segment) resolve a run's settings with the same function (runs/settings.py): for
every preset and for a bank built with another model, the form refuses exactly the requests
the run refuses."""

from __future__ import annotations

import pytest

from fiftyone_ntt.config import DINOV2_SMALL, PRESETS, get_preset

GT = "ground_truth"
BASE = {"points_per_side": 16}
#: Requests after a first run with BASE: the same (resumes) and changed settings (refused).
REQUESTS = [
    {},
    {"score_threshold": 0.9},
    {"points_per_side": 8},
    {"max_detections": 3},
]


def _bank_configs():
    cases = {name: get_preset(name) for name in PRESETS}
    default = get_preset("default")
    cases["default, another encoder"] = default.replace(models={"dinov2": DINOV2_SMALL})
    return cases


def _run_refuses(dataset, bank_key, field, overrides) -> bool:
    import fiftyone_ntt.fiftyone as nf

    try:
        nf.segment(dataset, bank_key, field, progress=None, **{**BASE, **overrides})
    except ValueError as error:
        assert "holds predictions of another run" in str(error), error
        return True
    return False


@pytest.mark.parametrize("case", sorted(_bank_configs()))
def test_precheck_and_run_agree(painted_dataset, case):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.app.preflight import output_conflict

    dataset = painted_dataset
    config = _bank_configs()[case]
    bank_key = "agree"
    nf.build_bank(dataset, GT, bank_key, config=config)
    field = "ntt_agree"
    nf.segment(dataset, bank_key, field, progress=None, **BASE)

    seen = []
    for overrides in REQUESTS:
        request = {**BASE, **overrides}
        conflict = output_conflict(dataset, field, bank_key, **request)
        refused = _run_refuses(dataset, bank_key, field, overrides)
        assert (conflict is not None) == refused, (case, request, conflict)
        seen.append(refused)
    # the same request resumes; each changed setting is refused by both
    assert seen == [False, True, True, True], (case, seen)


def test_precheck_and_run_agree_after_a_rebuild_with_another_model(painted_dataset):
    """The bank is rebuilt under the same key with another encoder configured: whatever
    the two answer (with the test models the configured model is the test model), they
    answer the same."""
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.app.preflight import output_conflict

    dataset = painted_dataset
    nf.build_bank(dataset, GT, "agree", config=get_preset("default"))
    nf.segment(dataset, "agree", "ntt_agree", progress=None, **BASE)
    changed = get_preset("default").replace(models={"dinov2": DINOV2_SMALL})
    nf.build_bank(dataset, GT, "agree", config=changed)

    for overrides in REQUESTS:
        conflict = output_conflict(dataset, "ntt_agree", "agree", **{**BASE, **overrides})
        refused = _run_refuses(dataset, "agree", "ntt_agree", overrides)
        assert (conflict is not None) == refused, (overrides, conflict)
