"""CPU seconds per image and peak memory of each named preset, with random weights.

Usage:

    python scripts/bench_presets.py                       # every preset, 640x480
    python scripts/bench_presets.py --presets fast --repeats 2

Each preset runs in its own child process (``--one NAME``), so that its peak RSS
(``ru_maxrss``) is its own. The models are the preset's architectures built from their configs
with **random weights** (nothing is downloaded): the amount of work is real, the masks are
meaningless. The image, bank and timing are those of ``scripts/bench.py``; download sizes are
those of the hub listings (:func:`fiftyone_ntt.presets.download_mb`). Prints a Markdown table for
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import random_bank

from fiftyone_ntt.config import PRESETS, get_preset
from fiftyone_ntt.presets import preset_summary
from fiftyone_ntt.segmenter import Segmenter

#: Hub id -> architecture of the random stand-in.
SAM2_ARCH = {
    "facebook/sam2-hiera-tiny": "hiera_tiny",
    "facebook/sam2.1-hiera-tiny": "hiera_tiny",
    "facebook/sam2-hiera-small": "hiera_small",
    "facebook/sam2.1-hiera-small": "hiera_small",
    "facebook/sam2-hiera-base-plus": "hiera_base_plus",
    "facebook/sam2.1-hiera-base-plus": "hiera_base_plus",
    "facebook/sam2-hiera-large": "hiera_large",
    "facebook/sam2.1-hiera-large": "hiera_large",
}
ENCODER_ARCH = {
    "facebook/dinov2-small": ("dinov2", "vit_small"),
    "facebook/dinov2-base": ("dinov2", "vit_base"),
    "facebook/dinov2-large": ("dinov2", "vit_large"),
    "facebook/dinov3-vits16-pretrain-lvd1689m": ("dinov3", "vit_small"),
    "facebook/dinov3-vitb16-pretrain-lvd1689m": ("dinov3", "vit_base"),
    "facebook/dinov3-vitl16-pretrain-lvd1689m": ("dinov3", "vit_large"),
}


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_proposer(source: str, device: str):
    from transformers import Sam2Model

    from fiftyone_ntt.models.sam2 import HIERA_SPECS, Sam2Architecture, Sam2Proposer

    spec = next(s for s in HIERA_SPECS.values() if s.arch == SAM2_ARCH[source])
    arch = Sam2Architecture(
        spec=spec,
        version="2.1",
        fpn_hidden_size=256,
        backbone_channel_list=list(reversed(spec.embed_dims)),
        decoder={"hidden_size": 256, "iou_head_depth": 3, "iou_head_hidden_dim": 256},
        prompt_encoder={"hidden_size": 256, "mask_input_channels": 16},
    )
    model = Sam2Model(arch.to_config())
    size = (
        _params(model.vision_encoder) + _params(model.prompt_encoder) + _params(model.mask_decoder)
    )
    return Sam2Proposer(model, source=f"random {spec.arch}", device=device, arch=spec.arch), size


def build_encoder(source: str, device: str):
    family, name = ENCODER_ARCH[source]
    if family == "dinov2":
        from transformers import Dinov2Model

        from fiftyone_ntt.models.dinov2 import DINOV2_SPECS, Dinov2Architecture, Dinov2Encoder

        spec = next(s for s in DINOV2_SPECS.values() if s.arch == name)
        arch = Dinov2Architecture(
            spec=spec,
            patch_size=14,
            image_size=518,
            registers=0,
            swiglu=False,
            mlp_ratio=4,
            qkv_bias=True,
        )
        model = Dinov2Model(arch.to_config())
        return Dinov2Encoder(model, source=f"random {name}", device=device, arch=name), _params(
            model
        )
    from transformers import DINOv3ViTModel

    from fiftyone_ntt.models.dinov3 import DINOV3_SPECS, Dinov3Architecture, Dinov3Encoder

    spec = next(s for s in DINOV3_SPECS.values() if s.arch == name and not s.gated)
    arch = Dinov3Architecture(
        arch=name,
        hidden_size=spec.hidden_size,
        num_layers=spec.num_layers,
        num_heads=spec.num_heads,
        intermediate_size=4 * spec.hidden_size,
        patch_size=16,
        registers=4,
        gated=False,
        query_bias=True,
        key_bias=False,
        value_bias=True,
        proj_bias=True,
        mlp_bias=True,
        rope_theta=100.0,
    )
    model = DINOv3ViTModel(arch.to_config())
    return Dinov3Encoder(model, source=f"random {name}", device=device, arch=name), _params(model)


def run_one(name: str, image_size: str, repeats: int, device: str) -> dict:
    width, height = (int(v) for v in image_size.lower().split("x"))
    config = get_preset(name)
    torch.manual_seed(0)
    encoder, encoder_params = build_encoder(config.models.dinov2, device)
    proposer, proposer_params = build_proposer(config.models.sam2, device)
    bank = random_bank(encoder, 20, 10)
    # random_bank records the paper's 518; a patch-16 encoder's bank records its own side.
    from fiftyone_ntt.config import encoder_input_size

    bank.settings["reference_size"] = encoder_input_size(
        config.reference_size, encoder.patch_size, "reference_size"
    )
    segmenter = Segmenter(encoder, proposer, bank, config)
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (height // 32 + 1, width // 32 + 1, 3), dtype=np.uint8)
    from PIL import Image

    image = np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC))
    totals = []
    for _ in range(repeats):
        start = time.perf_counter()
        segmenter.predict(image)
        totals.append(time.perf_counter() - start)
    return {
        "preset": name,
        "proposer": config.models.sam2,
        "encoder": config.models.dinov2,
        "semantic_size": segmenter.semantic_size,
        "seconds_per_image": float(np.median(totals)),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        # What a user downloads (hub listing sizes), and the parameter bytes actually run.
        "download_mb": preset_summary(name)["download_mb"],
        "params_mb": round(4 * (encoder_params + proposer_params) / 1e6),
        "threads": torch.get_num_threads(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--image", default="640x480")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.image, args.repeats, args.device)))
        return 0
    load = os.getloadavg()
    results = []
    for name in args.presets.split(","):
        out = subprocess.run(
            [
                *(sys.executable, __file__, "--one", name, "--image", args.image),
                *("--repeats", str(args.repeats), "--device", args.device),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"# {results[-1]}", flush=True)
    meta = {
        "image": args.image,
        "device": args.device,
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_average_before": [round(v, 2) for v in load],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
    }
    print(f"# bench_presets: {json.dumps(meta)}")
    print("| preset | proposer | encoder (input) | s / image | peak RSS (GB) | download (MB) |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['preset']} | {r['proposer']} | {r['encoder']} ({r['semantic_size']} px) | "
            f"{r['seconds_per_image']:.1f} | {r['peak_rss_gb']} | {r['download_mb']} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
