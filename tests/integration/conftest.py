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
