"""``reuse_large_buffers``: a large tensor allocated again reuses the freed memory.

Checked in child processes (the setting is process-wide): a 64 MB tensor filled, freed and
filled again page-faults ~16,000 fresh pages the second time with glibc's defaults, and
almost none once the thresholds are raised.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent(
    """
    import resource, sys, torch
    from fiftyone_ntt.models.allocator import reuse_large_buffers
    applied = reuse_large_buffers() if sys.argv[1] == "apply" else False
    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.ones(16 * 1024 * 1024)  # 64 MB, above glibc's largest default mmap threshold
    del x
    before = faults()
    y = torch.ones(16 * 1024 * 1024)
    print(int(applied), faults() - before, float(y.sum()))
    """
)


def _run(mode: str, env: dict[str, str] | None = None) -> tuple[bool, int]:
    full_env = {**os.environ, **(env or {})}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode],
        capture_output=True,
        text=True,
        check=True,
        env=full_env,
        timeout=120,
    ).stdout.split()
    assert float(out[2]) == 16 * 1024 * 1024  # the memory still holds what was written
    return bool(int(out[0])), int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_second_large_tensor_reuses_the_freed_memory() -> None:
    applied, reused_faults = _run("apply")
    assert applied
    _, default_faults = _run("default")
    pages = 64 * 1024 * 1024 // os.sysconf("SC_PAGE_SIZE")
    assert default_faults > pages // 2, default_faults  # glibc's default: fresh pages
    assert reused_faults < pages // 20, reused_faults


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_environment_switch_keeps_the_default() -> None:
    applied, faults = _run("apply", {"NTT_REUSE_LARGE_BUFFERS": "0"})
    assert not applied
    assert faults > 64 * 1024 * 1024 // os.sysconf("SC_PAGE_SIZE") // 2


RELEASE_CHILD = textwrap.dedent(
    """
    import os, sys, torch
    from fiftyone_ntt.models.allocator import release_free_memory, reuse_large_buffers
    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    assert reuse_large_buffers()
    x = torch.ones(64 * 1024 * 1024)  # 256 MB
    del x
    kept = rss()
    released = release_free_memory() if sys.argv[1] == "release" else False
    print(int(released), kept - rss())
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
@pytest.mark.parametrize("mode", ["release", "keep"])
def test_release_gives_the_kept_buffers_back(mode: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", RELEASE_CHILD, mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.split()
    released, freed = bool(int(out[0])), int(out[1])
    if mode == "release":
        assert released and freed > 200 * 2**20, freed
    else:  # reuse keeps the freed 256 MB resident for the next tensor of that size
        assert freed < 16 * 2**20, freed
