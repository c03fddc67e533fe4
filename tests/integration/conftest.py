"""Integration tier: real FiftyOne with a real MongoDB.

The session's isolation (its own database folder, dataset folder and plugins folder, set
before fiftyone is imported) is done in ``tests/conftest.py``; this file adds fixtures for
tests that need datasets of their own.
"""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def make_dataset(fo_session):
    """Factory for empty, uniquely named datasets that are deleted after the test."""
    created = []

    def make(prefix: str = "ntt-it"):
        dataset = fo_session.Dataset(f"{prefix}-{uuid.uuid4().hex[:8]}")
        created.append(dataset)
        return dataset

    yield make
    for dataset in created:
        if not dataset.deleted:
            dataset.delete()


@pytest.fixture
def painted_dataset(make_dataset, fo_session, tmp_path, monkeypatch):
    """A dataset of flat-colour images with exact instance masks in ``ground_truth``; the
    fake models are selected (``FIFTYONE_NTT_TEST_MODELS=fake``) and banks go to a
    temporary folder. Three references are tagged ``ntt:ref`` (samples 0 and 1)."""
    from ntt_painted import fill_painted_dataset

    monkeypatch.setenv("FIFTYONE_NTT_TEST_MODELS", "fake")
    monkeypatch.setenv("FIFTYONE_NTT_BANKS_DIR", str(tmp_path / "banks"))
    return fill_painted_dataset(make_dataset("ntt-painted"), tmp_path)


@pytest.fixture
def field_hash():
    """``field_hash(dataset, field)``: SHA-256 of a field's stored values, as MongoDB holds
    them (label ids, boxes, masks, tags, attributes)."""
    import hashlib

    import bson

    def compute(dataset, field: str) -> str:
        digest = hashlib.sha256()
        for doc in dataset._sample_collection.find({}, {field: 1}).sort("_id", 1):
            digest.update(bson.encode({"v": doc.get(field)}))
        return digest.hexdigest()

    return compute
