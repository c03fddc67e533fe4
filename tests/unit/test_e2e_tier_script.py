"""``scripts/e2e_tier.sh`` (the browser tier of ``make test``): a failed browser test gets one
more attempt, a test that fails twice fails the tier, and every rerun is recorded.

Each case runs the real script with the real pytest over a throwaway ``tests/e2e`` folder.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "e2e_tier.sh"

#: A test that fails on its first run in a folder and passes after (a marker file).
FLAKY = """
from pathlib import Path

def test_flaky():
    marker = Path("ran-once")
    first = not marker.exists()
    marker.write_text("1")
    assert not first, "first attempt fails"
"""
BROKEN = """
def test_broken():
    assert 1 == 2
"""
FINE = """
def test_fine():
    assert True
"""


def _tier(tmp_path: Path, tests: dict[str, str]) -> tuple[int, str, str]:
    """Run the script in ``tmp_path`` over ``tests`` (file name -> source): (exit status, its
    log, test-artifacts/e2e-reruns.txt or "" when absent)."""
    folder = tmp_path / "tests" / "e2e"
    folder.mkdir(parents=True)
    for name, source in tests.items():
        (folder / name).write_text(textwrap.dedent(source))
    artifacts = tmp_path / "test-artifacts"
    artifacts.mkdir()
    (artifacts / "shot.png").write_bytes(b"first attempt's screenshot")
    log = artifacts / "pytest-e2e.log"
    done = subprocess.run(
        ["bash", str(SCRIPT), sys.executable, str(log)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    reruns = artifacts / "e2e-reruns.txt"
    return done.returncode, log.read_text(), reruns.read_text() if reruns.exists() else ""


def test_a_test_that_fails_once_passes_on_its_second_attempt_and_is_recorded(tmp_path):
    rc, log, reruns = _tier(tmp_path, {"test_a.py": FLAKY, "test_b.py": FINE})
    assert rc == 0, log
    assert "tests/e2e/test_a.py::test_flaky: passed on the second attempt" in reruns
    assert "test_b" not in reruns  # only what failed is run again
    assert "first attempt fails" in log  # the first failure stays in the log
    assert "1 passed" in log.split("once more, only what failed")[1]
    # the first attempt's artifacts are kept aside, the log stays where it was
    first = tmp_path / "test-artifacts" / "e2e-first-attempt"
    assert (first / "shot.png").read_bytes() == b"first attempt's screenshot"
    assert not (first / "pytest-e2e.log").exists()


def test_a_test_that_fails_twice_fails_the_tier(tmp_path):
    rc, log, reruns = _tier(tmp_path, {"test_a.py": BROKEN, "test_b.py": FLAKY})
    assert rc == 1, log
    assert "tests/e2e/test_a.py::test_broken: failed twice" in reruns
    assert "tests/e2e/test_b.py::test_flaky: passed on the second attempt" in reruns


def test_a_tier_that_passes_runs_once_and_records_no_rerun(tmp_path):
    rc, log, reruns = _tier(tmp_path, {"test_b.py": FINE})
    assert rc == 0, log
    assert reruns == ""
    assert "once more" not in log
    assert not (tmp_path / "test-artifacts" / "e2e-first-attempt").exists()


def test_a_crash_with_no_failed_test_recorded_keeps_its_exit_status(tmp_path):
    # a conftest that cannot be imported: pytest stops before any test (exit 4: usage error)
    rc, log, reruns = _tier(tmp_path, {"conftest.py": "raise SystemError('no App')", "t.py": ""})
    assert rc == 4, log
    assert "SystemError: no App" in log
    assert "(exit 4, then 4)" in reruns
