"""Profile the SAM 2 fast decoder per operation, and check it against transformers at real size.

Usage:

    python scripts/profile_decoder.py                    # Large decoder, 128 prompts, top ops
    python scripts/profile_decoder.py --prompts 1024     # the paper's full 32x32 grid
    python scripts/profile_decoder.py --check 48         # also compare 48 prompts with
                                                         # transformers' Sam2MaskDecoder
    python scripts/profile_decoder.py --decoder lowrank  # profile the low-rank decoder
    python scripts/profile_decoder.py --prompts 1024 --ab 3 --rows 0
                                                         # old (fast) vs low-rank decoder,
                                                         # alternating in one process
    python scripts/profile_decoder.py --prompts 1024 --bf16 2
                                                         # CPU bf16: old (fast) and low-rank
                                                         # vs low-rank float32, with deltas
    python scripts/profile_decoder.py --prompts 1024 --chunks 4,8,12 --reuse-buffers
                                                         # prompts per low-rank pass

The mask decoder (and prompt encoder) of SAM 2 is the same for every Hiera size (hidden
size 256); it is built with random weights, and fed random image features of the real shapes
(64x64x256 embedding, 128x128x64 and 256x256x32 high-resolution features), so no image
encoder runs. Random weights keep every prompt above the IoU threshold (0.4), which is the
worst case for the upscaling. Prints the wall time per prompt batch, the operations that took
the most time (torch profiler, self CPU time) and, with ``--check``, the largest differences
to ``Sam2MaskDecoder.forward`` (indices must be equal; IoU and logits within 1e-5).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import torch


def build(seed: int = 0):
    """A SAM 2.0 Hiera-L ``Sam2Model`` with random weights and random image features."""
    from transformers import Sam2Model

    from fiftyone_ntt.models.sam2 import HIERA_SPECS, Sam2Architecture, Sam2Embedding, Sam2Proposer

    torch.manual_seed(seed)
    hiera = next(s for s in HIERA_SPECS.values() if s.arch == "hiera_large")
    arch = Sam2Architecture(
        spec=hiera,
        version="2.0",
        fpn_hidden_size=256,
        backbone_channel_list=list(reversed(hiera.embed_dims)),
        decoder={"hidden_size": 256, "iou_head_depth": 3, "iou_head_hidden_dim": 256},
        prompt_encoder={"hidden_size": 256, "mask_input_channels": 16},
    )
    sam = Sam2Model(arch.to_config())
    proposer = Sam2Proposer(sam, source="random hiera_large", version="2.0", arch=hiera.arch)
    gen = torch.Generator().manual_seed(seed)
    embedding = Sam2Embedding(
        image=torch.randn((1, 256, 64, 64), generator=gen),
        high_res_s0=torch.randn((1, 32, 256, 256), generator=gen),
        high_res_s1=torch.randn((1, 64, 128, 128), generator=gen),
        no_memory=torch.zeros((1, 256, 1, 1)),
    )
    return sam, proposer, embedding


def perturb_norms(sam, seed: int = 1) -> None:
    """Random LayerNorm weights/biases in the mask decoder (they start at 1/0, which would
    hide a mistake in how the low-rank decoder applies them)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in sam.mask_decoder.modules():
            if isinstance(module, torch.nn.LayerNorm):
                shape = module.weight.shape
                module.weight.add_(0.3 * torch.randn(shape, generator=gen))
                module.bias.add_(0.2 * torch.randn(shape, generator=gen))


def decoders(proposer):
    """``{"fast": FastMaskDecoder, "lowrank": LowRankMaskDecoder}`` on the same weights."""
    from fiftyone_ntt.models.sam2.decoder import FastMaskDecoder
    from fiftyone_ntt.models.sam2.lowrank import LowRankMaskDecoder

    current = proposer._decoder
    args = (current.decoder, current.pe, current.side)
    return {"fast": FastMaskDecoder(*args), "lowrank": LowRankMaskDecoder(*args)}


