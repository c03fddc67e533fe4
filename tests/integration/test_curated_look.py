"""How No Time to Train's fields look in the App (issue 20.13): curated labels carry their
decision (``ntt_decision``: "accepted" / "rejected"), the dataset's colour scheme gives each
NTT field a fixed colour (no reshuffle on reload) and colours curated labels by decision, the
curated field is hidden by default; colours and visibility a user set are never overwritten.
Real MongoDB, painted images, fake models."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.integration

GT = "ground_truth"
PREVIEW = "ntt_preview"
CURATED = "ntt_curated"
YELLOW = [0.625, 40 / 96, 40 / 128, 40 / 96]  # the unlabelled distractor of sample 6


def _fast():
    from fiftyone_ntt.config import NTTConfig

    return NTTConfig(points_per_side=16)


@pytest.fixture
def judged(painted_dataset):
    """Sample 6 previewed with bank v1: its false positive (the yellow square) rejected, its
    true blue square accepted; then previewed again, which moves both to ``ntt_curated``."""
    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    nf.build_bank(dataset, GT, "colours", config=_fast())
    target = dataset.values("id")[6]
    nf.preview(dataset, "colours", sample_ids=[target])
    dets = dataset[target][PREVIEW].detections
    (false_positive,) = [d for d in dets if np.allclose(d.bounding_box, YELLOW, atol=1e-6)]
    true_positive = max((d for d in dets if d.label == "blue"), key=lambda d: d.confidence)
    nf.reject_predictions(dataset, PREVIEW, [false_positive.id])
    nf.accept_predictions(dataset, PREVIEW, [true_positive.id])
    assert nf.preview(dataset, "colours", sample_ids=[target])["curated"] == 2
    return dataset, target, false_positive.id, true_positive.id


def _scheme_fields(dataset) -> dict[str, dict]:
    dataset.reload()
    scheme = dataset.app_config.color_scheme
    return {f["path"]: dict(f) for f in (scheme.fields or [])} if scheme else {}


def _decisions(dataset, sample_id) -> dict[str, str | None]:
    dataset.reload()
    curated = dataset[sample_id][CURATED]
    return {d.id: d.get_field("ntt_decision") for d in curated.detections} if curated else {}


def test_curated_labels_carry_their_decision(judged):
    dataset, target, rejected, accepted = judged
    assert _decisions(dataset, target) == {rejected: "rejected", accepted: "accepted"}


def test_rejudging_a_curated_label_updates_its_decision(judged):
    import fiftyone_ntt.fiftyone as nf

    dataset, target, rejected, accepted = judged
    nf.accept_predictions(dataset, CURATED, [rejected])
    nf.reject_predictions(dataset, CURATED, [accepted])
    assert _decisions(dataset, target) == {rejected: "accepted", accepted: "rejected"}
    nf.untag_labels(dataset, CURATED, [rejected])
    assert _decisions(dataset, target)[rejected] is None


def test_curated_field_is_coloured_by_decision_and_hidden_by_default(judged):
    from fiftyone_ntt.fiftyone.dataset.labels import ACCEPTED_COLOR, REJECTED_COLOR

    dataset, *_ = judged
    entry = _scheme_fields(dataset)[CURATED]
    assert entry["colorByAttribute"] == "ntt_decision"
    assert {v["value"]: v["color"] for v in entry["valueColors"]} == {
        "accepted": ACCEPTED_COLOR,
        "rejected": REJECTED_COLOR,
    }
    assert entry["fieldColor"]  # its own colour when the App colours by field
    active = dataset.app_config.active_fields  # an explicit list: no metadata, no primitives
    assert active is not None and not active.exclude
    assert set(active.paths) == {GT, PREVIEW}


def test_ntt_fields_get_fixed_colours_that_survive_a_reload(judged):
    import fiftyone as fo

    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.dataset.labels import field_color

    dataset, target, *_ = judged
    first = _scheme_fields(dataset)
    assert first[PREVIEW]["fieldColor"] == field_color(PREVIEW)
    assert first[CURATED]["fieldColor"] == field_color(CURATED)
    assert field_color(PREVIEW) != field_color(CURATED)
    assert GT not in first  # the user's fields keep the App's colours
    nf.preview(dataset, "colours", sample_ids=[target])
    again = fo.load_dataset(dataset.name)
    assert _scheme_fields(again) == first


def test_colours_and_visibility_a_user_set_are_kept(painted_dataset):
    import fiftyone as fo

    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    dataset.app_config.color_scheme = fo.ColorScheme(
        color_by="value",
        color_pool=["#101010", "#202020"],
        fields=[{"path": PREVIEW, "fieldColor": "#123456"}, {"path": GT, "fieldColor": "#abcdef"}],
    )
    dataset.app_config.active_fields = fo.ActiveFields(paths=[GT, PREVIEW])
    dataset.save()
    nf.build_bank(dataset, GT, "colours", config=_fast())
    nf.preview(dataset, "colours", n=2)
    nf.accept_predictions(dataset, PREVIEW)
    nf.preview(dataset, "colours", n=2)
    fields = _scheme_fields(dataset)
    scheme = dataset.app_config.color_scheme
    assert scheme.color_by == "value" and scheme.color_pool == ["#101010", "#202020"]
    assert fields[PREVIEW] == {"path": PREVIEW, "fieldColor": "#123456"}
    assert fields[GT] == {"path": GT, "fieldColor": "#abcdef"}
    assert fields[CURATED]["colorByAttribute"] == "ntt_decision"  # added, nothing replaced
    active = dataset.app_config.active_fields
    assert active.paths == [GT, PREVIEW] and not active.exclude  # the user's list: curated off
