"""Per-class thresholds from an evaluation, saved as a bank version and applied by
segment / preview / apply_model through the settings resolver (issue 23 §1), on a real
MongoDB with the fake models. The painted dataset's planted hard class is "blue": the
unlabelled yellow distractor and the magenta instance are segmented as low-scoring blue
false positives."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

GT = "ground_truth"


@pytest.fixture
def evaluated(painted_dataset):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.config import NTTConfig
    from fiftyone_ntt.fiftyone.evaluation.evaluate import evaluate

    dataset = painted_dataset
    nf.build_bank(dataset, GT, "colours", config=NTTConfig(points_per_side=16))
    nf.segment(dataset, "colours", "ntt")
    before = evaluate(dataset, "ntt", "before", gt_field=GT)
    return dataset, before


def test_thresholds_from_an_evaluation_improve_the_hard_class(evaluated):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.banks.index import bank_versions
    from fiftyone_ntt.fiftyone.banks.thresholds import (
        bank_thresholds,
        class_thresholds_table,
        compare_evaluations,
        save_thresholds,
    )
    from fiftyone_ntt.fiftyone.evaluation.evaluate import evaluate

    dataset, before = evaluated
    table = class_thresholds_table(dataset, "before", "colours")
    assert (table["pred_field"], table["gt_field"], table["bank_version"]) == ("ntt", GT, 1)
    rows = {r["class_name"]: r for r in table["rows"]}
    assert set(rows) == {"red", "green", "blue"}
    blue = rows["blue"]
    assert blue["total"] > blue["kept"] and blue["precision"] == 1.0  # the FPs are cut
    assert table["curves"]["blue"]["precision"][-1] < 1.0  # keeping all: FPs included
    assert set(table["thresholds"]) == {"red", "green", "blue"}

    info = save_thresholds(
        dataset, "colours", table["thresholds"], source="thresholds from eval 'before'"
    )
    assert info["version"] == 2 and "thresholds from eval 'before'" in info["diff"]["text"]
    assert bank_thresholds(dataset, "colours") == table["thresholds"]
    assert bank_thresholds(dataset, "colours", 1) == {}  # the old version is unchanged
    versions = bank_versions(dataset, "colours")
    assert versions[-1]["diff"]["text"] == "thresholds from eval 'before'"

    nf.segment(dataset, "colours", "ntt_cut")  # the latest version: thresholds applied
    after = evaluate(dataset, "ntt_cut", "after", gt_field=GT)
    assert before["per_class"]["blue"]["precision"] < 1.0
    assert after["per_class"]["blue"]["precision"] == 1.0
    assert after["per_class"]["blue"]["recall"] == before["per_class"]["blue"]["recall"]
    assert after["fp"] < before["fp"] and after["tp"] == before["tp"]
    side_by_side = {r["class"]: r for r in compare_evaluations(dataset, "before", "after")}
    blue_rows = side_by_side["blue"]
    assert blue_rows["precision_before"] < blue_rows["precision_after"] == 1.0
    assert blue_rows["recall_before"] == blue_rows["recall_after"]
    with pytest.raises(ValueError, match=r"no evaluation \['nope'\]"):
        compare_evaluations(dataset, "before", "nope")


def test_thresholds_from_decisions_warn_below_the_needed_count(evaluated):
    from fiftyone import ViewField as F

    from fiftyone_ntt.fiftyone.banks.thresholds import thresholds_from_decisions_table
    from fiftyone_ntt.fiftyone.curation.decisions import accept_predictions, reject_predictions

    dataset, _ = evaluated
    tp = dataset.filter_labels("ntt", F("before") == "tp").values("ntt.detections.id", unwind=True)
    fp = dataset.filter_labels("ntt", F("before") == "fp").values("ntt.detections.id", unwind=True)
    accept_predictions(dataset, "ntt", tp)
    reject_predictions(dataset, "ntt", fp)
    table = thresholds_from_decisions_table(dataset, "ntt", "colours")
    rows = {r["class_name"]: r for r in table["rows"]}
    blue = rows["blue"]
    assert blue["threshold"] is not None and blue["precision"] == 1.0
    assert "10 needed per class" in blue["reason"]  # a handful of decisions only
    assert "10 needed" in rows["red"]["reason"] and rows["red"]["threshold"] is not None


def test_an_explicit_config_keeps_the_bank_versions_thresholds(painted_dataset):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.config import NTTConfig
    from fiftyone_ntt.fiftyone.banks.thresholds import save_thresholds
    from fiftyone_ntt.fiftyone.runs.settings import resolve_settings

    dataset = painted_dataset
    nf.build_bank(dataset, GT, "colours", config=NTTConfig(points_per_side=16))
    save_thresholds(dataset, "colours", {"blue": 0.5}, source="by hand")
    from fiftyone_ntt.fiftyone.banks.index import get_bank_info

    settings = get_bank_info(dataset, "colours")["config"]
    assert resolve_settings(settings).class_score_thresholds == {"blue": 0.5}
    # a preset / config of the request keeps the bank's thresholds unless it sets its own
    chosen = resolve_settings(settings, NTTConfig(points_per_side=16))
    assert chosen.class_score_thresholds == {"blue": 0.5}
    own = NTTConfig(class_score_thresholds={"red": 0.2})
    assert resolve_settings(settings, own).class_score_thresholds == {"red": 0.2}
    assert resolve_settings(None, NTTConfig()).class_score_thresholds is None


def test_preview_and_apply_model_apply_a_versions_thresholds(evaluated):
    from fiftyone_ntt.fiftyone.banks.index import load_bank
    from fiftyone_ntt.fiftyone.banks.thresholds import save_thresholds
    from fiftyone_ntt.fiftyone.runs.apply_model import NTTModel
    from fiftyone_ntt.fiftyone.runs.preview import preview

    dataset, _ = evaluated
    ids = dataset.skip(3).limit(4).values("id")  # samples with low-scoring blue FPs
    plain = preview(dataset, "colours", sample_ids=ids, points_per_side=16)
    save_thresholds(dataset, "colours", {"blue": 0.5}, source="by hand")
    cut = preview(dataset, "colours", sample_ids=ids, points_per_side=16)
    assert cut["bank_version"] == 2
    assert 0 < cut["classes"]["blue"] < plain["classes"]["blue"]
    assert cut["classes"].get("red") == plain["classes"].get("red")
    model = NTTModel(load_bank(dataset, "colours"), points_per_side=16)
    assert model.config.class_score_thresholds == {"blue": 0.5}
    assert model.segmenter.class_thresholds is not None
