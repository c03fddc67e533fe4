"""Per-stage timing and peak memory of the pipeline, with random weights.

Usage (``make bench`` runs the first line):

    python scripts/bench.py --arch large --preset paper --image 640x480
    python scripts/bench.py --arch large --reference-style      # also time the reference's way
    python scripts/bench.py --arch tiny --repeats 3             # quick smoke run

Random weights give meaningless masks but the real amount of work for the architectures:
DINOv2 ViT-L/14 and SAM 2 Hiera-L (``--arch large``), built from their configs without any
download. ``--reference-style`` also times a re-enactment of the research code's computation
on the same modules and image (stock 4-mask decoder on every prompt, DINOv2 with attention
maps and the unused attention rollout, the 65536 x 1024 feature upsample and dense pooling
product, full-image float intersections for merging): the ratio of the two is what the
engine's performance target is about (docs/method.md §10). It is not the research code itself.

Results go to stdout as a Markdown table (paste into docs/benchmarks.md) and, with
``--json``, to a file; the ours/reference-style ratio is the last line. The machine line
gives the CPU model and the load average before and after: on a shared machine a load
average above the core count means the timings are inflated (rerun when it is quiet).

The re-enactment runs in a child process with glibc's default allocator settings, as the
research code runs: our engine raises glibc's mmap/trim thresholds for CPU inference
(``fiftyone_ntt/models/allocator.py``), which would otherwise speed up the re-enactment's
huge per-prompt tensors too (its decoder 99 s instead of 132 s, 2026-11-26). Each run's peak
RSS is then its own process's.

Duration of ``make bench`` (Large, ``--reference-style``) on the 2-vCPU development
machine when quiet: about 4 minutes (model build ~10 s, ours ~45 s, reference-style
~150 s); several times longer under load.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

from fiftyone_ntt.config import get_preset
from fiftyone_ntt.memory_bank import MemoryBank
from fiftyone_ntt.segmenter import Segmenter, StageTimer, point_grid


def _cpu_model() -> str:
    """The CPU's model name (``lscpu``'s), or the platform's processor string."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def build_models(arch: str, device: str, sam_version: str, precision: str = "float32"):
    """Random-weight encoder and proposer of the given size (no download)."""
    from transformers import Dinov2Model, Sam2Model

    from fiftyone_ntt.models.dinov2 import DINOV2_SPECS, Dinov2Architecture, Dinov2Encoder
    from fiftyone_ntt.models.sam2 import HIERA_SPECS, Sam2Architecture, Sam2Proposer

    if arch == "tiny":
        from fiftyone_ntt.models import tiny_encoder, tiny_proposer

        return tiny_encoder(device=device), tiny_proposer(device=device)
    torch.manual_seed(0)
    hiera = next(s for s in HIERA_SPECS.values() if s.arch == f"hiera_{arch}")
    vit = next(s for s in DINOV2_SPECS.values() if s.arch == f"vit_{arch}")
    channels = list(reversed(hiera.embed_dims))
    sam_arch = Sam2Architecture(
        spec=hiera,
        version=sam_version,
        fpn_hidden_size=256,
        backbone_channel_list=channels,
        decoder={"hidden_size": 256, "iou_head_depth": 3, "iou_head_hidden_dim": 256},
        prompt_encoder={"hidden_size": 256, "mask_input_channels": 16},
    )
    dino_arch = Dinov2Architecture(
        spec=vit,
        patch_size=14,
        image_size=518,
        registers=0,
        swiglu=False,
        mlp_ratio=4,
        qkv_bias=True,
    )
    sam = Sam2Model(sam_arch.to_config())
    dino = Dinov2Model(dino_arch.to_config())
    proposer = Sam2Proposer(
        sam,
        source=f"random {hiera.arch}",
        version=sam_version,
        device=device,
        arch=hiera.arch,
        precision=precision,
    )
    encoder = Dinov2Encoder(
        dino, source=f"random {vit.arch}", device=device, arch=vit.arch, precision=precision
    )
    return encoder, proposer


def random_bank(encoder, classes: int, shots: int) -> MemoryBank:
    """A bank of random features (reference embedding is not what is being timed)."""
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


