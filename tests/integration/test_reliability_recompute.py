"""Reliability of recomputing features from stored masks (issue 22 §1), table-driven.

Every bad request is refused with a message naming the value and the fix, before any label is
written; bad samples in a long run (an image that cannot be read, a prediction without a
mask) are skipped and reported, the others get their features.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

GT = "ground_truth"
PLAIN = "plain_predictions"  # segmented without features


@pytest.fixture(scope="module")
def base(fo_session, tmp_path_factory):
    """A painted dataset, bank ``colours``, predictions without features in ``PLAIN``."""
    import uuid

    from ntt_painted import fill_painted_dataset

    import fiftyone_ntt.fiftyone as nf

    folder = tmp_path_factory.mktemp("recompute")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FIFTYONE_NTT_TEST_MODELS", "fake")
        patch.setenv("FIFTYONE_NTT_BANKS_DIR", str(folder / "banks"))
        dataset = fill_painted_dataset(
            fo_session.Dataset(f"ntt-recompute-{uuid.uuid4().hex[:8]}"), folder / "images"
        )
        nf.build_bank(dataset, GT, "colours")
        nf.segment(dataset, "colours", PLAIN, points_per_side=8, progress=False)
        yield dataset
    dataset.delete()


@pytest.fixture
def dataset(base, monkeypatch):
    """A clone of ``base`` that knows its banks (the bank files are only read)."""
    from fiftyone_ntt.fiftyone.dataset.store import execution_store

    monkeypatch.setenv("FIFTYONE_NTT_TEST_MODELS", "fake")
    copy = base.clone()
    source, target = execution_store(base), execution_store(copy)
    for key in source.list_keys():
        target.set(key, source.get(key))
    yield copy
    copy.delete()


def _string_field(dataset):
    dataset.set_values("note", ["x"] * len(dataset))
    return "note", "colours", {}


def _copied(dataset):
    """The predictions in a field without a run record (no bank to take the encoder from)."""
    dataset.set_values("copied", dataset.values(PLAIN))
    return "copied", None, {}


def _other_encoder(dataset):
    info = dataset.get_run_info(PLAIN)
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
    dataset.update_run_config(PLAIN, info.config)
    return PLAIN, "colours", {}


#: (id, maker(dataset) -> (field, bank key, extra kwargs), expected error words).
REFUSED_CASES = [
    ("missing-field", lambda d: ("nope", "colours", {}), ["'nope'", "does not exist"]),
    ("string-field", _string_field, ["'note'", "not Detections"]),
    ("ground-truth", lambda d: (GT, "colours", {}), [GT, "ground-truth field"]),
    ("no-run-no-bank", _copied, ["'copied'", "bank_key="]),
    ("unknown-bank", lambda d: (PLAIN, "shapes", {}), ["'shapes'"]),
    ("unknown-version", lambda d: (PLAIN, "colours", {"version": 7}), ["version 7"]),
    ("other-encoder", _other_encoder, [PLAIN, "dinov3", "fake-color"]),
]


def _no_features(dataset):
    from fiftyone_ntt.fiftyone.analysis.features import feature_count

    for field in (PLAIN, GT):
        assert feature_count(dataset, field)[0] == 0


@pytest.mark.parametrize(
    "make, words", [c[1:] for c in REFUSED_CASES], ids=[c[0] for c in REFUSED_CASES]
)
def test_bad_requests_are_refused_before_writing(dataset, make, words):
    from fiftyone_ntt.fiftyone.analysis.features import recompute_features

    field, bank_key, kwargs = make(dataset)
    with pytest.raises((ValueError, KeyError)) as caught:
        recompute_features(dataset, field, bank_key, **kwargs)
    message = str(caught.value)
    for word in words:
        assert word in message, message
    _no_features(dataset)


def _delete_image(dataset):
    sample = dataset.exists(PLAIN).first()
    sample.filepath = sample.filepath.replace(".png", "-gone.png")
    sample.save()
    return [sample.id], 0


def _garbage_image(dataset):
    from pathlib import Path

    samples = dataset.exists(PLAIN).limit(2)
    ids = []
    for sample in samples:
        path = Path(sample.filepath).with_name(f"garbage-{sample.id}.png")
        path.write_bytes(b"not a png at all")
        sample.filepath = str(path)
        sample.save()
        ids.append(sample.id)
    return ids, 0


def _box_only(dataset):
    sample = dataset.exists(PLAIN).first()
    for detection in sample[PLAIN].detections:
        detection.mask = None
    sample.save()
    return [], len(sample[PLAIN].detections)


#: (id, maker(dataset) -> (sample ids that fail, predictions without a mask))
SKIPPED_CASES = [
    ("image-deleted", _delete_image),
    ("image-not-an-image", _garbage_image),
    ("box-only-predictions", _box_only),
]


@pytest.mark.parametrize("make", [c[1] for c in SKIPPED_CASES], ids=[c[0] for c in SKIPPED_CASES])
def test_bad_samples_are_skipped_and_reported(dataset, make):
    from fiftyone_ntt.fiftyone.analysis.features import feature_count, recompute_features

    failing, without_mask = make(dataset)
    total = feature_count(dataset, PLAIN)[1]
    lost = sum(len(dataset[i][PLAIN].detections) for i in failing)
    result = recompute_features(dataset, PLAIN)
    assert sorted(f["sample_id"] for f in result["failures"]) == sorted(failing)
    assert all(f["filepath"] and f["error"] for f in result["failures"])
    assert result["without_mask"] == without_mask
    assert result["computed"] == total - lost - without_mask > 0
    assert feature_count(dataset, PLAIN)[0] == result["computed"]


def _count_cases() -> dict[str, int]:
    return {
        "recompute features: refused requests": len(REFUSED_CASES),
        "recompute features: bad samples skipped": len(SKIPPED_CASES),
    }
