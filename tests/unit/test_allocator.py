"""``reuse_large_buffers``: large tensors allocated again reuse freed memory.

Checked in child processes (the setting is process-wide): a 64 MB tensor allocated and freed
20 times page-faults ~16,000 fresh pages every time with glibc's defaults; with the
thresholds raised, the heap grows for the first few (aligned allocations do not fit the hole
the previous one left until holes merge) and then reuses freed memory.
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
    counts = []
    for _ in range(20):
        before = faults()
        x = torch.ones(16 * 1024 * 1024)  # 64 MB, above glibc's largest default threshold
        counts.append(faults() - before)
        assert float(x.sum()) == 16 * 1024 * 1024  # the memory holds what was written
        del x
    print(int(applied), sum(counts[5:]))
    """
)


def _run(mode: str, env: dict[str, str] | None = None) -> tuple[bool, int]:
    """Whether reuse applied, and the page faults of allocations 6 to 20."""
    full_env = {**os.environ, **(env or {})}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode],
        capture_output=True,
        text=True,
        check=True,
        env=full_env,
        timeout=120,
    ).stdout.split()
    return bool(int(out[0])), int(out[1])


PAGES = 64 * 1024 * 1024 // os.sysconf("SC_PAGE_SIZE")  # one tensor's pages


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_large_tensors_allocated_again_reuse_the_freed_memory() -> None:
    applied, reused_faults = _run("apply")
    assert applied
    _, default_faults = _run("default")
    assert default_faults > 12 * PAGES, default_faults  # glibc's default: fresh pages each time
    assert reused_faults < 5 * PAGES, reused_faults  # at least 10 of those 15 reuse memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_environment_switch_keeps_the_default() -> None:
    applied, faults = _run("apply", {"NTT_REUSE_LARGE_BUFFERS": "0"})
    assert not applied
    assert faults > 12 * PAGES, faults


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
