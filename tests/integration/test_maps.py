"""Issue 22 §2-3: predictions, references and negatives on one FiftyOne embeddings map and
in one similarity index, with their roles; fields written with another encoder are refused.
Real MongoDB, painted images, the fake models (``painted_dataset``)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.integration

GT = "ground_truth"
PRED = "ntt_predictions"


def _fast(**changes):
    from fiftyone_ntt.config import NTTConfig

    return NTTConfig(points_per_side=16, **changes)


@pytest.fixture
def mapped_dataset(painted_dataset):
    """Bank ``colours`` v2 with one negative (a rejected prediction), predictions of v1 with
    features in ``PRED``, evaluated as ``ev``."""
    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    nf.build_bank(dataset, GT, "colours", config=_fast())
    nf.segment(dataset, "colours", PRED, config=_fast(keep_features=True), progress=False)
    nf.evaluate(dataset, PRED, "ev", gt_field=GT)
    # one negative: a false positive, rejected (it stays in PRED with its tag)
    ids, outcomes = dataset.values([f"{PRED}.detections.id", f"{PRED}.detections.ev"], unwind=True)
    false_positives = [i for i, o in zip(ids, outcomes) if o == "fp"]
    nf.reject_predictions(dataset, PRED, false_positives[:1])
    nf.build_bank(dataset, GT, "colours", config=_fast(), fields=[GT, PRED])
    return dataset


def _map_labels(dataset, field):
    return [d for s in dataset.exists(field).select_fields(field) for d in s[field].detections]


def test_map_holds_predictions_references_and_negatives_with_roles(mapped_dataset):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.embeddings import bank_vectors
    from fiftyone_ntt.fiftyone.analysis.maps import (
        ROLE_ATTRIBUTE,
        SOURCE_FIELD_ATTRIBUTE,
        SOURCE_ID_ATTRIBUTE,
        map_predictions,
    )

    dataset = mapped_dataset
    result = map_predictions(dataset, PRED, "colours")
    key = result["brain_key"]
    assert key in dataset.list_brain_runs()
    assert result["bank_version"] == 2 and result["eval_key"] == "ev"
    assert result["method"] == "pca"  # a handful of points (choose_method says why)
    labels = _map_labels(dataset, key)
    roles = [d[ROLE_ATTRIBUTE] for d in labels]
    bank = nf.load_bank(dataset, "colours")
    n_pred = len(dataset.values(f"{PRED}.detections.id", unwind=True))
    assert roles.count("reference") == bank.num_references == 3
    assert roles.count("negative") == bank.num_negatives == 1
    assert roles.count("tp") + roles.count("fp") == n_pred
    assert roles.count("tp") > 0 and roles.count("fp") > 0
    assert result["points"] == len(labels) == n_pred + 4
    # each reference copy points at its ground-truth label, the negative at its prediction
    sources = {d[SOURCE_ID_ATTRIBUTE]: d[SOURCE_FIELD_ATTRIBUTE] for d in labels}
    assert all(sources[i] == GT for i in bank.reference_ids)
    assert sources[bank.negative_ids[0]] == PRED
    # FiftyOne's brain holds one 2-D point per map label, in the map field's order
    results = dataset.load_brain_results(key)
    assert results.points.shape == (len(labels), 2)
    assert set(results.current_label_ids) == {d.id for d in labels}
    # the reference and negative vectors are the bank's
    vectors = bank_vectors(bank).by_id()
    assert set(vectors) == set(bank.reference_ids) | set(bank.negative_ids)
    # ground truth untouched (no attribute added to its labels)
    assert not any(
        ROLE_ATTRIBUTE in (d.field_names or ())
        for s in dataset.select_fields(GT)
        for d in s[GT].detections
    )


def test_map_again_replaces_its_own_map(mapped_dataset):
    from fiftyone_ntt.fiftyone.analysis.maps import map_predictions

    first = map_predictions(mapped_dataset, PRED, "colours")
    second = map_predictions(mapped_dataset, PRED, "colours", method="pca")
    assert first["brain_key"] == second["brain_key"]
    assert first["points"] == second["points"]
    assert mapped_dataset.list_brain_runs().count(first["brain_key"]) == 1


def test_similarity_ranks_the_same_class_first(mapped_dataset):
    from fiftyone_ntt.fiftyone.analysis.maps import ROLE_ATTRIBUTE, similar_predictions

    dataset = mapped_dataset
    result = similar_predictions(dataset, PRED, "colours")
    key, field = result["brain_key"], result["field"]
    assert key in dataset.list_brain_runs()
    labels = _map_labels(dataset, field)
    query = next(d for d in labels if d[ROLE_ATTRIBUTE] == "reference" and d.label == "green")
    ranked = dataset.to_patches(field).sort_by_similarity(query.id, k=4, brain_key=key)
    names = ranked.values(f"{field}.label")
    assert names[0] == "green" and names.count("green") >= 2


def test_other_encoder_is_refused_naming_both(mapped_dataset):
    from fiftyone_ntt.fiftyone.analysis.maps import map_predictions, similar_predictions

    dataset = mapped_dataset
    info = dataset.get_run_info(PRED)
    info.config.models = {
        "encoder": {
            "family": "dinov2",
            "arch": "vit_large",
            "feature_dim": 1024,
            "patch_size": 14,
            "registers": 0,
            "source": "facebook/dinov2-large",
        }
    }
    dataset.update_run_config(PRED, info.config)
    for compute in (map_predictions, similar_predictions):
        with pytest.raises(ValueError) as caught:
            compute(dataset, PRED, "colours")
        message = str(caught.value)
        assert PRED in message and "colours" in message
        assert "dinov2" in message.lower() and "fake-color" in message


def test_field_without_features_says_how_to_compute_them(painted_dataset):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.analysis.maps import map_predictions

    nf.build_bank(painted_dataset, GT, "colours", config=_fast())
    nf.segment(painted_dataset, "colours", PRED, config=_fast(), progress=False)
    with pytest.raises(ValueError, match=r"embeddings=True"):
        map_predictions(painted_dataset, PRED, "colours")
    assert not any(k.startswith("ntt_map_") for k in painted_dataset.list_brain_runs())
    assert np.all([not f.startswith("ntt_map_") for f in painted_dataset.get_field_schema()])
