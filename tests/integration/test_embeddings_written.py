"""Issue 22 §1: predictions written with ``embeddings=True`` carry the semantic feature they
were matched with as ``ntt_embedding`` (float16), through MongoDB; without, none. Real
MongoDB, painted images, the fake models (``painted_dataset``)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.integration

GT = "ground_truth"


def _fast(**changes):
    from fiftyone_ntt.config import NTTConfig

    return NTTConfig(points_per_side=16, **changes)


@pytest.fixture
def banked(painted_dataset):
    import fiftyone_ntt.fiftyone as nf

    nf.build_bank(painted_dataset, GT, "colours", config=_fast())
    return painted_dataset


def _expected(dataset, sample_id):
    """The features the segmenter keeps for one sample (float32), by descending score."""
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.images import load_image
    from fiftyone_ntt.segmenter import Segmenter
    from fiftyone_ntt.testing import ColorEncoder, RegionProposer

    bank = nf.load_bank(dataset, "colours")
    segmenter = Segmenter(ColorEncoder(), RegionProposer(), bank, _fast(keep_features=True))
    return segmenter.predict(load_image(dataset[sample_id].filepath))


def test_preview_with_embeddings_writes_the_matched_vectors_as_float16(banked):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.dataset.labels import EMBEDDING_ATTRIBUTE, detection_embedding

    result = nf.preview(banked, "colours", n=3, embeddings=True)
    field = result["field"]
    checked = 0
    for sample_id in result["sample_ids"]:
        banked.reload()
        detections = banked[sample_id][field].detections
        expected = _expected(banked, sample_id)
        assert [d.label for d in detections] == expected.labels
        for detection, vector in zip(detections, expected.features):
            stored = detection[EMBEDDING_ATTRIBUTE]
            assert stored.dtype == np.float16  # compact in the database
            read = detection_embedding(detection)
            assert read.dtype == np.float32
            np.testing.assert_allclose(read, vector, atol=1e-3)
            checked += 1
    assert checked >= 3


def test_without_embeddings_nothing_is_written(banked):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.dataset.labels import EMBEDDING_ATTRIBUTE, detection_embedding

    result = nf.preview(banked, "colours", n=3)
    detections = [
        d
        for sample in banked.select(result["sample_ids"])
        for d in sample[result["field"]].detections
    ]
    assert detections
    assert all(detection_embedding(d) is None for d in detections)
    assert f"{result['field']}.detections.{EMBEDDING_ATTRIBUTE}" not in banked.get_field_schema(
        flat=True
    )


def test_apply_model_with_embeddings(banked):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.dataset.labels import detection_embedding

    model = nf.NTTModel(nf.load_bank(banked, "colours"), embeddings=True)
    view = banked.limit(2)
    model.apply(view, "applied")
    for sample in view:
        expected = _expected(banked, sample.id)
        got = [detection_embedding(d) for d in sample["applied"].detections]
        assert len(got) == len(expected) > 0
        np.testing.assert_allclose(np.stack(got), expected.features, atol=1e-3)


def test_segment_with_embeddings_writes_the_matched_vectors(banked):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.dataset.labels import detection_embedding

    summary = nf.segment(banked, "colours", "ntt", embeddings=True, progress=False)
    assert summary["processed"] > 0
    for sample in banked.exists("ntt").limit(2):
        expected = _expected(banked, sample.id)
        got = [detection_embedding(d) for d in sample["ntt"].detections]
        assert len(got) == len(expected) > 0
        np.testing.assert_allclose(np.stack(got), expected.features, atol=1e-3)
    # the run records the option: a rerun without it is another run's settings
    with pytest.raises(ValueError, match="another run"):
        nf.segment(banked, "colours", "ntt", progress=False)
