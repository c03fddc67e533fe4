"""How far each stage is from this CPU's arithmetic floor: multiply-adds per stage vs the
machine's float32 matrix-product rate.

Usage:

    python scripts/bench_floor.py                    # Large models, paper preset, 640x480
    python scripts/bench_floor.py --bench-json /tmp/bench.json   # + a `make bench` run's times

It builds the models of ``scripts/bench.py`` (random weights), then

1. times one image stage by stage (as ``scripts/bench.py`` does, without the reference-style
   run),
2. runs the same image again under ``torch.utils.flop_counter.FlopCounterMode`` per stage,
   counting the multiply-adds (MACs) of every matrix product and convolution our pipeline
   really executes (CPU scaled-dot-product attention included),
3. measures the best float32 matrix-product rate of this CPU on shapes the models use
   (best of 5, same threads),

and prints, per stage: MACs, measured seconds, the floor ``MACs / peak rate`` and the share of
the peak reached. Elementwise work (LayerNorm, softmax, GELU, copies) counts no MACs: the gap
between the floor and the time is that memory traffic plus below-peak products. With
``--bench-json`` (from ``scripts/bench.py --reference-style --json``) it also prints the
end-to-end time a target ratio to the reference-style re-enactment allows and the floor.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import build_models, random_bank

from fiftyone_ntt.config import get_preset
from fiftyone_ntt.segmenter import Segmenter, StageTimer

STAGES = ("preprocess", "dinov2", "sam2_encoder", "sam2_decoder", "matching", "nms")

#: (m, k, n) products the models run: DINOv2-L MLP, Hiera-L stage-3 qkv, decoder upscaling.
GEMM_SHAPES = ((1370, 1024, 4096), (4096, 576, 1728), (16384, 256, 256), (65536, 64, 128))


def _cpu_sdpa(query, key, value, *args, out_shape=None, **kwargs) -> int:
    # FlopCounterMode knows the CUDA attention kernels; CPU runs this one (same maths).
    return sdpa_flop_count(query, key, value)


def _matrix_product(a_shape, b_shape) -> int:
    """FLOPs (2 per multiply-add) of ``a @ b`` for ``(…, m, k) @ (…, k, n)`` or ``(m, k) @ (k,)``."""
    batch = 1
    for size in a_shape[:-2]:
        batch *= size
    m, k = a_shape[-2], a_shape[-1]
    n = b_shape[-1] if len(b_shape) > 1 else 1
    return 2 * batch * m * k * n


def _in_place_product(self_shape, a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    # baddbmm_/addmm_/addmv_(self, a, b): the counter knows only the out-of-place ops.
    return _matrix_product(a_shape, b_shape)


def _mv(a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    return _matrix_product(a_shape, b_shape)


#: Products FlopCounterMode does not count on its own (CPU attention, in place,
#: matrix-vector): the CPU decoder's upscaling runs ``upscale_conv1`` as
#: ``baddbmm_``/``addmm_`` and its hypernetwork product as ``mv``.
EXTRA_PRODUCTS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa,
    torch.ops.aten.baddbmm_: _in_place_product,
    torch.ops.aten.addmm_: _in_place_product,
    torch.ops.aten.addmv_: _in_place_product,
    torch.ops.aten.addmv: _in_place_product,
    torch.ops.aten.mv: _mv,
}


class MacCounter:
    """A ``StageTimer`` stand-in that counts multiply-adds per stage instead of seconds."""

    def __init__(self) -> None:
        self.macs: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        with FlopCounterMode(display=False, custom_mapping=EXTRA_PRODUCTS) as counter:
            yield
        self.macs[name] = self.macs.get(name, 0.0) + counter.get_total_flops() / 2


def gemm_peak(repeats: int = 5) -> dict[str, float]:
    """Best float32 multiply-add rate (GMAC/s) of ``a @ b`` per shape in :data:`GEMM_SHAPES`."""
    rates = {}
    for m, k, n in GEMM_SHAPES:
        a, b = torch.randn(m, k), torch.randn(k, n)
        a @ b  # warm-up
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
        rates[f"{m}x{k}@{k}x{n}"] = m * k * n / best / 1e9
    return rates


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="large", choices=["tiny", "small", "base", "large"])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--image", default="640x480")
    parser.add_argument("--bench-json", help="scripts/bench.py --reference-style --json output")
    parser.add_argument("--target-ratio", type=float, default=0.15)
    args = parser.parse_args(argv)

    width, height = (int(v) for v in args.image.lower().split("x"))
    encoder, proposer = build_models(args.arch, "cpu", "2.0" if args.preset == "paper" else "2.1")
    segmenter = Segmenter(encoder, proposer, random_bank(encoder, 20, 10), get_preset(args.preset))
    rng = np.random.default_rng(0)  # the image of scripts/bench.py
    small = rng.integers(0, 256, (height // 32 + 1, width // 32 + 1, 3), dtype=np.uint8)
    from PIL import Image

    image = np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC))

    load = [os.getloadavg()[0]]
    timer = StageTimer()
    start = time.perf_counter()
    segmenter.predict(image, timer=timer)
    total = time.perf_counter() - start
    counter = MacCounter()
    # FlopCounterMode sees only its own thread; with one thread the CPU decoder runs its passes
    # in the calling thread instead of on workers (the multiply-adds are the same).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        segmenter.predict(image, timer=counter)
    finally:
        torch.set_num_threads(threads)
    rates = gemm_peak()
    load.append(os.getloadavg()[0])
    peak = max(rates.values())

    print(
        f"# floor: threads {torch.get_num_threads()}, load average {load[0]:.1f} -> {load[1]:.1f}"
    )
    print("| product (m x k @ k x n) | GMAC/s float32 |\n|---|---|")
    for shape, rate in rates.items():
        print(f"| {shape} | {rate:.1f} |")
    print(f"\npeak used for the floors: {peak:.1f} GMAC/s\n")
    print("| stage | GMAC | measured (s) | floor at peak (s) | share of peak |")
    print("|---|---|---|---|---|")
    floor_total = 0.0
    for stage in STAGES:
        gmac = counter.macs.get(stage, 0.0) / 1e9
        seconds = timer.seconds.get(stage, 0.0)
        floor = gmac / peak
        floor_total += floor
        share = f"{floor / seconds:.0%}" if seconds > 0 and gmac > 0 else "-"
        print(f"| {stage} | {gmac:.1f} | {seconds:.2f} | {floor:.2f} | {share} |")
    print(f"| total | {sum(counter.macs.values()) / 1e9:.1f} | {total:.2f} | {floor_total:.2f} |")
    if args.bench_json:
        reference = json.loads(Path(args.bench_json).read_text())["results"]["reference-style"]
        allowed = args.target_ratio * reference["total_s"]
        print(
            f"\nreference-style total {reference['total_s']:.2f} s: a ratio of "
            f"{args.target_ratio} allows {allowed:.2f} s per image; the multiply-adds alone "
            f"need {floor_total:.2f} s at this CPU's peak float32 rate"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
