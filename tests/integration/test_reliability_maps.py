"""Reliability of the embeddings map and the similarity index (issue 22), table-driven.

Every bad input is refused by both :func:`map_predictions` and :func:`similar_predictions`
with a message naming the value and the fix, and leaves no brain run and no map field behind;
predictions without a feature among others are skipped and counted, not fatal.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

pytestmark = pytest.mark.integration

GT = "ground_truth"
PRED = "ntt_predictions"
PLAIN = "plain_predictions"  # segmented without features


@pytest.fixture(scope="module")
def base(fo_session, tmp_path_factory):
    """A painted dataset, bank ``colours``, predictions with features in ``PRED`` and
    without in ``PLAIN``."""
    import uuid

    from ntt_painted import fill_painted_dataset

    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.config import NTTConfig

    folder = tmp_path_factory.mktemp("maps")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FIFTYONE_NTT_TEST_MODELS", "fake")
        patch.setenv("FIFTYONE_NTT_BANKS_DIR", str(folder / "banks"))
        dataset = fill_painted_dataset(
            fo_session.Dataset(f"ntt-maps-{uuid.uuid4().hex[:8]}"), folder
        )
        config = NTTConfig(points_per_side=16)
        nf.build_bank(dataset, GT, "colours", config=config)
        nf.segment(
            dataset, "colours", PRED, config=config.replace(keep_features=True), progress=False
        )
        nf.segment(dataset, "colours", PLAIN, config=config, progress=False)
        yield dataset
    dataset.delete()


@pytest.fixture
def dataset(base):
    """A clone of ``base`` that knows its banks (a clone does not copy the execution store
    where the bank index lives; the bank files are only read)."""
    from fiftyone_ntt.fiftyone.dataset.store import execution_store

    copy = base.clone()
    source, target = execution_store(base), execution_store(copy)
    for key in source.list_keys():
        target.set(key, source.get(key))
    yield copy
    copy.delete()


def _other_encoder(dataset):
    info = dataset.get_run_info(PRED)
    info.config.models = {
        "encoder": {
            "family": "dinov3",
            "arch": "vit_large",
            "feature_dim": 1024,
            "patch_size": 16,
            "registers": 4,
            "source": "facebook/dinov3-vitl16-pretrain-lvd1689m",
        }
    }
    dataset.update_run_config(PRED, info.config)
    return PRED, {}


def _wider_features(dataset):
    """Features of another width in a field without a run record (no encoder to compare)."""
    from fiftyone_ntt.fiftyone.dataset.labels import EMBEDDING_ATTRIBUTE

    values = {}
    for sample in dataset.exists(PLAIN).select_fields(PLAIN):
        detections = sample[PLAIN]
        for det in detections.detections:
            det[EMBEDDING_ATTRIBUTE] = np.ones(384, np.float16) / np.sqrt(384)
        values[sample.id] = detections
    dataset.set_values("copied", values, key_field="id")
    return "copied", {}


def _foreign_map_field(dataset):
    import fiftyone as fo

    from fiftyone_ntt.fiftyone.analysis.maps import map_field_name

    dataset.add_sample_field(
        map_field_name(PRED, "colours", 1),
        fo.EmbeddedDocumentField,
        embedded_doc_type=fo.Detections,
    )
    return PRED, {}


def _string_field(dataset):
    dataset.set_values("note", ["x"] * len(dataset))
    return "note", {}


#: (id, maker(dataset) -> (pred_field, extra kwargs), bank key, expected error words).
REFUSED_CASES = [
    ("missing-field", lambda d: ("nope", {}), "colours", ["'nope'", "does not exist", PRED]),
    ("string-field", _string_field, "colours", ["'note'", "not Detections"]),
    ("ground-truth-no-features", lambda d: (GT, {}), "colours", [GT, "embeddings=True"]),
    ("no-features", lambda d: (PLAIN, {}), "colours", [PLAIN, "embeddings=True"]),
    ("other-encoder", _other_encoder, "colours", [PRED, "dinov3", "fake-color", "colours"]),
    ("other-width", _wider_features, "colours", ["'copied'", "384-wide", "colours"]),
    ("unknown-bank", lambda d: (PRED, {}), "shapes", ["'shapes'", "colours"]),
    ("unknown-version", lambda d: (PRED, {"version": 7}), "colours", ["version 7", "[1]"]),
    ("foreign-map-field", _foreign_map_field, "colours", ["did not write it", "rename"]),
]
METHOD_CASES = [
    ("unknown-method", "umapp", ["'umapp'", "'tsne'", "'pca'"]),
    ("blank-method", "", ["''", "'pca'"]),
]
if importlib.util.find_spec("umap") is None:
    METHOD_CASES.append(("umap-not-installed", "umap", ["umap-learn", "'tsne'"]))


def _no_trace(dataset):
    assert not [k for k in dataset.list_brain_runs() if k.startswith(("ntt_map_", "ntt_sim_"))]
    maps = [f for f in dataset.get_field_schema() if f.startswith("ntt_map_")]
    for field in maps:  # only a pre-existing foreign field may be there, untouched
        assert not dataset.exists(field).count()


@pytest.mark.parametrize(
    "make, bank_key, words", [c[1:] for c in REFUSED_CASES], ids=[c[0] for c in REFUSED_CASES]
)
def test_bad_inputs_are_refused_by_map_and_similarity(dataset, make, bank_key, words):
    from fiftyone_ntt.fiftyone.analysis.maps import map_predictions, similar_predictions

    field, kwargs = make(dataset)
    for compute in (map_predictions, similar_predictions):
        with pytest.raises((ValueError, KeyError)) as caught:
            compute(dataset, field, bank_key, **kwargs)
        message = str(caught.value)
        for word in words:
            assert word in message, (compute.__name__, message)
    _no_trace(dataset)


@pytest.mark.parametrize(
    "method, words", [c[1:] for c in METHOD_CASES], ids=[c[0] for c in METHOD_CASES]
)
def test_bad_methods_are_refused(dataset, method, words):
    from fiftyone_ntt.fiftyone.analysis.maps import map_predictions

    with pytest.raises(ValueError) as caught:
        map_predictions(dataset, PRED, "colours", method=method)
    for word in words:
        assert word in str(caught.value)
    assert not [k for k in dataset.list_brain_runs() if k.startswith("ntt_map_")]


def _strip_features(dataset, count):
    """Remove the features of the predictions of the first ``count`` samples with some."""
    from fiftyone_ntt.fiftyone.dataset.labels import EMBEDDING_ATTRIBUTE

    stripped, values = 0, {}
    for sample in dataset.exists(PRED).limit(count).select_fields(PRED):
        detections = sample[PRED]
        for det in detections.detections:
            det[EMBEDDING_ATTRIBUTE] = None
            stripped += 1
        values[sample.id] = detections
    dataset.set_values(PRED, values, key_field="id")
    return stripped


#: (id, samples whose predictions lose their features)
PARTIAL_CASES = [("one-sample-without", 1), ("three-samples-without", 3)]


@pytest.mark.parametrize("count", [c[1] for c in PARTIAL_CASES], ids=[c[0] for c in PARTIAL_CASES])
def test_predictions_without_features_are_skipped_and_counted(dataset, count):
    from fiftyone_ntt.fiftyone.analysis.maps import map_predictions

    total = len(dataset.values(f"{PRED}.detections.id", unwind=True))
    stripped = _strip_features(dataset, count)
    result = map_predictions(dataset, PRED, "colours")
    assert result["skipped"] == stripped > 0
    assert result["roles"]["prediction"] == total - stripped
    assert result["roles"]["reference"] == 3


#: (id, selected labels, action, expected words) of selections the map actions refuse
SELECTION_CASES = [
    ("nothing-selected", [], "reject", ["no labels selected"]),
    ("empty-dicts", [{"label_id": ""}], "accept", ["no labels selected"]),
    ("not-on-a-map", ["0123456789abcdef01234567"], "reject", ["not labels of a map"]),
    ("bad-action", [], "delete", ["'delete'", "accept"]),
]


@pytest.mark.parametrize(
    "selected, action, words",
    [c[1:] for c in SELECTION_CASES],
    ids=[c[0] for c in SELECTION_CASES],
)
def test_bad_selections_are_refused_and_tag_nothing(dataset, selected, action, words):
    from fiftyone_ntt.fiftyone.app.map_actions import curate_selection

    with pytest.raises(ValueError) as caught:
        curate_selection(dataset, selected, action)
    for word in words:
        assert word in str(caught.value)
    assert not dataset.count_label_tags().get("ntt:neg")


def _count_cases() -> dict[str, int]:
    """How many cases this file covers."""
    return {
        "map/similarity: bad field, bank or encoder refused (both)": len(REFUSED_CASES),
        "map: bad reduction method refused": len(METHOD_CASES),
        "map: predictions without features skipped and counted": len(PARTIAL_CASES),
        "map actions: bad selections refused": len(SELECTION_CASES),
    }


if __name__ == "__main__":
    print(json.dumps(_count_cases()))
