"""CPU seconds per image of the ``fast`` preset with EdgeTAM as its proposer, random weights.

Usage:

    python scripts/bench_edgetam.py                 # 640x480, one image per proposer
    python scripts/bench_edgetam.py --repeats 3 --embed-repeats 9 --threads 1

Runs the ``fast`` preset as ``scripts/bench_presets.py`` does (same image, bank, encoder,
prompt grid and timing), in separate child processes (each its own peak RSS): with its
own proposer (SAM 2.1 Hiera-T) and with a full-size EdgeTAM (RepViT-M1 image encoder, the
256-wide SAM 2 decoder) built from its config with random weights and our timm-free RepViT.
The 1024 prompt decodes cost the same for both (same decoder), so a third child times the
two image encoders alone (``proposer.embed`` of a 1024² image), alternating between them so
that a changing machine load hits both alike. Prints one JSON line per child and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import random_bank
from bench_presets import build_encoder, build_proposer

from fiftyone_ntt.config import encoder_input_size, get_preset
from fiftyone_ntt.segmenter import Segmenter

EDGETAM = "yonigozlan/EdgeTAM-hf"


def build_edgetam(device: str):
    from transformers import EdgeTamConfig, EdgeTamVisionConfig, TimmWrapperConfig

    from fiftyone_ntt.models.edgetam import EdgeTamProposer, build_edgetam_model

    backbone = TimmWrapperConfig(
        architecture="repvit_m1.dist_in1k",
        model_args={"in_chans": 3, "features_only": True, "out_indices": [0, 1, 2, 3]},
    )
    model = build_edgetam_model(
        EdgeTamConfig(vision_config=EdgeTamVisionConfig(backbone_config=backbone))
    ).eval()
    params = sum(p.numel() for p in model.parameters())
    return EdgeTamProposer(model, source="random edgetam", device=device), params


def run_encoders(repeats: int, device: str) -> dict:
    """Median ``embed`` seconds of both proposers, measured alternately in this process."""
    torch.manual_seed(0)
    proposers = {
        "sam2": build_proposer(get_preset("fast").models.sam2, device)[0],
        "edgetam": build_edgetam(device)[0],
    }
    pixels = torch.rand((3, 1024, 1024))
    times: dict[str, list[float]] = {name: [] for name in proposers}
    for proposer in proposers.values():
        proposer.embed(pixels)  # warm-up
    for _ in range(repeats):
        for name, proposer in proposers.items():
            start = time.perf_counter()
            proposer.embed(pixels)
            times[name].append(time.perf_counter() - start)
    medians = {name: round(float(np.median(t)), 3) for name, t in times.items()}
    return {
        "embed_seconds": medians,
        "edgetam_over_sam2": round(medians["edgetam"] / medians["sam2"], 3),
        "repeats": repeats,
        "threads": torch.get_num_threads(),
    }


def run_one(proposer_name: str, image_size: str, repeats: int, device: str) -> dict:
    width, height = (int(v) for v in image_size.lower().split("x"))
    config = get_preset("fast")
    torch.manual_seed(0)
    encoder, _ = build_encoder(config.models.dinov2, device)
    if proposer_name == "edgetam":
        proposer, params = build_edgetam(device)
    else:
        proposer, params = build_proposer(config.models.sam2, device)
    bank = random_bank(encoder, 20, 10)
    bank.settings["reference_size"] = encoder_input_size(
        config.reference_size, encoder.patch_size, "reference_size"
    )
    segmenter = Segmenter(encoder, proposer, bank, config)
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (height // 32 + 1, width // 32 + 1, 3), dtype=np.uint8)
    from PIL import Image

    image = np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC))
    from fiftyone_ntt.segmenter import StageTimer

    totals, timer = [], StageTimer()
    for _ in range(repeats):
        start = time.perf_counter()
        predictions = segmenter.predict(image, timer=timer)
        totals.append(time.perf_counter() - start)
    return {
        "proposer": proposer_name if proposer_name == "edgetam" else config.models.sam2,
        "encoder": config.models.dinov2,
        "seconds_per_image": round(float(np.median(totals)), 3),
        # Where the time went (summed over the repeats) and how many masks came out: with
        # random weights the number of proposals kept, and so the later stages, differ.
        "stage_seconds": {k: round(v / repeats, 3) for k, v in timer.seconds.items()},
        "detections": len(predictions),
        "proposer_params_m": round(params / 1e6, 2),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "threads": torch.get_num_threads(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", default="640x480")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--embed-repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads (0: torch's default). On a shared box 1 thread is steadier: "
        "RepViT's many small depthwise convs suffer most from OpenMP threads waiting on "
        "each other when other processes take the cores",
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one == "encoders":
        print(json.dumps(run_encoders(args.embed_repeats, args.device)))
        return 0
    if args.one:
        print(json.dumps(run_one(args.one, args.image, args.repeats, args.device)))
        return 0
    print(f"# load average before: {os.getloadavg()}", flush=True)
    results = {}
    for name in ("encoders", "sam2", "edgetam"):
        out = subprocess.run(
            [
                *(sys.executable, __file__, "--one", name, "--image", args.image),
                *("--repeats", str(args.repeats), "--device", args.device),
                *("--embed-repeats", str(args.embed_repeats), "--threads", str(args.threads)),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        print(json.dumps(results[name]), flush=True)
    ratio = results["edgetam"]["seconds_per_image"] / results["sam2"]["seconds_per_image"]
    embed = results["encoders"]["edgetam_over_sam2"]
    print(f"# edgetam / sam2.1-tiny: {ratio:.2f}x per image, {embed:.2f}x image encoder")
    print(f"# load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
