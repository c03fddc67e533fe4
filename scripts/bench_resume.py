"""Time overhead of segment()'s resumability bookkeeping, on N tiny painted samples.

Compares, on the same dataset, models and images:

* ``segment``: :func:`fiftyone_ntt.fiftyone.runs.job.segment` as users run it: the field
  claim (lock) and its release, the run record (``running`` at the start, the summary at the
  end), the query for samples not done yet, and the per-sample completion mark
  (``<field>.ntt_run``) written with every batch;
* ``bare``: the same work without any of it: read the image, predict, convert, write the
  ``Detections`` every ``batch_size`` samples with ``set_values``.

The fake models (:mod:`fiftyone_ntt.testing`) make the model time small, so the overhead is
shown at its largest relative size. Runs in a throw-away database server of its own.

    .venv/bin/python scripts/bench_resume.py --samples 200 --repeats 3
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from private_mongod import start_mongod


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="ntt-bench-resume-"))
    for key in [k for k in os.environ if k.startswith("FIFTYONE_")]:
        del os.environ[key]
    # Its own mongod: FiftyOne's embedded service is shared, and a database folder alone would
    # not stop this script from attaching to a user's running App database.
    server = start_mongod(scratch / "db")
    os.environ.update(
        {
            "FIFTYONE_DATABASE_URI": server.uri,
            "FIFTYONE_DEFAULT_DATASET_DIR": str(scratch / "datasets"),
            "FIFTYONE_CONFIG_PATH": str(scratch / "config.json"),
            "FIFTYONE_DO_NOT_TRACK": "true",
            "FIFTYONE_DATABASE_VALIDATION": "false",
            "FIFTYONE_SHOW_PROGRESS_BARS": "false",
            "FIFTYONE_NTT_TEST_MODELS": "fake",
            "FIFTYONE_NTT_BANKS_DIR": str(scratch / "banks"),
        }
    )
    # registered before fiftyone is imported: runs after FiftyOne's own exit handler
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    atexit.register(server.stop)
    run(args, scratch)


def run(args, scratch: Path) -> None:
    import fiftyone as fo
    import numpy as np
    from PIL import Image

    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.config import NTTConfig
    from fiftyone_ntt.fiftyone.dataset.labels import predictions_to_detections
    from fiftyone_ntt.fiftyone.runs.job import segment as segment_fn
    from fiftyone_ntt.images import load_image
    from fiftyone_ntt.segmenter import Segmenter
    from fiftyone_ntt.testing import ColorEncoder, RegionProposer, paint

    height, width = 48, 64
    rng = np.random.default_rng(0)
    samples = []
    for i in range(args.samples + 1):
        x, y = int(rng.integers(0, 30)), int(rng.integers(0, 20))
        color = 1 + i % 3
        path = scratch / f"s{i:04d}.png"
        Image.fromarray(paint((height, width), [(color, (x, y, x + 24, y + 20))])).save(path)
        det = fo.Detection(
            label=["red", "green", "blue"][color - 1],
            bounding_box=[x / width, y / height, 24 / width, 20 / height],
            mask=np.ones((20, 24), dtype=bool),
            tags=["ntt:ref"] if i < 3 else [],
        )
        samples.append(fo.Sample(filepath=str(path), ground_truth=fo.Detections(detections=[det])))
    dataset = fo.Dataset("bench-resume")
    dataset.add_samples(samples)
    nf.build_bank(dataset, "ground_truth", "b")
    bank = nf.load_bank(dataset, "b")
    config = NTTConfig(points_per_side=16)
    encoder, proposer = ColorEncoder(), RegionProposer()
    target = dataset.skip(3)  # not the reference samples
    ids, paths = target.values(["id", "filepath"])

    def with_bookkeeping(field: str) -> float:
        start = time.perf_counter()
        summary = segment_fn(
            target,
            bank,
            field,
            config=config,
            encoder=encoder,
            proposer=proposer,
            skip_references=False,
            batch_size=args.batch_size,
            prefetch=0,
        )
        assert summary["processed"] == len(ids), summary
        return time.perf_counter() - start

    def bare(field: str) -> float:
        start = time.perf_counter()
        dataset.add_sample_field(field, fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections)
        segmenter = Segmenter(encoder, proposer, bank, config)
        pending = {}
        for sample_id, path in zip(ids, paths):
            pending[sample_id] = predictions_to_detections(segmenter.predict(load_image(path)))
            if len(pending) >= args.batch_size:
                dataset.set_values(field, pending, key_field="id")
                pending = {}
        if pending:
            dataset.set_values(field, pending, key_field="id")
        return time.perf_counter() - start

    def resumed_noop(field: str) -> float:
        start = time.perf_counter()
        summary = segment_fn(
            target,
            bank,
            field,
            config=config,
            encoder=encoder,
            proposer=proposer,
            skip_references=False,
        )
        assert summary["processed"] == 0 and summary["done_before"] == len(ids)
        return time.perf_counter() - start

    bare("warmup")  # first-call costs (imports, caches) out of the comparison
    direct_costs(args, dataset, target, ids, bank, config, encoder, proposer)
    timings = {"segment": [], "bare": [], "rerun (all done)": []}
    for r in range(args.repeats):
        # alternate the order, so that neither always runs on the larger dataset
        if r % 2:
            timings["segment"].append(with_bookkeeping(f"seg{r}"))
            timings["bare"].append(bare(f"bare{r}"))
        else:
            timings["bare"].append(bare(f"bare{r}"))
            timings["segment"].append(with_bookkeeping(f"seg{r}"))
        timings["rerun (all done)"].append(resumed_noop(f"seg{r}"))

    n = len(ids)
    print(
        f"samples: {n} ({width}x{height} px), batch_size {args.batch_size}, "
        f"repeats {args.repeats}, torch threads {__import__('torch').get_num_threads()}"
    )
    print("| run | min total (s) | median total (s) | per sample, min (ms) | all runs (s) |")
    print("|---|---|---|---|---|")
    for name, values in timings.items():
        if not values:
            continue
        runs = ", ".join(f"{v:.2f}" for v in values)
        print(
            f"| {name} | {min(values):.2f} | {statistics.median(values):.2f} | "
            f"{1000 * min(values) / n:.1f} | {runs} |"
        )
    for stat in (min, statistics.median) if args.repeats else ():
        overhead = stat(timings["segment"]) - stat(timings["bare"])
        print(
            f"overhead of the bookkeeping ({stat.__name__}): {overhead:.2f} s per {n} samples "
            f"({1000 * overhead / n:.2f} ms per sample, "
            f"{100 * overhead / stat(timings['bare']):.1f}% of the bare loop)"
        )
    dataset.delete()


def direct_costs(args, dataset, target, ids, bank, config, encoder, proposer) -> None:
    """Each bookkeeping operation timed on its own (median of repeats): robust to the load of
    other processes, which the end-to-end difference is not."""
    import fiftyone as fo
    import fiftyone.core.runs as fors
    from fiftyone import ViewField as F

    from fiftyone_ntt.fiftyone.dataset.fields import RUN_ATTRIBUTE
    from fiftyone_ntt.fiftyone.dataset.labels import predictions_to_detections
    from fiftyone_ntt.fiftyone.runs import claims
    from fiftyone_ntt.fiftyone.runs.job import segment as nf_segment
    from fiftyone_ntt.fiftyone.runs.output_field import reload_schema
    from fiftyone_ntt.segmenter import Segmenter

    def timed(fn, repeats=15):
        values = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            values.append(time.perf_counter() - start)
        return statistics.median(values)

    field = "direct"
    nf_segment(
        target,
        bank,
        field,
        config=config,
        encoder=encoder,
        proposer=proposer,
        skip_references=False,
        batch_size=args.batch_size,
    )
    fingerprint = dataset.get_run_info(field).config.run_fingerprint
    costs = {}

    def claim_release():
        lock = claims.claim(dataset, field)
        claims.release(dataset, field, lock)

    costs["claim + release the field (once per run)"] = timed(claim_release)
    lock = claims.claim(dataset, field)
    costs["heartbeat (once per 10 s)"] = timed(
        lambda: lock.update(claims.heartbeat(dataset, field, lock))
    )
    claims.release(dataset, field, lock)
    info = dataset.get_run_info(field)

    def record():
        results = fors.RunResults(dataset, info.config, field, status="running")
        dataset.save_run_results(field, results, overwrite=True)

    costs["run record (twice per run)"] = 2 * timed(record)
    costs["schema reload (once per run)"] = timed(lambda: reload_schema(dataset))
    plain = timed(lambda: target.values(["id", "filepath"]), 5)
    todo = timed(
        lambda: target.match(F(f"{field}.{RUN_ATTRIBUTE}") != fingerprint).values(
            ["id", "filepath"]
        ),
        5,
    )
    costs["query of the samples not done (once per run, minus the plain listing)"] = todo - plain

    segmenter = Segmenter(encoder, proposer, bank, config)
    from fiftyone_ntt.images import load_image

    predictions = [segmenter.predict(load_image(p)) for p in target.values("filepath")]
    dataset.add_sample_field("marks", fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections)

    def write(**attrs):
        for start in range(0, len(ids), args.batch_size):
            chunk = ids[start : start + args.batch_size]
            values = {
                i: predictions_to_detections(p, **attrs)
                for i, p in zip(chunk, predictions[start : start + args.batch_size])
            }
            dataset.set_values("marks", values, key_field="id")

    with_marks = timed(lambda: write(**{RUN_ATTRIBUTE: fingerprint}), 5)
    without = timed(lambda: write(), 5)
    costs[f"per-sample completion marks (all {len(ids)} samples)"] = with_marks - without
    print(f"direct costs on {len(ids)} samples (median of repeats):")
    print("| operation | seconds |")
    print("|---|---|")
    total = 0.0
    for name, value in costs.items():
        total += value
        print(f"| {name} | {value:.4f} |")
    print(f"| **total per run of {len(ids)} samples** | **{total:.3f}** |")
    print(f"writes, with marks: {with_marks:.3f} s, without: {without:.3f} s")
    dataset.delete_sample_field("marks")


if __name__ == "__main__":
    sys.exit(main())
