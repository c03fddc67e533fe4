"""Throughput of batched prediction (issue 13 §2): images/s, per-stage times, peak memory.

Usage:

    python scripts/bench_batch.py --device cuda --batch-images 1,4,8 --arch large
    python scripts/bench_batch.py --device cuda --batch-images 1,8 --precision bfloat16
    python scripts/bench_batch.py --device cpu --arch tiny --images 6 --batch-images 1,3  # smoke

Random weights (no download) give the real amount of work for the architecture (models from
``scripts/bench.py``'s ``build_models``; ``--arch tiny`` uses the tiny test models). The
images are random, of two sizes (``--size`` and its transpose) mixed in every batch, read
through :meth:`Segmenter.predict_many` (loader thread, pinned memory on CUDA), like
``segment`` does. Every batch size in ``--batch-images`` runs in the same process on the same
device, the first one being the baseline of the ratio printed last. Stage times are
synchronised with the GPU (``torch.cuda.synchronize``) so that they measure the stage, not
the launch. Peak memory: ``torch.cuda.max_memory_allocated`` on CUDA, peak RSS on CPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

STAGES = ("dinov2", "sam2_encoder", "sam2_decoder", "matching", "nms", "upsample", "merging")


def _models(arch: str, device: str, precision: str):
    from fiftyone_ntt.models import resolve_device

    resolved = str(resolve_device(device))
    if arch == "tiny":
        from fiftyone_ntt.models import tiny_encoder, tiny_proposer

        return tiny_encoder(device=resolved, precision=precision), tiny_proposer(
            device=resolved, precision=precision
        )
    from bench import build_models  # the random-weight architectures of scripts/bench.py

    encoder, proposer = build_models(arch, resolved, "2.0")
    if precision != "float32":
        from fiftyone_ntt.models.dinov2 import Dinov2Encoder
        from fiftyone_ntt.models.sam2 import Sam2Proposer

        encoder = Dinov2Encoder(
            encoder.model, source="random", device=resolved, precision=precision, arch=arch
        )
        proposer = Sam2Proposer(
            proposer.model, source="random", device=resolved, precision=precision, arch=arch
        )
    return encoder, proposer


def _bank(encoder, classes: int = 5, shots: int = 10):
    from fiftyone_ntt.memory_bank import MemoryBank

    rng = np.random.default_rng(0)
    n = classes * shots
    return MemoryBank(
        features=rng.standard_normal((n, encoder.feature_dim)).astype(np.float32),
        class_ids=np.repeat(np.arange(classes), shots),
        class_names=tuple(f"class{i}" for i in range(classes)),
        reference_ids=tuple(str(i) for i in range(n)),
        generated_masks=np.zeros(n, dtype=bool),
        encoder=dict(encoder.identity),
        settings={"reference_context_ratio": 0.2, "reference_size": 518},
    )


def _images(count: int, size: tuple[int, int]) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    width, height = size
    shapes = [(height, width, 3), (width, height, 3)]
    return [rng.integers(0, 256, shapes[i % 2], dtype=np.uint8) for i in range(count)]


def _peak_memory(device: torch.device) -> float:
    """MiB: peak GPU memory allocated since the last reset, or the process's peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(segmenter, images, batch_images: int, prefetch: int) -> dict:
    from fiftyone_ntt.segmenter import StageTimer

    device = segmenter.proposer.device
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None
    # warm-up: one batch (kernel selection, allocator) is not timed
    list(segmenter.predict_many(images[:batch_images], batch_images=batch_images))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    timer = StageTimer(synchronize=sync)
    start = time.perf_counter()
    detections = sum(
        len(p)
        for p in segmenter.predict_many(
            images, batch_images=batch_images, prefetch=prefetch, timer=timer
        )
    )
    if sync:
        sync()
    seconds = time.perf_counter() - start
    n = len(images)
    return {
        "batch_images": batch_images,
        "images": n,
        "seconds": round(seconds, 3),
        "images_per_s": round(n / seconds, 3),
        "stage_s_per_image": {k: round(timer.seconds.get(k, 0.0) / n, 4) for k in STAGES},
        "peak_memory_mib": round(_peak_memory(device), 1),
        "detections": detections,
    }


