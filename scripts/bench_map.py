"""Cost of the embeddings map (issue 22; docs/benchmarks.md "Map"): time and peak memory of
``fiftyone.brain.compute_visualization`` over a patches field with precomputed vectors, as
``map_predictions`` runs it, for 10k and 100k predictions; and what float16 storage of the
vectors costs and changes (bytes per 100k predictions as FiftyOne stores them, nearest
neighbours, the map's points).

    .venv/bin/python scripts/bench_map.py                  # storage, then 10k and 100k maps
    .venv/bin/python scripts/bench_map.py --sizes 10000 --methods pca

Vectors are random unit vectors of width 768 (DINOv2-B's; DINOv2-L's 1024 is reported for
storage), drawn around 50 cluster centres so that neighbourhoods mean something. Each map
runs in a child process of its own (its peak RSS is the map's), against a private mongod.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from private_mongod import start_mongod

PER_SAMPLE = 10  # predictions per image in the synthetic dataset


def clustered_unit_vectors(n: int, dim: int, seed: int = 0, clusters: int = 50):
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    vectors = centres[rng.integers(0, clusters, n)] + 0.8 * rng.normal(size=(n, dim))
    vectors = vectors.astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def storage_report() -> dict:
    """Bytes per 100k predictions (FiftyOne's serialisation of an array attribute) and what
    float16 changes: top-10 neighbours and PCA map points."""
    import fiftyone.core.utils as fou
    import numpy as np
    from sklearn.decomposition import PCA

    out = {}
    for dim in (768, 1024):
        vectors = clustered_unit_vectors(200, dim)
        sizes = {}
        for dtype in ("float32", "float16"):
            each = [len(fou.serialize_numpy_array(v.astype(dtype))) for v in vectors]
            sizes[dtype] = int(np.mean(each) * 100_000)
        out[f"bytes_per_100k_d{dim}"] = sizes
    vectors = clustered_unit_vectors(20_000, 768, seed=1)
    rounded = vectors.astype(np.float16).astype(np.float32)
    queries = np.arange(0, 20_000, 40)  # 500 queries
    exact = np.argsort(-(vectors[queries] @ vectors.T), axis=1)[:, 1:11]
    approx = np.argsort(-(rounded[queries] @ rounded.T), axis=1)[:, 1:11]
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, approx)])
    same_first = float(np.mean(exact[:, 0] == approx[:, 0]))
    points = PCA(2, random_state=51).fit_transform(vectors)
    points16 = PCA(2, random_state=51).fit_transform(rounded)
    spread = float(np.ptp(points, axis=0).max())
    out["top10_overlap_f16_vs_f32"] = round(float(overlap), 4)
    out["same_nearest_f16_vs_f32"] = round(same_first, 4)
    out["pca_max_shift_over_spread"] = float(np.abs(points - points16).max() / spread)
    return out


def one_map(size: int, method: str) -> dict:
    """In this (child) process: a dataset of ``size`` box-only predictions, its map."""
    import fiftyone as fo
    import fiftyone.brain as fob

    vectors = clustered_unit_vectors(size, 768, seed=2)
    dataset = fo.Dataset()
    samples = []
    for start in range(0, size, PER_SAMPLE):
        count = min(PER_SAMPLE, size - start)
        dets = [
            fo.Detection(label=f"c{(start + i) % 5}", bounding_box=[0.1, 0.1, 0.2, 0.2])
            for i in range(count)
        ]
        samples.append(
            fo.Sample(filepath=f"/tmp/img_{start}.png", map=fo.Detections(detections=dets))
        )
    started = time.perf_counter()
    dataset.add_samples(samples, progress=False)
    write_s = time.perf_counter() - started
    ids = dataset.values("id")
    by_sample = {
        sample_id: vectors[i * PER_SAMPLE : (i + 1) * PER_SAMPLE] for i, sample_id in enumerate(ids)
    }
    kwargs = {"seed": 51}
    if method in ("tsne", "umap"):
        kwargs["verbose"] = False
    started = time.perf_counter()
    fob.compute_visualization(
        dataset,
        patches_field="map",
        embeddings=by_sample,
        brain_key="map",
        method=method,
        progress=False,
        **kwargs,
    )
    map_s = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    dataset.delete()
    return {
        "predictions": size,
        "method": method,
        "write_labels_s": round(write_s, 1),
        "compute_visualization_s": round(map_s, 1),
        "peak_rss_mb": round(peak_mb),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--methods", nargs="+", default=["pca", "tsne"])
    parser.add_argument("--tsne-limit", type=int, default=10_000, help="t-SNE only up to this")
    parser.add_argument("--one", nargs=2, metavar=("SIZE", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # a child: the environment is set by the parent
        print(json.dumps(one_map(int(args.one[0]), args.one[1])))
        return

    scratch = Path(tempfile.mkdtemp(prefix="ntt-bench-map-"))
    for key in [k for k in os.environ if k.startswith("FIFTYONE_")]:
        del os.environ[key]
    # Its own mongod: never a user's database (see private_mongod.py).
    server = start_mongod(scratch / "db")
    os.environ.update(
        {
            "FIFTYONE_DATABASE_URI": server.uri,
            "FIFTYONE_DEFAULT_DATASET_DIR": str(scratch / "datasets"),
            "FIFTYONE_CONFIG_PATH": str(scratch / "config.json"),
            "FIFTYONE_DO_NOT_TRACK": "true",
            "FIFTYONE_DATABASE_VALIDATION": "false",
            "FIFTYONE_SHOW_PROGRESS_BARS": "false",
        }
    )
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    atexit.register(server.stop)

    print(json.dumps({"storage": storage_report()}), flush=True)
    for size in args.sizes:
        for method in args.methods:
            if method == "tsne" and size > args.tsne_limit:
                continue
            child = subprocess.run(
                [sys.executable, __file__, "--one", str(size), method],
                capture_output=True,
                text=True,
                check=False,
            )
            lines = [line for line in child.stdout.splitlines() if line.startswith("{")]
            if child.returncode or not lines:
                print(
                    json.dumps(
                        {"predictions": size, "method": method, "error": child.stderr[-500:]}
                    )
                )
            else:
                print(lines[-1], flush=True)


if __name__ == "__main__":
    main()