def alternate(proposer, embedding, points, threshold: float, rounds: int) -> None:
    """Old and new decoder alternating on the same prompts; CPU-time ratio per round."""
    options = decoders(proposer)
    print(f"# A/B: {points.shape[0]} prompts, {rounds} rounds, order fast, lowrank")
    ratios = []
    for round_ in range(rounds):
        times = {}
        for name, decoder in options.items():
            proposer._decoder = decoder
            load = os.getloadavg()[0]
            start, cpu = time.perf_counter(), time.process_time()
            index, _, _ = proposer.propose(embedding, points, threshold)
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            times[name] = (wall, cpu)
            print(
                f"round {round_} {name:8s} kept {index.numel()}: wall {wall:6.2f} s, "
                f"CPU {cpu:6.2f} s, load {load:.1f}"
            )
        ratio = times["lowrank"][1] / times["fast"][1]
        ratios.append(ratio)
        wall_ratio = times["lowrank"][0] / times["fast"][0]
        print(f"round {round_} lowrank/fast: CPU {ratio:.3f}, wall {wall_ratio:.3f}")
    ratios.sort()
    print(
        f"lowrank/fast CPU-time ratio: median {ratios[len(ratios) // 2]:.3f}, "
        f"range {ratios[0]:.3f}-{ratios[-1]:.3f}"
    )


def alternate_chunks(proposer, embedding, points, threshold: float, chunks, rounds: int) -> None:
    """The low-rank decoder with each prompts-per-pass size, alternating, wall/CPU seconds."""
    decoder = proposer._decoder
    print(f"# prompts per pass {list(chunks)}: {points.shape[0]} prompts, {rounds} rounds")
    for round_ in range(rounds):
        for chunk in chunks:
            decoder.chunk = chunk
            load = os.getloadavg()[0]
            start, cpu = time.perf_counter(), time.process_time()
            index, _, _ = proposer.propose(embedding, points, threshold)
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            print(
                f"round {round_} chunk {chunk:3d} kept {index.numel()}: wall {wall:6.2f} s, "
                f"CPU {cpu:6.2f} s, load {load:.1f}"
            )
    decoder.chunk = None


def bf16_variants(proposer):
    """``{name: (decoder, autocast dtype)}``: the old CPU bf16 path (``FastMaskDecoder``
    under bf16 autocast), the new one (``LowRankMaskDecoder`` with a bf16 upscaling, under
    the same autocast, as ``Sam2Proposer(precision="bfloat16")`` builds it) and float32."""
    from fiftyone_ntt.models.sam2.decoder import FastMaskDecoder
    from fiftyone_ntt.models.sam2.lowrank import LowRankMaskDecoder

    current = proposer._decoder
    args = (current.decoder, current.pe, current.side)
    return {
        "fast-bf16": (FastMaskDecoder(*args), torch.bfloat16),
        "lowrank-bf16": (LowRankMaskDecoder(*args, upscale_dtype=torch.bfloat16), torch.bfloat16),
        "lowrank-f32": (LowRankMaskDecoder(*args), None),
    }


def mask_deltas(reference, other) -> str:
    """bf16 vs float32 outputs of ``propose``: kept prompts, IoU, binary masks at logit 0."""
    (index0, logits0, iou0), (index1, logits1, iou1) = reference, other
    if not torch.equal(index0, index1):
        return f"kept prompts differ ({index0.numel()} vs {index1.numel()})"
    a, b = logits0 > 0, logits1 > 0
    inter = (a & b).flatten(1).sum(1).double()
    union = (a | b).flatten(1).sum(1).double()
    mask_iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
    same = int((a == b).flatten(1).all(1).sum())
    return (
        f"same {index0.numel()} kept prompts; IoU max |diff| "
        f"{float((iou0 - iou1).abs().max()):.3g}; logits max |diff| "
        f"{float((logits0 - logits1).abs().max()):.3g} (max |logit| "
        f"{float(logits0.abs().max()):.3g}); mask IoU at logit 0: mean "
        f"{float(mask_iou.mean()):.4f}, worst {float(mask_iou.min()):.4f}; "
        f"identical masks {same}/{index0.numel()}"
    )