def precision_deltas(fast, exact, images) -> dict:
    """How predictions under a lower precision differ from float32 on the same images.

    Detections are paired by rank. Returns the share of float32 detections found identical
    (same rank, label and mask), and over all pairs the worst score difference and the mean
    mask IoU (a pair with another label counts with its masks all the same: what the user sees
    at that rank).
    """
    same = total = pairs = 0
    worst = 0.0
    ious: list[float] = []
    for image in images:
        a, b = fast.predict(image), exact.predict(image)
        total += len(b)
        for i in range(min(len(a), len(b))):
            pairs += 1
            worst = max(worst, abs(float(a.scores[i]) - float(b.scores[i])))
            union = np.logical_or(a.masks[i], b.masks[i]).sum()
            ious.append(
                float(np.logical_and(a.masks[i], b.masks[i]).sum() / union) if union else 1.0
            )
            if a.labels[i] == b.labels[i] and np.array_equal(a.masks[i], b.masks[i]):
                same += 1
    return {
        "identical_share": round(same / total, 4) if total else None,
        "detections_float32": total,
        "detections_other": pairs,
        "worst_score_difference": round(worst, 6) if pairs else None,
        "mean_mask_iou": round(float(np.mean(ious)), 4) if ious else None,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--arch", default="large", help="tiny, small, base_plus or large")
    parser.add_argument("--batch-images", default="1,4", help="comma-separated, e.g. 1,4,8")
    parser.add_argument("--images", type=int, default=16, help="images per batch size")
    parser.add_argument("--size", default="640x480", help="WxH; its transpose is mixed in")
    parser.add_argument(
        "--precision", default="float32", choices=("float32", "tf32", "bfloat16", "float16")
    )
    parser.add_argument("--points-per-side", type=int, default=32)
    parser.add_argument("--prefetch", type=int, default=2)
    parser.add_argument(
        "--compare-float32",
        action="store_true",
        help="with another --precision: also report its deltas to float32 on the images",
    )
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    from fiftyone_ntt.config import NTTConfig
    from fiftyone_ntt.segmenter import Segmenter

    sizes = [int(b) for b in args.batch_images.split(",") if b.strip()]
    width, height = (int(v) for v in args.size.lower().split("x"))
    encoder, proposer = _models(args.arch, args.device, args.precision)
    config = NTTConfig(points_per_side=args.points_per_side)
    segmenter = Segmenter(encoder, proposer, _bank(encoder), config)
    images = _images(args.images, (width, height))
    device = proposer.device
    machine = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    )
    results = [run_one(segmenter, images, b, args.prefetch) for b in sizes]

    print(
        f"\n{args.arch}, {args.precision}, {args.images} images ({width}x{height} and "
        f"{height}x{width}), {args.points_per_side}² prompts, on {device} ({machine}), "
        f"torch {torch.__version__}\n"
    )
    memory = "peak GPU MiB" if device.type == "cuda" else "peak RSS MiB"
    print(f"| B | images/s | {' | '.join(STAGES)} (s/image) | {memory} |")
    print("|---|---|" + "---|" * len(STAGES) + "---|")
    for r in results:
        stages = " | ".join(f"{r['stage_s_per_image'][k]:.4f}" for k in STAGES)
        print(
            f"| {r['batch_images']} | {r['images_per_s']:.3f} | {stages} | {r['peak_memory_mib']} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "runs": results}, indent=2))
    if args.compare_float32 and args.precision != "float32":
        encoder32, proposer32 = _models(args.arch, args.device, "float32")
        exact = Segmenter(encoder32, proposer32, _bank(encoder32), config)
        deltas = precision_deltas(segmenter, exact, images)
        print(
            f"{args.precision} vs float32: {100 * (deltas['identical_share'] or 0):.1f}% of "
            f"{deltas['detections_float32']} detections identical (rank, label, mask); over "
            f"the {deltas['detections_other']} rank-paired detections: worst score difference "
            f"{deltas['worst_score_difference']}, mean mask IoU {deltas['mean_mask_iou']}"
        )
    base = results[0]
    for r in results[1:]:
        ratio = r["images_per_s"] / base["images_per_s"]
        print(f"B={r['batch_images']} vs B={base['batch_images']}: {ratio:.2f}x images/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
