"""The bad-input matrix as a whole (issue 9 §3): every reliability file declares the cases it
covers with ``_count_cases()``, and together they cover at least 70."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

MINIMUM_CASES = 70


def test_the_matrix_covers_at_least_seventy_cases():
    tests = Path(__file__).resolve().parents[1]
    files = sorted(tests.glob("*/test_reliability*.py"))
    counted = {}
    for path in files:
        if path.stem in ("test_reliability_runs", "test_reliability_matrix"):
            continue  # interrupted/overlapping runs, and this file: no input table
        module = importlib.import_module(path.stem)
        counts = module._count_cases()
        assert counts and all(n > 0 for n in counts.values()), (path.name, counts)
        counted[path.stem] = sum(counts.values())
    assert {"test_reliability", "test_reliability_hub", "test_reliability_loop"} <= set(counted)
    assert sum(counted.values()) >= MINIMUM_CASES, counted
