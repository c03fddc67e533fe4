"""``scripts/bench_floor.py`` counts every multiply-add the pipeline executes.

``torch.utils.flop_counter`` knows out-of-place products only; the CPU decoder's upscaling
runs ``baddbmm_``/``addmm_`` in place and its hypernetwork product as ``mv``, which it would
count as zero (the floor table of 2026-11-26 17:22 missed ~140 GMAC that way).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from bench_floor import MacCounter

CASES = {
    "baddbmm_": (lambda a, b, c, v: c.baddbmm_(a, b), 2 * 8 * 16 * 32),
    "baddbmm": (lambda a, b, c, v: torch.baddbmm(c, a, b), 2 * 8 * 16 * 32),
    "addmm_": (lambda a, b, c, v: c[0].addmm_(a[0], b[0]), 8 * 16 * 32),
    "bmm out=": (lambda a, b, c, v: torch.bmm(a, b, out=c), 2 * 8 * 16 * 32),
    "mv": (lambda a, b, c, v: torch.mv(a[0], v), 8 * 16),
    "mv out=": (lambda a, b, c, v: torch.mv(a[0], v, out=c[0, :, 0]), 8 * 16),
    "addmv_": (lambda a, b, c, v: c[0, :, 0].addmv_(a[0], v), 8 * 16),
    "addcmul (no MACs)": (lambda a, b, c, v: torch.addcmul(c, c, c), 0),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_mac_counter_counts_in_place_and_matrix_vector_products(name: str) -> None:
    fn, expected = CASES[name]
    a, b = torch.randn(2, 8, 16), torch.randn(2, 16, 32)
    c, v = torch.zeros(2, 8, 32), torch.randn(16)
    counter = MacCounter()
    with counter("stage"):
        fn(a, b, c, v)
    assert counter.macs.get("stage", 0.0) == expected
