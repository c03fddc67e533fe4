"""Per-frame cost of tracked video runs (docs/method.md §17) with the tiny random models on
this CPU: No Time to Train calls per frame, seconds per NTT call and per propagated frame, and
peak memory, for keyframe intervals K; and the memory SAM 2's video session holds per number
of tracked objects (the object cap).

Each measurement runs in its own child process, so that each peak RSS (``ru_maxrss``) is its
own. Usage::

    .venv/bin/python scripts/bench_tracking.py            # table (markdown) on stdout
    .venv/bin/python scripts/bench_tracking.py --json     # the same as JSON

The tiny models (``fiftyone_ntt.models.tiny``): DINOv2 width 32 at 518², SAM 2 width 32 at
1024² for No Time to Train, the tiny ``Sam2VideoModel`` (width 128 at 256², one memory-
attention layer) for propagation. Random weights: the numbers are costs, not quality.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np


def _video(frames: int, size: tuple[int, int]) -> list[tuple[int, np.ndarray]]:
    from fiftyone_ntt.testing import paint

    height, width = size
    side = max(8, min(size) // 5)
    out = []
    for n in range(1, frames + 1):
        shapes = [
            (1, (2 + 2 * n, 4, 2 + 2 * n + side, 4 + side)),
            (2, (width - side - 4, 2 + n, width - 4, 2 + n + side)),
            (3, (width // 2, height - side - 2, width // 2 + side, height - 2)),
        ]
        out.append((n, paint(size, shapes)))
    return out


def _tensor_bytes(value) -> int:
    import torch

    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def session_bytes(session) -> int:
    """Bytes of the tensors a ``Sam2VideoInferenceSession`` holds (outputs, inputs, frames,
    cached vision features)."""
    if session is None:
        return 0
    held = (
        session.output_dict_per_obj,
        session.mask_inputs_per_obj,
        session.point_inputs_per_obj,
        session.processed_frames or {},
        getattr(session.cache, "_vision_features", {}),
    )
    return sum(_tensor_bytes(v) for v in held)


class _Timed:
    """A propagator counting its time and the session's largest size."""

    def __init__(self, propagator) -> None:
        self.inner, self.seconds, self.steps, self.peak_state = propagator, 0.0, 0, 0
        self.max_objects = propagator.max_objects
        self.identity = propagator.identity

    def start_video(self):
        self.inner.start_video()

    def end_video(self):
        self.peak_state = max(self.peak_state, session_bytes(self.inner.session))
        self.inner.end_video()

    def seed(self, image, masks):
        start = time.perf_counter()
        self.inner.seed(image, masks)
        self.seconds += time.perf_counter() - start

    def propagate(self, image):
        start = time.perf_counter()
        out = self.inner.propagate(image)
        self.seconds += time.perf_counter() - start
        self.steps += 1
        self.peak_state = max(self.peak_state, session_bytes(self.inner.session))
        return out


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def one_k(k: int, frames: int, size: tuple[int, int], points: int, cap: int) -> dict:
    import torch

    from fiftyone_ntt.bank_build import build_memory_bank
    from fiftyone_ntt.config import NTTConfig
    from fiftyone_ntt.models.sam2.video import Sam2VideoPropagator
    from fiftyone_ntt.models.tiny import tiny_encoder, tiny_proposer
    from fiftyone_ntt.models.tiny_video import tiny_sam2_video_model
    from fiftyone_ntt.segmenter import Segmenter
    from fiftyone_ntt.testing import PALETTE
    from fiftyone_ntt.tracking import TrackBook, track_video
    from fiftyone_ntt.types import Reference

    torch.manual_seed(0)
    encoder, proposer = tiny_encoder(), tiny_proposer()
    video = _video(frames, size)
    first = video[0][1]
    references = []  # each square of the first frame is a class (a bank that fits the video)
    for color in (1, 2, 3):
        mask = (first == PALETTE[color]).all(-1)
        references.append(Reference(first, f"class{color}", f"r{color}", mask=mask))
    bank = build_memory_bank(references, encoder)
    # random weights predict low IoUs: keep every proposal, so that there is something to track
    config = NTTConfig(points_per_side=points, max_detections=16, pred_iou_threshold=0.0)
    segmenter = Segmenter(encoder, proposer, bank, config)
    ntt = {"calls": 0, "seconds": 0.0}

    class Counting:
        class_names = segmenter.class_names

        def predict(self, image):
            start = time.perf_counter()
            out = segmenter.predict(image)
            ntt["seconds"] += time.perf_counter() - start
            ntt["calls"] += 1
            return out

    propagator = _Timed(
        Sam2VideoPropagator(tiny_sam2_video_model()[0], max_objects=cap, source="tiny")
    )
    book = TrackBook()
    start = time.perf_counter()
    outputs = list(track_video(video, Counting(), propagator, keyframe_every=k, book=book))
    wall = time.perf_counter() - start
    drawn = sum(len(f.track_ids) for f in outputs)
    return {
        "k": k,
        "frames": frames,
        "ntt_calls": ntt["calls"],
        "ntt_calls_per_frame": round(ntt["calls"] / frames, 3),
        "ntt_s_per_call": round(ntt["seconds"] / max(1, ntt["calls"]), 3),
        "propagation_s_per_frame": round(propagator.seconds / frames, 3),
        "propagated_frames": propagator.steps,
        "wall_s_per_frame": round(wall / frames, 3),
        "tracks": len(book.tracks),
        "detections_per_frame": round(drawn / frames, 2),
        "session_peak_mb": round(propagator.peak_state / 2**20, 2),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }


