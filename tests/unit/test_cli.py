"""The ``fiftyone-ntt`` command line, end to end on a tiny generated COCO dataset.

The models are the tiny random-weight ones (``--dinov2 tiny --sam2 tiny``): predictions are
meaningless, but every stage, file format and error path is exercised.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils

from fiftyone_ntt.cli import main
from fiftyone_ntt.sampling import sample_references_paper

pytestmark = [
    pytest.mark.unit,
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]

TINY = ["--dinov2", "tiny", "--sam2", "tiny"]
# An 8 x 8 prompt grid keeps the tiny SAM2 fast on CPU (the paper's 32 x 32 costs ~10 s/image).
FAST = [*TINY, "--points-per-side", "8"]
# File order of categories is not id order: the bank must sort by id (docs/method.md §2.1).
CATEGORIES = [{"id": 3, "name": "square"}, {"id": 1, "name": "disc"}, {"id": 7, "name": "bar"}]


def _ellipse(x, y, w, h, n=16):
    cx, cy = x + w / 2, y + h / 2
    points = []
    for k in range(n):
        t = 2 * math.pi * k / n
        points += [round(cx + w / 2 * math.cos(t), 1), round(cy + h / 2 * math.sin(t), 1)]
    return points


def _write_split(folder, sizes, seed, first_ann_id):
    """Images with one square (polygon), one disc (polygon) and one bar (box only) each."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    ann_id = first_ann_id
    for index, (width, height) in enumerate(sizes, start=1):
        img = Image.new("RGB", (width, height), (120, 120, 120))
        draw = ImageDraw.Draw(img)
        side = min(36, (width - 40) // 3, height - 24)
        slots = [12 + k * (side + 8) for k in range(3)]
        kinds = ["square", "disc", "bar"]
        for kind, x in zip(kinds, slots):
            y = int(rng.integers(10, max(11, height - side - 10)))
            x += int(rng.integers(0, 3))
            ann_id += 1
            ann = {"id": ann_id, "image_id": index, "iscrowd": 0, "area": float(side * side)}
            if kind == "square":
                draw.rectangle([x, y, x + side - 1, y + side - 1], fill=(200, 40, 40))
                polygon = [x, y, x + side, y, x + side, y + side, x, y + side]
                ann.update(category_id=3, bbox=[x, y, side, side], segmentation=[polygon])
            elif kind == "disc":
                polygon = _ellipse(x, y, side, side)
                draw.polygon(polygon, fill=(40, 180, 40))
                ann.update(category_id=1, bbox=[x, y, side, side], segmentation=[polygon])
            else:
                draw.rectangle([x, y, x + side - 5, y + side - 1], fill=(40, 40, 200))
                ann.update(category_id=7, bbox=[x, y, side - 4, side])
            annotations.append(ann)
        name = f"img_{index:02d}.png"
        img.save(folder / name)
        images.append({"id": index, "file_name": name, "width": width, "height": height})
    return {"images": images, "annotations": annotations, "categories": CATEGORIES}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    train = _write_split(root / "train", [(150, 70), (160, 80), (150, 90), (156, 72)], 0, 0)
    val = _write_split(root / "val", [(100, 150), (64, 64)], 1, 100)
    (root / "train.json").write_text(json.dumps(train))
    (root / "val.json").write_text(json.dumps(val))
    return root


def run(args, capsys):
    code = main([*args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def pipeline(dataset):
    """sample-references -> build-bank -> predict, run once for the module."""
    root = dataset
    refs, bank, results = root / "refs.json", root / "bank.safetensors", root / "results.json"
    assert (
        main(
            [
                "--quiet",
                "sample-references",
                str(root / "train.json"),
                "--shots",
                "2",
                "--seed",
                "33",
                "--out",
                str(refs),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "--quiet",
                "build-bank",
                str(refs),
                "--images",
                str(root / "train"),
                "--out",
                str(bank),
                *TINY,
            ]
        )
        == 0
    )
    predict = [
        "--quiet",
        "predict",
        str(bank),
        "--images",
        str(root / "val"),
        "--targets",
        str(root / "val.json"),
        *FAST,
    ]
    assert main([*predict, "--out", str(results)]) == 0
    return {"refs": refs, "bank": bank, "results": results, "predict": predict}


def test_sample_references_writes_the_sampled_coco_file(dataset, pipeline):
    refs = json.loads(pipeline["refs"].read_text())
    train = json.loads((dataset / "train.json").read_text())
    expected = sample_references_paper(train, [3, 1, 7], shots=2, seed=33)
    sampled_order = [a["id"] for a in refs["annotations"]]
    assert sampled_order == [e["ann_ids"][0] for cat in expected for e in expected[cat]]
    assert [c["id"] for c in refs["categories"]] == [3, 1, 7]
    image_ids = {a["image_id"] for a in refs["annotations"]}
    assert {r["id"] for r in refs["images"]} == image_ids
    assert refs["info"]["fiftyone_ntt"]["seed"] == 33
    # Box-only annotations stay box-only.
    assert all("segmentation" not in a for a in refs["annotations"] if a["category_id"] == 7)


def test_build_bank_sorts_classes_by_category_id(pipeline):
    from fiftyone_ntt.memory_bank import MemoryBank

    bank = MemoryBank.load(pipeline["bank"])
    assert bank.class_names == ("disc", "square", "bar")
    assert bank.metadata["category_ids"] == [1, 3, 7]
    assert bank.shots_per_class() == {"disc": 2, "square": 2, "bar": 2}
    refs = json.loads(pipeline["refs"].read_text())
    box_only = {str(a["id"]) for a in refs["annotations"] if "segmentation" not in a}
    generated = {r for r, g in zip(bank.reference_ids, bank.generated_masks) if g}
    assert generated == box_only and len(box_only) == 2


def test_predict_writes_valid_deterministic_coco_results(dataset, pipeline, tmp_path):
    raw = pipeline["results"].read_bytes()
    results = json.loads(raw)
    val = json.loads((dataset / "val.json").read_text())
    sizes = {r["id"]: (r["height"], r["width"]) for r in val["images"]}
    assert isinstance(results, list)
    for det in results:
        assert set(det) == {"image_id", "category_id", "bbox", "score", "segmentation"}
        assert det["image_id"] in sizes
        assert det["category_id"] in (1, 3, 7)
        assert 0.0 <= det["score"] <= 1.0
        assert len(det["bbox"]) == 4 and det["bbox"][2] >= 0 and det["bbox"][3] >= 0
        assert tuple(det["segmentation"]["size"]) == sizes[det["image_id"]]
        assert mask_utils.decode(
            {**det["segmentation"], "counts": det["segmentation"]["counts"].encode()}
        ).any()
    for image_id in sizes:
        scores = [d["score"] for d in results if d["image_id"] == image_id]
        assert scores == sorted(scores, reverse=True)
    again = tmp_path / "again.json"
    assert main([*pipeline["predict"], "--out", str(again)]) == 0
    assert again.read_bytes() == raw


def test_predict_options(pipeline, tmp_path):
    baseline = json.loads(pipeline["results"].read_text())
    scores = sorted({d["score"] for d in baseline})
    threshold = scores[len(scores) // 2]
    out = tmp_path / "options.json"
    options = ["--max-detections", "2", "--score-threshold", str(threshold)]
    options += ["--box-convention", "paper"]
    assert main([*pipeline["predict"], "--out", str(out), *options]) == 0
    # Expected: each image's top 2, then the threshold, then boxes 1 px short (docs/method.md §6).
    expected = []
    for image_id in dict.fromkeys(d["image_id"] for d in baseline):
        top = [d for d in baseline if d["image_id"] == image_id][:2]
        for det in top:
            if det["score"] >= threshold:
                x, y, w, h = det["bbox"]
                expected.append({**det, "bbox": [x, y, w - 1, h - 1]})
    results = json.loads(out.read_text())
    assert results == expected
    assert 0 < len(results) < len(baseline)


def test_evaluate_prints_the_table(dataset, pipeline, capsys, tmp_path):
    metrics_path = tmp_path / "metrics.json"
    code, out, err = run(
        [
            "evaluate",
            str(pipeline["results"]),
            "--gt",
            str(dataset / "val.json"),
            "--json",
            str(metrics_path),
        ],
        capsys,
    )
    assert code == 0, err
    # The bar class has no masks in the ground truth: boxes only.
    assert out.splitlines()[0].split()[:3] == ["iou", "AP", "AP50"]
    assert any(line.startswith("bbox") for line in out.splitlines())
    assert not any(line.startswith("segm") for line in out.splitlines())
    assert "no segmentation" in out
    metrics = json.loads(metrics_path.read_text())
    assert metrics["iou_types"] == ["bbox"]
    assert set(metrics["bbox"]["stats"]) >= {"AP", "AP50", "AR100"}

    code, out, err = run(
        [
            "evaluate",
            str(pipeline["results"]),
            "--gt",
            str(dataset / "val.json"),
            "--classes",
            "square,disc",
        ],
        capsys,
    )
    assert code == 0, err
    assert any(line.startswith("segm") for line in out.splitlines())
    assert "square (3)" in out and "bar (7)" not in out


def test_predict_on_bare_images_reports_failures(dataset, pipeline, capsys, tmp_path):
    out = tmp_path / "bare.json"
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    args = [
        "--quiet",
        "predict",
        str(pipeline["bank"]),
        str(dataset / "val" / "img_02.png"),
        str(broken),
        str(tmp_path / "missing.png"),
        "--out",
        str(out),
        *FAST,
    ]
    code, _, err = run(args, capsys)
    assert code == 1
    assert "2 of 3 images could not be read" in err
    assert "broken.png" in err and "missing.png" in err
    results = json.loads(out.read_text())
    baseline = json.loads(pipeline["results"].read_text())
    assert results == [{**d, "image_id": 1} for d in baseline if d["image_id"] == 2]
    mapping = json.loads((tmp_path / "bare.images.json").read_text())
    assert mapping["images"] == [
        {"id": 1, "file_name": str(dataset / "val" / "img_02.png"), "width": 64, "height": 64}
    ]
    assert [c["id"] for c in mapping["categories"]] == [1, 3, 7]
    code, _, _ = run([*args, "--ignore-errors"], capsys)
    assert code == 0


def test_predict_on_a_folder(dataset, pipeline, capsys, tmp_path):
    out = tmp_path / "folder.json"
    code, _, err = run(
        [
            "predict",
            str(pipeline["bank"]),
            "--images",
            str(dataset / "val"),
            "--out",
            str(out),
            *FAST,
        ],
        capsys,
    )
    assert code == 0, err
    # Same images, same ids (1, 2 in file-name order) as val.json: the same results.
    assert out.read_bytes() == pipeline["results"].read_bytes()
    mapping = json.loads((tmp_path / "folder.images.json").read_text())
    assert [r["id"] for r in mapping["images"]] == [1, 2]
    assert [r["file_name"].rsplit("/", 1)[-1] for r in mapping["images"]] == [
        "img_01.png",
        "img_02.png",
    ]


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (
            lambda d, p: [
                "sample-references",
                str(d / "nope.json"),
                "--shots",
                "1",
                "--seed",
                "0",
                "--out",
                str(d / "x.json"),
            ],
            "nope.json",
        ),
        (
            lambda d, p: [
                "sample-references",
                str(d / "train.json"),
                "--shots",
                "1",
                "--seed",
                "0",
                "--classes",
                "zebra",
                "--out",
                str(d / "x.json"),
            ],
            "unknown class 'zebra'",
        ),
        (
            lambda d, p: [
                "sample-references",
                str(d / "train.json"),
                "--shots",
                "9",
                "--seed",
                "0",
                "--out",
                str(d / "x.json"),
            ],
            "class 'square' (id 3) has only 4 valid",
        ),
        (
            lambda d, p: [
                "sample-references",
                str(d / "train.json"),
                "--shots",
                "1",
                "--seed",
                "0",
                "--category-ids",
                "3,99",
                "--out",
                str(d / "x.json"),
            ],
            "unknown category id(s) [99]",
        ),
        (
            lambda d, p: [
                "build-bank",
                str(p["refs"]),
                "--images",
                str(d / "nowhere"),
                "--out",
                str(d / "b.safetensors"),
                *TINY,
            ],
            "does not exist",
        ),
        (
            lambda d, p: [
                "build-bank",
                str(d / "bad.json"),
                "--images",
                str(d / "train"),
                "--out",
                str(d / "b.safetensors"),
                *TINY,
            ],
            "not valid JSON",
        ),
        (
            lambda d, p: [
                "build-bank",
                str(p["refs"]),
                "--images",
                str(d / "val"),
                "--out",
                str(d / "b.safetensors"),
                *TINY,
            ],
            "img_",
        ),
        (
            lambda d, p: [
                "predict",
                str(d / "missing.safetensors"),
                "--images",
                str(d / "val"),
                "--out",
                str(d / "r.json"),
                *TINY,
            ],
            "missing.safetensors",
        ),
        (
            lambda d, p: [
                "predict",
                str(d / "train.json"),
                "--images",
                str(d / "val"),
                "--out",
                str(d / "r.json"),
                *TINY,
            ],
            "not a readable memory bank",
        ),
        (
            lambda d, p: [
                "predict",
                str(p["bank"]),
                "--targets",
                str(d / "val.json"),
                "--out",
                str(d / "r.json"),
                *TINY,
            ],
            "--images DIR is required",
        ),
        (
            lambda d, p: [
                "evaluate",
                str(p["results"]),
                "--gt",
                str(d / "train.json"),
                "--classes",
                "cat",
            ],
            "unknown class 'cat'",
        ),
        (
            lambda d, p: ["evaluate", str(d / "val.json"), "--gt", str(d / "val.json")],
            "must be a JSON list",
        ),
        (
            lambda d, p: [
                "build-bank",
                str(p["refs"]),
                "--images",
                str(d / "train"),
                "--out",
                str(d / "b.safetensors"),
                "--preset",
                "fastest",
                *TINY,
            ],
            "unknown preset 'fastest'",
        ),
        (
            lambda d, p: [
                "build-bank",
                str(p["refs"]),
                "--images",
                str(d / "train"),
                "--out",
                str(d / "b.safetensors"),
                "--dinov2",
                str(d / "no_such_dinov2.pth"),
            ],
            "cannot load the DINOv2 model",
        ),
    ],
)
def test_user_errors_exit_2_with_a_message(dataset, pipeline, capsys, make_args, message):
    (dataset / "bad.json").write_text("{not json")
    code, _, err = run(make_args(dataset, pipeline), capsys)
    assert code == 2
    assert err.startswith("fiftyone-ntt: error: ")
    assert message in err
    assert "Traceback" not in err


def test_argument_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["sample-references", "x.json", "--shots", "0", "--seed", "1", "--out", "y.json"])
    assert info.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err


def test_console_entry_point_reports_without_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fiftyone_ntt.cli",
            "evaluate",
            str(tmp_path / "r.json"),
            "--gt",
            str(tmp_path / "g.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("fiftyone-ntt: error: ")
    assert "g.json" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_common_options_before_or_after_the_subcommand():
    from fiftyone_ntt.cli import build_parser

    parser = build_parser()
    base = ["evaluate", "r.json", "--gt", "g.json"]
    assert parser.parse_args(base).debug is False
    assert parser.parse_args(["--debug", *base]).debug is True
    assert parser.parse_args([*base, "--debug"]).debug is True
    assert parser.parse_args(["--quiet", *base]).quiet is True
    assert parser.parse_args([*base, "--quiet"]).quiet is True


def test_predict_in_batches_of_images_gives_the_same_results(pipeline, tmp_path):
    """``--batch-images 3``: both encoders on 3 images at once (sizes differ), same results."""
    baseline = json.loads(pipeline["results"].read_text())
    out = tmp_path / "batched.json"
    assert main([*pipeline["predict"], "--batch-images", "3", "--out", str(out)]) == 0
    batched = json.loads(out.read_text())
    assert len(batched) == len(baseline) > 0
    for a, b in zip(batched, baseline):
        assert (a["image_id"], a["category_id"], a["bbox"]) == (
            b["image_id"],
            b["category_id"],
            b["bbox"],
        )
        assert a["segmentation"] == b["segmentation"]
        assert abs(a["score"] - b["score"]) < 1e-5
    with pytest.raises(SystemExit):
        main([*pipeline["predict"], "--batch-images", "0", "--out", str(out)])
