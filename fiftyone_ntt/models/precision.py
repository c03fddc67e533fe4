"""What the precision settings need from the machine: native bfloat16 on CPUs, TF32 on GPUs.

* ``bfloat16`` on a CPU is worth it only with native bfloat16 instructions (AVX512-BF16 or
  AMX); elsewhere PyTorch emulates it, slower than float32, so the setting then falls back
  to float32 with a message that says why.
* ``tf32`` keeps float32 tensors and lets CUDA matrix products and convolutions use TF32
  tensor cores (Ampere and newer): a process-wide PyTorch switch.
"""

from __future__ import annotations

import functools
import platform

import torch

__all__ = ["CPU_BF16_FLAGS", "cpu_bf16_flags", "cpu_has_native_bf16", "enable_tf32"]

#: ``/proc/cpuinfo`` flags of native bfloat16 arithmetic.
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_bf16_flags(cpuinfo: str | None = None) -> set[str] | None:
    """The native-bfloat16 flags this CPU reports, or None where that cannot be read (not
    Linux).

    Args:
        cpuinfo: the text of ``/proc/cpuinfo`` (read from the file when None).
    """
    if cpuinfo is None:
        cpuinfo = _read_cpuinfo()
        if cpuinfo is None:
            return None
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.split(":", 1)[0].strip() in ("flags", "Features"):
            flags.update(line.split(":", 1)[1].split())
    return {f for f in CPU_BF16_FLAGS if f in flags}


@functools.lru_cache(maxsize=1)
def _read_cpuinfo() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU computes bfloat16 natively (AVX512-BF16 or AMX; Apple silicon and
    other ARM CPUs with ``bf16`` count too)."""
    flags = cpu_bf16_flags(cpuinfo)
    if flags is None:
        return platform.machine().lower() in ("arm64", "aarch64") and _arm_bf16()
    return bool(flags)


def _arm_bf16() -> bool:
    text = _read_cpuinfo() or ""
    return " bf16" in text


def cpu_bf16_missing_message(precision: str = "bfloat16") -> str:
    """Why ``precision="bfloat16"`` runs float32 on this CPU, and what to do."""
    return (
        f"precision={precision!r} on the CPU needs native bfloat16 (a CPU flag "
        f"{' or '.join(CPU_BF16_FLAGS)} in /proc/cpuinfo), which this CPU lacks: PyTorch "
        "would emulate it, slower than float32. Running float32 instead; use a CPU with "
        "AVX512-BF16 or AMX (e.g. Intel Cooper Lake, Sapphire Rapids, AMD Zen 4) or a GPU"
    )


def enable_tf32() -> None:
    """Let CUDA matmuls and convolutions use TF32 (process-wide; no effect on CPUs)."""
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