def one_cap(objects: int, frames: int, size: tuple[int, int]) -> dict:
    from fiftyone_ntt.models.sam2.video import Sam2VideoPropagator, memory_window
    from fiftyone_ntt.models.tiny_video import tiny_sam2_video_model

    model = tiny_sam2_video_model()[0]
    propagator = Sam2VideoPropagator(model, max_objects=objects, source="tiny")
    video = _video(frames + 1, size)
    height, width = size
    masks = {}
    for i in range(objects):  # a grid of small squares, one per object
        mask = np.zeros(size, dtype=bool)
        row, col = divmod(i, 8)
        y, x = (row * 10) % (height - 8), (col * 14) % (width - 8)
        mask[y : y + 8, x : x + 8] = True
        masks[i + 1] = mask
    propagator.start_video()
    rss_before = _peak_rss_mb()
    propagator.seed(video[0][1], masks)
    state, start = 0, time.perf_counter()
    for _, image in video[1:]:
        propagator.propagate(image)
        state = max(state, session_bytes(propagator.session))
    seconds = time.perf_counter() - start
    return {
        "objects": objects,
        "frames": frames,
        "window": memory_window(model.config),
        "propagation_s_per_frame": round(seconds / frames, 3),
        "session_peak_mb": round(state / 2**20, 2),
        "session_mb_per_object": round(state / 2**20 / objects, 3),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "rss_growth_mb": round(_peak_rss_mb() - rss_before, 1),
    }


def _child(args: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ks", default="1,5,10")
    parser.add_argument("--caps", default="1,4,16")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--cap-frames", type=int, default=24)
    parser.add_argument("--size", default="96x128", help="HxW of the synthetic video")
    parser.add_argument("--points", type=int, default=16, help="points per side of NTT")
    parser.add_argument("--max-objects", type=int, default=16)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--one-k", type=int)
    parser.add_argument("--one-cap", type=int)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.one_k is not None:
        print(json.dumps(one_k(args.one_k, args.frames, size, args.points, args.max_objects)))
        return
    if args.one_cap is not None:
        print(json.dumps(one_cap(args.one_cap, args.cap_frames, size)))
        return
    common = ["--frames", str(args.frames), "--size", args.size, "--points", str(args.points)]
    common += ["--max-objects", str(args.max_objects), "--threads", str(args.threads)]
    common += ["--cap-frames", str(args.cap_frames)]
    load = os.getloadavg()[0]
    ks = [_child(["--one-k", k, *common]) for k in args.ks.split(",")]
    caps = [_child(["--one-cap", n, *common]) for n in args.caps.split(",")]
    result = {"load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2)}
    result.update(keyframes=ks, object_cap=caps)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        "| K | NTT calls / frame | s / NTT call | propagation s / frame | s / frame | tracks "
        "| session peak (MB) | peak RSS (MB) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in ks:
        print(
            f"| {r['k']} | {r['ntt_calls_per_frame']} | {r['ntt_s_per_call']} | "
            f"{r['propagation_s_per_frame']} | {r['wall_s_per_frame']} | {r['tracks']} | "
            f"{r['session_peak_mb']} | {r['peak_rss_mb']} |"
        )
    print()
    print("| objects | propagation s / frame | session peak (MB) | MB / object | peak RSS (MB) |")
    print("|---|---|---|---|---|")
    for r in caps:
        print(
            f"| {r['objects']} | {r['propagation_s_per_frame']} | {r['session_peak_mb']} | "
            f"{r['session_mb_per_object']} | {r['peak_rss_mb']} |"
        )
    print(f"\nload average {result['load_before']} -> {result['load_after']}")


if __name__ == "__main__":
    main()