def reference_style(image, encoder, proposer, bank, timer) -> int:
    """The research code's computation re-enacted on the same modules (see module doc)."""
    from PIL import Image

    sam = proposer.model
    dino = encoder.model
    height, width = image.shape[:2]
    with torch.inference_mode():
        with timer("preprocess"):
            pil = Image.fromarray(image).resize((1024, 1024), Image.Resampling.BICUBIC)
            tar = torch.from_numpy(np.array(pil)).permute(2, 0, 1).float() / 255.0
            dino_in = F.interpolate(tar[None], size=(518, 518), mode="bicubic")
            mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
            std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        with timer("dinov2"):
            # Non-fused attention with attention maps, plus the unused rollout (§10).
            dino.set_attn_implementation("eager")
            out = dino(pixel_values=(dino_in - mean) / std, output_attentions=True)
            feat = out.last_hidden_state[0, 1:]
            rollout = torch.eye(out.attentions[0].shape[-1])
            for att in out.attentions:
                a = att[0].mean(0)
                a = 0.5 * a + 0.5 * torch.eye(a.shape[-1])
                rollout = (a / a.sum(-1, keepdim=True)) @ rollout
            dino.set_attn_implementation("sdpa")
        with timer("sam2_encoder"):
            feats = sam.get_image_features((tar[None] - mean) / std).fpn_hidden_states
            sizes = sam.backbone_feature_sizes
            embs = [f.permute(1, 2, 0).view(1, -1, *s) for f, s in zip(feats, sizes)]
        with timer("sam2_decoder"):
            pe = sam.get_image_wide_positional_embeddings()
            points = point_grid(32, 1024)
            lr, ious = [], []
            for start in range(0, 1024, 256):
                pts = points[start : start + 256]
                sparse, dense = sam.prompt_encoder(
                    input_points=pts[None, :, None, :],
                    input_labels=torch.ones(1, len(pts), 1, dtype=torch.int32),
                    input_boxes=None,
                    input_masks=None,
                )
                masks, iou, _, _ = sam.mask_decoder(
                    image_embeddings=embs[-1],
                    image_positional_embeddings=pe,
                    sparse_prompt_embeddings=sparse,
                    dense_prompt_embeddings=dense,
                    multimask_output=False,
                    high_resolution_features=embs[:-1],
                )
                # multimask_output=False returns token 0 only; the reference computes all
                # four masks and picks among 1..3, which costs the same upscaling.
                lr.append(masks[0, :, 0])
                ious.append(iou[0, :, 0])
            lr_masks = torch.cat(lr)
            scores = torch.cat(ious)
            keep = scores > 0.4
            lr_masks, scores = lr_masks[keep], scores[keep]
        with timer("matching"):
            up = (
                F.interpolate(
                    feat.T.reshape(1, -1, 37, 37), size=(256, 256), mode="bilinear", antialias=True
                )
                .reshape(feat.shape[-1], -1)
                .T
            )
            m = (lr_masks > 0).reshape(len(lr_masks), -1).float()
            obj = F.normalize(m @ up / m.sum(-1, keepdim=True), dim=-1)
            protos = F.normalize(bank.prototypes(), dim=-1)
            top, labels = torch.topk((obj @ protos.T).clamp(min=0), k=1)
        with timer("nms"):
            from fiftyone_ntt.masks import batched_nms, masks_to_boxes_inclusive

            keep = batched_nms(masks_to_boxes_inclusive(lr_masks > 0), scores, labels[:, 0], 0.5)
            keep = keep[:800]
            keep = keep[top[keep, 0] > 0]
        with timer("upsample"):
            full = (
                F.interpolate(
                    lr_masks[keep][:, None], size=(height, width), mode="bilinear", antialias=True
                )[:, 0]
                > 0
            )
        with timer("merging"):
            flat = full.reshape(len(full), -1).float()
            lab = labels[keep, 0]
            for c in lab.unique().tolist():
                fm = flat[lab == c]
                _ = fm @ fm.T
    return len(keep)


def _time_runs(runs, args, sync) -> dict:
    """Median total and mean per-stage seconds of each ``(name, run(timer))`` over repeats."""
    cuda = args.device.startswith("cuda")
    results = {}
    for name, run in runs:
        totals = []
        stages: dict[str, float] = {}
        detections = 0
        for _ in range(args.repeats):
            timer = StageTimer(synchronize=sync)
            start = time.perf_counter()
            detections = run(timer)
            if sync:
                sync()
            totals.append(time.perf_counter() - start)
            for k, v in timer.seconds.items():
                stages[k] = stages.get(k, 0.0) + v / args.repeats
        results[name] = {
            # ru_maxrss is the process's high-water mark: each run has a process of its own.
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "peak_gpu_gb": (
                round(torch.cuda.max_memory_allocated(args.device) / 2**30, 2) if cuda else None
            ),
            "total_s": float(np.median(totals)),
            "stages_s": stages,
            "detections": detections,
        }
    return results


