"""No module of the package or the plugin grows past 500 lines (issue 21): a module that big
holds more than one responsibility; split it by what it does before adding to it."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LIMIT = 500


def _too_long(root: Path, limit: int = LIMIT) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > limit:
            found.append(f"{path.relative_to(REPO)}: {lines} lines")
    return found


@pytest.mark.parametrize("package", ["fiftyone_ntt", "operators"])
def test_no_module_is_over_500_lines(package):
    assert _too_long(REPO / package) == []


def test_the_check_sees_a_long_module():
    """The same scan with a lower limit finds modules (else the test above proves nothing)."""
    assert _too_long(REPO / "fiftyone_ntt", limit=300)