def alternate_bf16(proposer, embedding, points, threshold: float, rounds: int) -> None:
    """Old bf16, new bf16 and float32 alternating on the same prompts; ratios to float32."""
    options = bf16_variants(proposer)
    print(f"# bf16 A/B: {points.shape[0]} prompts, {rounds} rounds, order {', '.join(options)}")
    outputs = {}
    for round_ in range(rounds):
        times = {}
        for name, (decoder, dtype) in options.items():
            proposer._decoder, proposer._autocast = decoder, dtype
            load = os.getloadavg()[0]
            start, cpu = time.perf_counter(), time.process_time()
            outputs[name] = proposer.propose(embedding, points, threshold)
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            times[name] = (wall, cpu)
            print(
                f"round {round_} {name:12s} kept {outputs[name][0].numel()}: wall {wall:6.2f} s, "
                f"CPU {cpu:6.2f} s, load {load:.1f}"
            )
        base = times["lowrank-f32"]
        for name in ("fast-bf16", "lowrank-bf16"):
            print(
                f"round {round_} {name}/lowrank-f32: CPU {times[name][1] / base[1]:.3f}, "
                f"wall {times[name][0] / base[0]:.3f}"
            )
        new, old = times["lowrank-bf16"], times["fast-bf16"]
        print(
            f"round {round_} lowrank-bf16/fast-bf16: CPU {new[1] / old[1]:.3f}, wall {new[0] / old[0]:.3f}"
        )
    for name in ("fast-bf16", "lowrank-bf16"):
        print(f"{name} vs float32: {mask_deltas(outputs['lowrank-f32'], outputs[name])}")


def alternate_hyper(proposer, embedding, points, threshold: float, rounds: int) -> None:
    """The float32 low-rank decoder with the hypernetwork product as ``bmm`` (old) and as
    one ``mv`` per prompt (new, ``HYPER_MATVEC``), alternating; CPU-time ratio per round."""
    from fiftyone_ntt.models.sam2 import lowrank_upscale as upscale

    proposer._decoder = decoders(proposer)["lowrank"]
    print(f"# hypernetwork A/B: {points.shape[0]} prompts, {rounds} rounds, order bmm, mv")
    outputs, ratios = {}, []
    for round_ in range(rounds):
        times = {}
        for name, flag in (("bmm", False), ("mv", True)):
            upscale.HYPER_MATVEC = flag
            load = os.getloadavg()[0]
            start, cpu = time.perf_counter(), time.process_time()
            outputs[name] = proposer.propose(embedding, points, threshold)
            times[name] = (time.perf_counter() - start, time.process_time() - cpu)
            print(
                f"round {round_} {name:4s} wall {times[name][0]:6.2f} s, "
                f"CPU {times[name][1]:6.2f} s, load {load:.1f}"
            )
        ratios.append(times["mv"][1] / times["bmm"][1])
        print(
            f"round {round_} mv/bmm: CPU {ratios[-1]:.3f}, "
            f"wall {times['mv'][0] / times['bmm'][0]:.3f}"
        )
    upscale.HYPER_MATVEC = True
    (i0, l0, s0), (i1, l1, s1) = outputs["bmm"], outputs["mv"]
    print(
        f"same kept: {torch.equal(i0, i1)}, IoU equal: {torch.equal(s0, s1)}, logits max "
        f"|diff| {float((l0 - l1).abs().max()):.3g} (max |logit| {float(l0.abs().max()):.3g})"
    )