def _reference_in_child(argv: list[str]) -> dict:
    """The re-enactment in a fresh process with glibc's default allocator (module doc)."""
    args = []
    skip = False
    for arg in argv:  # the child writes its own file (drop --json PATH / --json=PATH)
        if skip:
            skip = False
        elif arg == "--json":
            skip = True
        elif arg != "--reference-style" and not arg.startswith("--json="):
            args.append(arg)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "reference.json")
        env = {**os.environ, "NTT_REUSE_LARGE_BUFFERS": "0"}
        cmd = [sys.executable, os.path.abspath(__file__), *args, "--reference-only"]
        subprocess.run([*cmd, "--json", path], check=True, env=env)
        with open(path) as f:
            return json.load(f)["results"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="large", choices=["tiny", "small", "base", "large"])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--image", default="640x480", help="WxH of the random test image")
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--shots", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--precision",
        default="float32",
        help="float32 (the paper's), bfloat16 (CPU autocast where the CPU has bf16), ...",
    )
    parser.add_argument("--reference-style", action="store_true")
    parser.add_argument(
        "--reference-only",
        action="store_true",
        help="only the re-enactment (what --reference-style runs in its child process)",
    )
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    if args.reference_only and not args.json:
        parser.error("--reference-only writes its results to --json PATH; give one")

    width, height = (int(v) for v in args.image.lower().split("x"))
    config = get_preset(args.preset)
    sam_version = "2.0" if args.preset == "paper" else "2.1"
    t0 = time.perf_counter()
    encoder, proposer = build_models(args.arch, args.device, sam_version, args.precision)
    build_s = time.perf_counter() - t0
    bank = random_bank(encoder, args.classes, args.shots)
    rng = np.random.default_rng(0)
    # Smooth random blobs rather than white noise, so SAM sees some structure.
    small = rng.integers(0, 256, (height // 32 + 1, width // 32 + 1, 3), dtype=np.uint8)
    from PIL import Image

    image = np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC))

    cuda = args.device.startswith("cuda")
    sync = (lambda: torch.cuda.synchronize(args.device)) if cuda else None
    if args.reference_only:
        if cuda:  # as for ours below: time a steady state, not kernel selection
            reference_style(image, encoder, proposer, bank, StageTimer())
            torch.cuda.synchronize(args.device)
        results = _time_runs(
            [("reference-style", lambda t: reference_style(image, encoder, proposer, bank, t))],
            args,
            sync,
        )
        with open(args.json, "w") as f:
            json.dump({"results": results}, f, indent=2)
        return 0
    segmenter = Segmenter(encoder, proposer, bank, config)
    if cuda:
        # The first CUDA run pays kernel selection and allocator growth: not a steady state.
        segmenter.predict(image)
        torch.cuda.synchronize(args.device)
        torch.cuda.reset_peak_memory_stats(args.device)
    load_before = os.getloadavg()[0]
    bench_start = time.perf_counter()
    results = _time_runs([("ours", lambda t: len(segmenter.predict(image, timer=t)))], args, sync)
    if args.reference_style:
        results.update(_reference_in_child(argv if argv is not None else sys.argv[1:]))
    meta = {
        "arch": args.arch,
        "preset": args.preset,
        "image": f"{width}x{height}",
        "device": args.device,
        "precision": args.precision,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, {_cpu_model()}, {os.cpu_count()} vCPU",
        "gpu": torch.cuda.get_device_name(args.device) if cuda else None,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "model_build_s": round(build_s, 2),
    }
    stage_names = [
        "preprocess",
        "dinov2",
        "sam2_encoder",
        "sam2_decoder",
        "matching",
        "nms",
        "upsample",
        "merging",
    ]
    print(f"# bench: {json.dumps(meta)}")
    print("| run | " + " | ".join(stage_names) + " | total (s) | peak RSS (GB) | detections |")
    print("|---" * (len(stage_names) + 4) + "|")
    for name, r in results.items():
        cells = [f"{r['stages_s'].get(s, 0.0):.2f}" for s in stage_names]
        print(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {r['total_s']:.2f} | {r['peak_rss_gb']} | {r['detections']} |"
        )
    print(f"\nbench wall time: {time.perf_counter() - bench_start:.0f} s (without model build)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=2)
    if "reference-style" in results:
        ratio = results["ours"]["total_s"] / results["reference-style"]["total_s"]
        print(f"\nours / reference-style end-to-end time: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
