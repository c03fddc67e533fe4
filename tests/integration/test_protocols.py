"""Paper protocols and custom COCO data through FiftyOne (``fiftyone_ntt.fiftyone.protocols``)
on generated folders in each layout, with the fake models: the numbers are meaningless, the
tests check the protocol (images, classes, ground truth, reference ids, table, resume)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.integration

COCO_NOVEL = (1, 2, 3, 4, 5, 6, 7, 9, 16, 17, 18, 19, 20, 21, 44, 62, 63, 64, 67, 72)
QUADRANTS = [(12, 12, 52, 52), (72, 12, 112, 52), (12, 72, 52, 112), (72, 72, 112, 112)]
VOC_NAMES = (
    "aeroplane bicycle bird boat bottle bus car cat chair cow diningtable dog horse "
    "motorbike person pottedplant sheep sofa train tvmonitor"
).split()


def _write(json_path: Path, image_dir: Path, images, categories, *, masks=True):
    """Paint ``images`` = [(file, W, H, [(cat_id, (x1, y1, x2, y2), extra)])] into
    ``image_dir`` and write the COCO file; colour = palette 1 + cat_id % 5."""
    from PIL import Image

    from fiftyone_ntt.testing import paint

    image_dir.mkdir(parents=True, exist_ok=True)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    records, annotations = [], []
    for image_id, (name, width, height, objects) in enumerate(images, 1):
        shapes = [(1 + cat % 5, box) for cat, box, _ in objects]
        Image.fromarray(paint((height, width), shapes)).save(image_dir / name)
        records.append({"id": image_id * 10, "file_name": name, "width": width, "height": height})
        for cat, (x1, y1, x2, y2), extra in objects:
            ann = {
                "id": 1000 + len(annotations),
                "image_id": image_id * 10,
                "category_id": cat,
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": float((x2 - x1) * (y2 - y1)),
                "iscrowd": 0,
            }
            if masks:
                ann["segmentation"] = [[x1, y1, x2, y1, x2, y2, x1, y2]]
            ann.update(extra)
            annotations.append(ann)
    coco = {"images": records, "annotations": annotations, "categories": categories}
    json_path.write_text(json.dumps(coco))
    return coco


@pytest.fixture
def protocol_env(fo_session, tmp_path, monkeypatch):
    """Fake models, banks in a temporary folder, a unique dataset prefix (datasets deleted)."""
    monkeypatch.setenv("FIFTYONE_NTT_TEST_MODELS", "fake")
    monkeypatch.setenv("FIFTYONE_NTT_BANKS_DIR", str(tmp_path / "banks"))
    prefix = f"ntt-proto-{uuid.uuid4().hex[:8]}"
    yield prefix
    for name in fo_session.list_datasets():
        if name.startswith(prefix):
            fo_session.delete_dataset(name)


def _run(spec, prefix, tmp_path, **kwargs):
    from fiftyone_ntt.fiftyone.protocols import run_protocol

    lines = []
    report = run_protocol(
        spec,
        prefix=prefix,
        points_per_side=16,
        output_dir=tmp_path / "out",
        log=lines.append,
        **kwargs,
    )
    return report, lines


def _tagged_coco_ids(dataset, tag):
    import fiftyone as fo

    view = dataset.filter_labels("ground_truth", fo.ViewField("tags").contains(tag))
    return set(view.values("ground_truth.detections.coco_id", unwind=True))


def test_coco_fsod_protocol_and_resume(protocol_env, tmp_path, fo_session):
    from fiftyone_ntt.fiftyone.protocols import coco_fsod_spec
    from fiftyone_ntt.sampling import sample_references_paper

    root = tmp_path / "coco"
    categories = [{"id": c, "name": f"cls{c}"} for c in (*COCO_NOVEL, 8, 10)]
    train = []
    for i in range(5):  # every novel class once, 4 per image
        objects = [(COCO_NOVEL[4 * i + q], QUADRANTS[q], {}) for q in range(4)]
        train.append((f"t{i}.png", 128, 128, objects))
    # second candidates for some classes (so the seed matters), a base class, a crowd and a
    # too-small instance that the paper's rules refuse, and an image without references
    train.append(
        (
            "t5.png",
            128,
            128,
            [(1, QUADRANTS[0], {}), (2, QUADRANTS[1], {}), (8, QUADRANTS[2], {})],
        )
    )
    train.append(
        ("t6.png", 128, 128, [(1, QUADRANTS[0], {"iscrowd": 1}), (3, (20, 20, 40, 40), {})])
    )
    train.append(("t7.png", 128, 128, [(10, QUADRANTS[3], {})]))
    train_coco = _write(
        root / "annotations" / "instances_train2017.json", root / "train2017", train, categories
    )
    val = [
        ("v0.png", 96, 96, [(1, (10, 10, 40, 40), {}), (8, (50, 50, 90, 90), {})]),
        ("v1.png", 96, 96, [(2, (20, 30, 60, 70), {}), (3, (62, 10, 90, 40), {"iscrowd": 1})]),
        ("v2.png", 96, 96, [(10, (10, 10, 50, 50), {})]),  # no novel object: all FP
    ]
    val_coco = _write(
        root / "annotations" / "instances_val2017.json", root / "val2017", val, categories
    )

    seed = 5
    spec = coco_fsod_spec(root, 1, seed)
    expected = sample_references_paper(train_coco, COCO_NOVEL, 1, seed)
    expected_ids = [a for entries in expected.values() for e in entries for a in e["ann_ids"]]
    assert spec.reference_ann_ids == expected_ids
    assert len(expected_ids) == 20

    # smoke run on the first two images
    report, _ = _run(spec, protocol_env, tmp_path, max_samples=2)
    assert report["num_target_images"] == 2
    assert report["evaluation"]["num_images"] == 2
    assert report["segment"]["processed"] == 2

    report, _ = _run(spec, protocol_env, tmp_path)
    refs = fo_session.load_dataset(report["datasets"]["references"])
    targets = fo_session.load_dataset(report["datasets"]["targets"])
    # only the reference images are imported from train2017
    ref_images = {a["image_id"] for a in train_coco["annotations"] if a["id"] in expected_ids}
    assert set(refs.values("coco_id")) == ref_images
    assert _tagged_coco_ids(refs, report["reference_tag"]) == set(expected_ids)
    # all of val2017, novel classes in category-id order, the bank reused, only v2 is new
    assert sorted(targets.values("coco_id")) == [r["id"] for r in val_coco["images"]]
    assert report["classes"] == [f"cls{c}" for c in sorted(COCO_NOVEL)]
    assert report["bank"]["reused"] is True
    assert report["segment"]["done_before"] == 2 and report["segment"]["processed"] == 1
    evaluation = report["evaluation"]
    assert evaluation["num_images"] == 3
    assert evaluation["category_ids"] == sorted(COCO_NOVEL)
    assert evaluation["iou_types"] == ["bbox", "segm"]
    assert [r["category_id"] for r in evaluation["segm"]["per_class"]] == sorted(COCO_NOVEL)
    assert report["sampled"] == {str(k): v for k, v in expected.items()}
    assert "bbox nAP" in report["table"] and "segm nAP75" in report["table"]
    assert "25.6 (seed 33)" in report["table"]  # 1-shot published numbers
    # results: val image ids, novel category ids, paper boxes (1 px short of the mask extent)
    results = json.loads(Path(report["results_file"]).read_text())
    assert results and {r["image_id"] for r in results} <= {10, 20, 30}
    assert {r["category_id"] for r in results} <= set(COCO_NOVEL)
    # the fake models find the painted red square of v0 exactly: 30 px wide -> bbox w 29
    red = [r for r in results if r["image_id"] == 10 and r["bbox"][:2] == [10.0, 10.0]]
    assert red and red[0]["bbox"][2:] == [29.0, 29.0]
    assert targets.info["ntt_protocols"][spec.name]["pred_field"] == report["pred_field"]
    # the fast mask paste of the export equals FiftyOne's rendering of the detections
    from fiftyone_ntt.fiftyone.dataset.labels import detection_box_xyxy, detection_full_mask
    from fiftyone_ntt.fiftyone.protocols.importing import full_mask as _full_mask

    checked = 0
    for sample in targets.select_fields([report["pred_field"], "metadata"]):
        w, h = sample.metadata.width, sample.metadata.height
        for det in sample[report["pred_field"]].detections:
            box = tuple(round(v) for v in detection_box_xyxy(det, w, h))
            fast = _full_mask(det, box, w, h, detection_full_mask)
            assert np.array_equal(fast.astype(bool), detection_full_mask(det, w, h))
            checked += 1
    assert checked == len(results)

    # a rerun resumes: nothing re-imported, the bank reused, no sample re-segmented
    again, _ = _run(spec, protocol_env, tmp_path)
    assert again["bank"]["reused"] is True
    assert again["bank"]["fingerprint"] == report["bank"]["fingerprint"]
    assert again["segment"]["processed"] == 0 and again["segment"]["done_before"] == 3
    assert len(fo_session.load_dataset(report["datasets"]["targets"])) == 3
    assert again["evaluation"]["bbox"]["stats"] == evaluation["bbox"]["stats"]

    # another seed: other tag, other bank, other field, same datasets
    other = coco_fsod_spec(root, 1, seed + 1)
    assert other.name != spec.name and other.name.endswith(f"seed{seed + 1}")


def _voc_layout(root: Path):
    categories = [{"id": i, "name": n} for i, n in enumerate(VOC_NAMES, 1)]
    cid = {n: i for i, n in enumerate(VOC_NAMES, 1)}
    novel = ("bird", "bus", "cow", "motorbike")
    train = [
        ("a.jpg", 128, 128, [(cid[n], QUADRANTS[q], {}) for q, n in enumerate(novel)]),
        ("b.jpg", 128, 128, [(cid["sofa"], QUADRANTS[0], {}), (cid["person"], QUADRANTS[1], {})]),
        ("c.jpg", 128, 128, [(cid["bird"], QUADRANTS[2], {"difficult": 1})]),
    ]
    test = [
        (
            "d.jpg",
            96,
            96,
            [(cid["bird"], (10, 10, 40, 40), {}), (cid["cow"], (50, 50, 90, 90), {})],
        ),
        ("e.jpg", 96, 96, [(cid["sofa"], (5, 5, 60, 60), {"difficult": 1})]),
    ]
    ann = root / "annotations"
    tr = _write(
        ann / "voc0712_trainval_with_segm.json", root / "JPEGImages", train, categories, masks=False
    )
    _write(ann / "voc07_test_with_segm.json", root / "JPEGImages", test, categories, masks=False)
    return tr


def test_voc_split_box_only(protocol_env, tmp_path, fo_session):
    from fiftyone_ntt.fiftyone.protocols import VOC_NOVEL_CLASSES, voc_spec
    from fiftyone_ntt.sampling import sample_references_paper

    root = tmp_path / "voc"
    train = _voc_layout(root)
    spec = voc_spec(root, 1, 1, seed=33)
    difficult = [a["id"] for a in train["annotations"] if a.get("difficult")]
    novel_ids = sorted(VOC_NAMES.index(n) + 1 for n in VOC_NOVEL_CLASSES[1])
    assert spec.class_ids == novel_ids == spec.eval_category_ids
    # "difficult" is crowd: never a reference (the paper's rules skip crowd)
    for ann in train["annotations"]:
        if ann.get("difficult"):
            ann["iscrowd"] = 1
    expected = sample_references_paper(train, novel_ids, 1, 33)
    assert spec.reference_ann_ids == [e["ann_ids"][0] for v in expected.values() for e in v]
    assert not set(difficult) & set(spec.reference_ann_ids)

    report, _ = _run(spec, protocol_env, tmp_path)
    refs = fo_session.load_dataset(report["datasets"]["references"])
    # box-only references: the bank made their masks with the (fake) SAM 2
    from fiftyone_ntt.fiftyone.banks.index import get_bank_info

    assert get_bank_info(refs, report["bank"]["key"])["generated_masks"] == 5
    evaluation = report["evaluation"]
    assert evaluation["iou_types"] == ["bbox"]  # box-only ground truth
    assert evaluation["num_images"] == 2 and evaluation["category_ids"] == novel_ids
    assert "bbox nAP50" in report["table"] and "70.8 (split 1)" in report["table"]
    assert "segm nAP" in report["table"] and "n/a" in report["table"]
    targets = fo_session.load_dataset(report["datasets"]["targets"])
    crowd = targets.values("ground_truth.detections.iscrowd", unwind=True)
    assert sorted(crowd) == [0, 0, 1]  # the difficult sofa is crowd


def test_cd_fsod_layout(protocol_env, tmp_path):
    from fiftyone_ntt.fiftyone.protocols import cd_fsod_spec

    root = tmp_path / "ArTaxOr"
    categories = [{"id": 1, "name": "Araneae"}, {"id": 2, "name": "Coleoptera"}]
    shots = _write(
        root / "annotations" / "5_shot.json",
        root / "train",
        [
            (
                "s.png",
                128,
                128,
                [(1, QUADRANTS[0], {}), (2, QUADRANTS[3], {}), (1, QUADRANTS[1], {})],
            )
        ],
        categories,
        masks=False,
    )
    _write(
        root / "annotations" / "test.json",
        root / "test",
        [
            ("q.png", 96, 96, [(1, (10, 10, 40, 40), {})]),
            ("r.png", 96, 96, [(2, (30, 30, 80, 80), {})]),
        ],
        categories,
        masks=False,
    )
    spec = cd_fsod_spec(root, 5)
    assert spec.reference_ann_ids == [a["id"] for a in shots["annotations"]]
    report, _ = _run(spec, protocol_env, tmp_path)
    assert report["classes"] == ["Araneae", "Coleoptera"]
    assert report["evaluation"]["iou_types"] == ["bbox"]
    assert report["segment"]["processed"] == 2
    assert "35.7 (ArTaxOr)" in report["table"] and "22.4" in report["table"]


def test_custom_coco_unequal_shots_repair_and_cli(protocol_env, tmp_path, fo_session, capsys):
    from PIL import Image

    from fiftyone_ntt.cli.protocol import main

    images = tmp_path / "custom" / "images"
    categories = [{"id": 7, "name": "bird"}, {"id": 9, "name": "boat"}]
    refs = _write(
        tmp_path / "custom" / "refs.json",
        images,
        [
            ("r0.png", 120, 100, [(7, (10, 10, 50, 50), {}), (9, (60, 40, 110, 90), {})]),
            ("r1.png", 120, 100, [(7, (30, 20, 70, 60), {})]),
        ],
        categories,
    )
    refs["images"][0]["width"] = 0  # repaired from the file
    del refs["images"][1]["height"]
    for ann in refs["annotations"]:  # the boat reference is box-only
        if ann["category_id"] == 9:
            del ann["segmentation"]
    (tmp_path / "custom" / "refs.json").write_text(json.dumps(refs))
    targets = _write(
        tmp_path / "custom" / "targets.json",
        images,
        [
            ("x0.png", 90, 80, [(7, (5, 5, 40, 40), {}), (9, (45, 30, 85, 75), {})]),
            ("x1.png", 90, 80, [(9, (10, 10, 60, 60), {}), (3, (62, 62, 80, 78), {})]),
        ],
        categories,
    )
    targets["images"][1]["width"] = 0
    (tmp_path / "custom" / "targets.json").write_text(json.dumps(targets))

    out = tmp_path / "out"
    argv = [
        "custom",
        str(tmp_path / "custom" / "refs.json"),
        str(tmp_path / "custom" / "targets.json"),
        str(images),
        "--name",
        "toy",
        "--prefix",
        protocol_env,
        "--points-per-side",
        "16",
        "--output-dir",
        str(out),
        "--export-pngs",
        "2",
        "--fiftyone-eval",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "bbox AP" in printed and "segm AP" in printed
    report = json.loads((out / "toy_report.json").read_text())
    assert report["reference_ids"] == [a["id"] for a in refs["annotations"]]
    assert report["classes"] == ["bird", "boat"]  # 2 shots of bird, 1 of boat
    assert report["evaluation"]["category_ids"] == [7, 9]
    assert report["evaluation"]["iou_types"] == ["bbox", "segm"]
    ref_ds = fo_session.load_dataset(report["datasets"]["references"])
    sizes = dict(zip(ref_ds.values("coco_id"), ref_ds.values("metadata.width")))
    assert sizes == {10: 120, 20: 120}
    # FiftyOne's evaluation is registered for the App (TP/FP/FN fields on the targets)
    assert report["fiftyone_eval"]["eval_key"] == "eval_toy"
    targets_ds = fo_session.load_dataset(report["datasets"]["targets"])
    assert "eval_toy" in targets_ds.list_evaluations()
    assert targets_ds.has_sample_field("eval_toy_tp")
    pngs = sorted(Path(p) for p in report["png_files"])
    assert [p.name for p in pngs] == ["x0.png", "x1.png"]
    with Image.open(pngs[0]) as png:
        picture = np.asarray(png.convert("RGB"))
    assert picture.shape == (80, 2 * 90 + 10, 3)
    assert (picture[:, 90:100] == 255).all()

    # rerun through the CLI: resumed
    assert main(argv) == 0
    report = json.loads((out / "toy_report.json").read_text())
    assert report["bank"]["reused"] is True and report["segment"]["processed"] == 0

    before = report["bank"]["fingerprint"]
    # other settings: the bank is rebuilt; the old predictions are not mixed with new ones
    changed = [a if a != "16" else "8" for a in argv]
    capsys.readouterr()
    assert main(changed) == 2
    assert "overwrite" in capsys.readouterr().err
    assert main([*changed, "--overwrite"]) == 0
    report = json.loads((out / "toy_report.json").read_text())
    assert report["bank"]["fingerprint"] != before and report["segment"]["processed"] == 2


def test_missing_category_name_is_explained(tmp_path):
    from fiftyone_ntt.fiftyone.protocols import custom_spec

    images = tmp_path / "images"
    _write(
        tmp_path / "r.json",
        images,
        [("a.png", 64, 64, [(1, (12, 12, 50, 50), {})])],
        [{"id": 1, "name": "cat"}],
    )
    _write(tmp_path / "t.json", images, [("b.png", 64, 64, [])], [{"id": 1, "name": "dog"}])
    with pytest.raises(ValueError, match="names must match"):
        custom_spec(tmp_path / "r.json", tmp_path / "t.json", images)