def check(sam, proposer, embedding, points: torch.Tensor) -> None:
    """Fast decoder vs ``Sam2MaskDecoder.forward`` (multimask) on the same prompts."""
    n = points.shape[0]
    with torch.no_grad():
        sparse, dense = sam.prompt_encoder(
            input_points=points[None, :, None, :],
            input_labels=torch.ones((1, n, 1), dtype=torch.long),
            input_boxes=None,
            input_masks=None,
        )
        masks, iou, _, _ = sam.mask_decoder(
            image_embeddings=embedding.image,
            image_positional_embeddings=sam.get_image_wide_positional_embeddings(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=True,
            high_resolution_features=[embedding.high_res_s0, embedding.high_res_s1],
        )
    masks, iou = masks[0], iou[0]
    best = iou.argmax(-1)
    score = iou.gather(1, best[:, None])[:, 0]
    threshold = float(score.median())  # half the prompts kept, half dropped
    keep = torch.nonzero(score > threshold).flatten()
    index, logits, scores = proposer.propose(embedding, points, threshold)
    expected = masks[keep, best[keep]]
    scale = float(expected.abs().max())
    print(f"check: {n} prompts, threshold {threshold:.4f}, kept {index.numel()}")
    print(f"  same kept indices: {torch.equal(index, keep)}")
    print(f"  IoU max |diff|: {float((scores - score[keep]).abs().max()):.3g}")
    print(
        f"  logits max |diff|: {float((logits - expected).abs().max()):.3g} "
        f"(max |logit| {scale:.3g})"
    )
    torch.testing.assert_close(scores, score[keep], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5 * scale)
    print("  OK: equal within 1e-5")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=128, help="points of the 32x32 grid")
    parser.add_argument("--threshold", type=float, default=0.4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", type=int, default=15, help="operations listed")
    parser.add_argument("--check", type=int, default=0, help="prompts to compare (0: none)")
    parser.add_argument("--decoder", choices=("default", "fast", "lowrank"), default="default")
    parser.add_argument("--ab", type=int, default=0, help="rounds of old vs new (0: none)")
    parser.add_argument(
        "--bf16", type=int, default=0, help="rounds of bf16 old/new vs float32 (0: none)"
    )
    parser.add_argument(
        "--ab-hyper", type=int, default=0, help="rounds of hypernetwork bmm vs mv (0: none)"
    )
    parser.add_argument(
        "--perturb-norms", action="store_true", help="random LayerNorm weights in the decoder"
    )
    parser.add_argument(
        "--chunks", help="comma-separated prompts per low-rank pass to compare, e.g. 4,8,12"
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds of --chunks")
    parser.add_argument(
        "--reuse-buffers",
        action="store_true",
        help="raise glibc's thresholds first, as a CPU Segmenter does (models/allocator.py)",
    )
    args = parser.parse_args(argv)

    from fiftyone_ntt.segmenter import point_grid

    torch.set_num_threads(args.threads)
    sam, proposer, embedding = build()
    if args.perturb_norms:
        perturb_norms(sam)
    if args.decoder != "default":
        proposer._decoder = decoders(proposer)[args.decoder]
    grid = point_grid(32, 1024)
    points = grid[: args.prompts]
    if args.reuse_buffers:
        from fiftyone_ntt.models.allocator import reuse_large_buffers

        print(f"# buffer reuse: {reuse_large_buffers()}")
    if args.chunks:
        chunks = [int(c) for c in args.chunks.split(",")]
        alternate_chunks(proposer, embedding, points, args.threshold, chunks, args.rounds)
        return 0
    if args.ab_hyper:
        alternate_hyper(proposer, embedding, points, args.threshold, args.ab_hyper)
        return 0
    if args.bf16:
        alternate_bf16(proposer, embedding, points, args.threshold, args.bf16)
        return 0
    if args.ab:
        alternate(proposer, embedding, points, args.threshold, args.ab)
        return 0
    print(
        f"# decoder profile ({type(proposer._decoder).__name__}): {args.prompts} prompts, batch {proposer.decode_batch_size}, "
        f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}"
    )
    proposer.propose(embedding, points[: proposer.decode_batch_size], args.threshold)  # warm
    start = time.perf_counter()
    cpu = time.process_time()
    index, _, _ = proposer.propose(embedding, points, args.threshold)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    batches = -(-args.prompts // proposer.decode_batch_size)
    print(
        f"kept {index.numel()}/{args.prompts}; wall {wall:.2f} s ({wall / batches:.2f} s per "
        f"batch, {1024 * wall / args.prompts:.1f} s per 1024 prompts), process CPU {cpu:.2f} s"
    )
    from torch.profiler import ProfilerActivity, profile

    # The profiler records the calling thread only: the low-rank decoder's passes run here,
    # one intra-op thread, as each of its worker threads runs them.
    if hasattr(proposer._decoder, "workers"):
        proposer._decoder.workers = 1
        torch.set_num_threads(1)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        proposer.propose(embedding, points[: proposer.decode_batch_size], args.threshold)
    torch.set_num_threads(args.threads)
    note = " (low-rank: 1 thread, no workers)" if hasattr(proposer._decoder, "workers") else ""
    print(f"\nOne batch of {proposer.decode_batch_size} prompts{note}, by operation and shape:")
    print(
        prof.key_averages(group_by_input_shape=True).table(
            sort_by="self_cpu_time_total",
            row_limit=args.rows,
            max_name_column_width=28,
            max_shapes_column_width=70,
        )
    )
    if args.check:
        g = torch.Generator().manual_seed(0)
        check(sam, proposer, embedding, grid[torch.randperm(1024, generator=g)[: args.check]])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak RSS {peak:.2f} GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
