"""Issue 22 §1: a predictions field written without features gets them recomputed from its
stored masks (features only: no new masks), equal to the features kept while segmenting.
Real MongoDB, painted images, the fake models."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.integration

GT = "ground_truth"
KEPT, PLAIN = "kept", "plain"
#: float16 keeps ~11 bits: unit vectors agree to 2**-10 per component
FLOAT16 = 2.0**-10


@pytest.fixture
def square_painted(make_dataset, fo_session, tmp_path, monkeypatch):
    """The painted dataset at 256 x 256 (the fake proposer's low-res size: the stored masks
    are the matched low-res masks), boxes doubled."""
    import ntt_painted

    monkeypatch.setenv("FIFTYONE_NTT_TEST_MODELS", "fake")
    monkeypatch.setenv("FIFTYONE_NTT_BANKS_DIR", str(tmp_path / "banks"))
    layouts = [
        [(c, tuple(2 * v for v in box), label) for c, box, label in layout]
        for layout in ntt_painted.PAINT_LAYOUTS
    ]
    monkeypatch.setattr(ntt_painted, "IMAGE_SIZE", (256, 256))
    monkeypatch.setattr(ntt_painted, "PAINT_LAYOUTS", layouts)
    return ntt_painted.fill_painted_dataset(make_dataset("ntt-square"), tmp_path)


def _segment_twice(dataset):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.config import NTTConfig

    config = NTTConfig(points_per_side=16)
    nf.build_bank(dataset, GT, "colours", config=config)
    nf.segment(dataset, "colours", KEPT, config=config.replace(keep_features=True), progress=False)
    nf.segment(dataset, "colours", PLAIN, config=config, progress=False)


def _vectors(dataset, field):
    from fiftyone_ntt.fiftyone.dataset.labels import EMBEDDING_ATTRIBUTE, decode_embedding

    values = dataset.values(f"{field}.detections.{EMBEDDING_ATTRIBUTE}", unwind=True)
    return [decode_embedding(v) for v in values]


def test_recomputed_features_equal_the_kept_ones(square_painted, field_hash):
    from fiftyone_ntt.fiftyone.analysis.features import feature_count, recompute_features

    dataset = square_painted
    _segment_twice(dataset)
    masks_before = dataset.values(f"{PLAIN}.detections.mask", unwind=True)
    assert feature_count(dataset, PLAIN) == (0, len(masks_before)) and masks_before

    seen = []
    result = recompute_features(dataset, PLAIN, progress=lambda d, t: seen.append((d, t)))
    assert result["computed"] == len(masks_before) and result["kept"] == 0
    assert result["bank_key"] == "colours" and result["bank_version"] == 1
    assert not result["failures"] and seen[-1] == (result["samples"], result["samples"])
    kept, recomputed = _vectors(dataset, KEPT), _vectors(dataset, PLAIN)
    assert len(kept) == len(recomputed)
    np.testing.assert_allclose(np.stack(recomputed), np.stack(kept), atol=FLOAT16, rtol=0)
    # features only: the masks, boxes and scores are those the run wrote
    after = dataset.values(f"{PLAIN}.detections.mask", unwind=True)
    assert all(np.array_equal(a, b) for a, b in zip(masks_before, after))
    # a second call leaves what has a feature alone
    again = recompute_features(dataset, PLAIN)
    assert again["computed"] == 0 and again["kept"] == len(kept)
    assert feature_count(dataset, PLAIN) == (len(kept), len(kept))


def test_map_operator_offers_and_computes_missing_features(painted_dataset):
    # 96 x 128 images: the stored masks were downsampled from the low-res grid, so only
    # boundary cells can differ; the vectors keep their direction, and the field maps
    import fiftyone.operators as foo
    from test_ntt_operators import _form

    dataset = painted_dataset
    _segment_twice(dataset)
    params = {"pred_field": PLAIN, "bank": "colours", "method": "pca"}
    form = _form("ntt_map_predictions", dataset, params)["type"]["properties"]
    assert form["recompute_features"]["default"] is True
    assert "have no feature" in form["recompute_features"]["view"]["description"]
    assert (
        "recompute_features"
        not in _form("ntt_map_predictions", dataset, {**params, "pred_field": KEPT})["type"][
            "properties"
        ]
    )

    uri = "@fiftyone-ntt/no-time-to-train/ntt_map_predictions"
    refused = foo.execute_operator(uri, dataset=dataset, params=params).result
    assert "embeddings=True" in refused["error"]
    out = foo.execute_operator(
        uri, dataset=dataset, params={**params, "recompute_features": True}
    ).result
    kept, recomputed = np.stack(_vectors(dataset, KEPT)), np.stack(_vectors(dataset, PLAIN))
    assert out["recomputed"] == len(kept) > 0 and out["skipped"] == 0, out
    assert out["roles"]["reference"] == 3
    cosines = (kept * recomputed).sum(axis=1)
    assert cosines.min() > 0.99, cosines
