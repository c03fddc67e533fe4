"""COCO input/output and evaluation (docs/method.md §6, §2.4, §11.3)."""

from __future__ import annotations

import contextlib
import copy
import io
import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from fiftyone_ntt.coco import (
    STAT_NAMES,
    CocoFormatError,
    annotation_to_mask,
    evaluate,
    format_table,
    iter_references,
    load_coco,
    load_results,
    predictions_to_coco,
    repair_image_sizes,
    restrict_to_categories,
    write_json,
)
from fiftyone_ntt.types import Predictions

pytestmark = [
    pytest.mark.unit,
    # pycocotools' Cython decode under numpy 2 (not ours).
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]


def _mask_from_box(h, w, box):
    x1, y1, x2, y2 = box
    mask = np.zeros((h, w), dtype=bool)
    mask[y1:y2, x1:x2] = True
    return mask


def _predictions(masks, scores, class_ids, names=("a", "b")):
    masks = np.asarray(masks, dtype=bool)
    boxes = []
    for m in masks:
        ys, xs = np.nonzero(m)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return Predictions(masks, np.array(boxes), np.array(scores), np.array(class_ids), names)


# ------------------------------------------------------------------------- results output


def test_rle_round_trip():
    rng = np.random.default_rng(0)
    masks = rng.random((3, 37, 53)) > 0.6
    masks[:, 5, 5] = True
    preds = _predictions(masks, [0.9, 0.5, 0.1], [0, 1, 0])
    results = predictions_to_coco(preds, image_id=7, category_ids=[11, 22])
    assert len(results) == 3
    for det, mask in zip(results, masks):
        assert isinstance(det["segmentation"]["counts"], str)  # JSON-serialisable
        decoded = mask_utils.decode(
            {"size": det["segmentation"]["size"], "counts": det["segmentation"]["counts"]}
        )
        np.testing.assert_array_equal(decoded.astype(bool), mask)
    json.dumps(results)


def test_result_fields_order_and_types():
    masks = [_mask_from_box(20, 30, (1, 1, 5, 5)), _mask_from_box(20, 30, (10, 2, 12, 9))]
    preds = _predictions(masks, [0.75, 0.25], [1, 0])
    results = predictions_to_coco(preds, image_id=3, category_ids=[5, 9])
    assert [r["category_id"] for r in results] == [9, 5]
    assert [r["score"] for r in results] == [0.75, 0.25]
    for r in results:
        assert type(r["score"]) is float
        assert all(type(v) is float for v in r["bbox"])
        assert r["image_id"] == 3
        assert set(r) == {"image_id", "category_id", "bbox", "score", "segmentation"}


@pytest.mark.parametrize(
    ("convention", "expected"),
    [("exact", [3.0, 2.0, 5.0, 3.0]), ("paper", [3.0, 2.0, 4.0, 2.0])],
)
def test_box_conventions(convention, expected):
    # Columns 3..7 and rows 2..4 are occupied: 5 x 3 pixels.
    mask = _mask_from_box(10, 12, (3, 2, 8, 5))
    preds = _predictions([mask], [0.5], [0])
    np.testing.assert_array_equal(preds.boxes[0], [3, 2, 8, 5])
    (det,) = predictions_to_coco(preds, 1, [1, 2], box_convention=convention)
    assert det["bbox"] == expected


def test_predictions_to_coco_validation():
    preds = _predictions([_mask_from_box(8, 8, (1, 1, 3, 3))], [0.5], [1])
    with pytest.raises(ValueError, match="1 category ids for 2 classes"):
        predictions_to_coco(preds, 1, [4])
    with pytest.raises(ValueError, match="box_convention"):
        predictions_to_coco(preds, 1, [4, 5], box_convention="inclusive")
    assert predictions_to_coco(Predictions.empty(8, 8, ("a",)), 1, [4]) == []


# ------------------------------------------------------------------------- masks


def test_annotation_to_mask_matches_pycocotools():
    h, w = 40, 50
    polygon = [[5.0, 5.0, 30.5, 6.0, 28.0, 33.0, 7.0, 25.0], [40, 30, 45, 30, 45, 38]]
    solid = _mask_from_box(h, w, (10, 12, 20, 30))
    compressed = mask_utils.encode(np.asfortranarray(solid.astype(np.uint8)))
    compressed["counts"] = compressed["counts"].decode("utf-8")
    # Uncompressed RLE: column-major run lengths starting with zeros.
    flat = solid.T.reshape(-1)
    runs, current, count = [], False, 0
    for v in flat:
        if v != current:
            runs.append(count)
            current, count = v, 0
        count += 1
    runs.append(count)
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "segmentation": polygon},
        {
            "id": 2,
            "image_id": 1,
            "category_id": 1,
            "bbox": [0, 0, 1, 1],
            "segmentation": compressed,
        },
        {
            "id": 3,
            "image_id": 1,
            "category_id": 1,
            "bbox": [0, 0, 1, 1],
            "segmentation": {"size": [h, w], "counts": runs},
            "iscrowd": 1,
        },
    ]
    gt = COCO()
    gt.dataset = {
        "images": [{"id": 1, "width": w, "height": h}],
        "annotations": copy.deepcopy(anns),
        "categories": [{"id": 1, "name": "x"}],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    for ann in anns:
        ours = annotation_to_mask(ann, h, w)
        theirs = gt.annToMask(gt.anns[ann["id"]]).astype(bool)
        np.testing.assert_array_equal(ours, theirs)
        assert ours.any()
    np.testing.assert_array_equal(annotation_to_mask(anns[1], h, w), solid)


@pytest.mark.parametrize("segmentation", [None, [], [[1, 2, 3, 4]], "missing"])
def test_box_only_annotation_has_no_mask(segmentation):
    ann = {"id": 1, "bbox": [1, 1, 4, 4]}
    if segmentation != "missing":
        ann["segmentation"] = segmentation
    assert annotation_to_mask(ann, 10, 10) is None


def test_rle_of_the_wrong_size_is_refused():
    rle = mask_utils.encode(np.asfortranarray(np.ones((5, 5), dtype=np.uint8)))
    with pytest.raises(CocoFormatError, match=r"RLE size \[5, 5\] differs"):
        annotation_to_mask({"id": 4, "segmentation": rle}, 6, 5)


# ------------------------------------------------------------------------- loading


def _write_image(path, width, height, color=(40, 80, 120)):
    Image.new("RGB", (width, height), color).save(path)


def test_load_coco_errors(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(FileNotFoundError, match=r"nope\.json"):
        load_coco(missing)
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [}')
    with pytest.raises(CocoFormatError, match=r"bad\.json.*not valid JSON.*line 1"):
        load_coco(bad)
    no_anns = tmp_path / "no_anns.json"
    no_anns.write_text(json.dumps({"images": [], "categories": []}))
    with pytest.raises(CocoFormatError, match=r"no_anns\.json has no 'annotations' key"):
        load_coco(no_anns)
    no_bbox = tmp_path / "no_bbox.json"
    no_bbox.write_text(
        json.dumps(
            {
                "images": [{"id": 1}],
                "annotations": [{"id": 1, "image_id": 1, "category_id": 1}],
                "categories": [{"id": 1, "name": "a"}],
            }
        )
    )
    with pytest.raises(CocoFormatError, match=r"annotations\[0\] has no 'bbox' key"):
        load_coco(no_bbox)
    results_like = tmp_path / "results.json"
    results_like.write_text("[]")
    with pytest.raises(CocoFormatError, match="looks like a results file"):
        load_coco(results_like)
    # A targets file may have only images.
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png"}]}))
    assert load_coco(targets, require=("images",))["images"][0]["id"] == 1


def test_zero_sizes_are_repaired_from_the_files(tmp_path):
    _write_image(tmp_path / "a.png", 40, 30)
    _write_image(tmp_path / "b.png", 16, 24)
    coco = {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 0, "height": 0},
            {"id": 2, "file_name": "b.png"},
            {"id": 3, "file_name": "missing.png", "width": 7, "height": 9},
        ],
        "annotations": [],
        "categories": [],
    }
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(coco))
    assert load_coco(path)["images"][0]["width"] == 0  # no folder: left as is
    repaired = load_coco(path, image_dir=tmp_path)
    assert [(r["width"], r["height"]) for r in repaired["images"]] == [(40, 30), (16, 24), (7, 9)]
    broken = copy.deepcopy(coco)
    broken["images"][2]["width"] = 0
    with pytest.raises(FileNotFoundError, match=r"missing\.png"):
        repair_image_sizes(broken, tmp_path)


def test_references_from_polygons_rle_and_boxes(tmp_path):
    _write_image(tmp_path / "a.png", 60, 40)
    _write_image(tmp_path / "b.png", 30, 30)
    polygon = [[10, 5, 40, 5, 40, 30, 10, 30]]
    coco = {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 60, "height": 40},
            {"id": 2, "file_name": "b.png", "width": 0, "height": 0},
        ],
        "annotations": [
            {
                "id": 10,
                "image_id": 1,
                "category_id": 1,
                "bbox": [10, 5, 30, 25],
                "segmentation": polygon,
            },
            {"id": 11, "image_id": 1, "category_id": 2, "bbox": [2.5, 3.5, 10.25, 8]},
            {
                "id": 12,
                "image_id": 2,
                "category_id": 1,
                "bbox": [1, 1, 5, 5],
                "iscrowd": 1,
                "segmentation": {"size": [30, 30], "counts": [31, 5, 25, 5, 834]},
            },
            {"id": 13, "image_id": 2, "category_id": 2, "bbox": [4, 4, 10, 10], "segmentation": []},
        ],
        "categories": [{"id": 1, "name": "square"}, {"id": 2, "name": "bar"}],
    }
    repair_image_sizes(coco, tmp_path)
    refs = list(iter_references(coco, tmp_path))
    assert [r.ref_id for r in refs] == ["10", "11", "13"]  # crowd skipped
    assert [r.class_name for r in refs] == ["square", "bar", "bar"]
    assert refs[0].image.shape == (40, 60, 3) and refs[0].image.dtype == np.uint8
    assert refs[0].image is refs[1].image  # one decode per image
    expected = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygon, 40, 60)))
    np.testing.assert_array_equal(refs[0].mask, expected.astype(bool))
    assert refs[0].box == (10.0, 5.0, 40.0, 30.0)
    assert refs[1].mask is None
    assert refs[1].box == (2.5, 3.5, 12.75, 11.5)  # xywh -> xyxy, floats kept
    assert refs[2].mask is None
    crowd = list(iter_references(coco, tmp_path, category_ids=[1], include_crowd=True))
    assert [r.ref_id for r in crowd] == ["10", "12"]
    assert crowd[1].mask.sum() == 10


def test_reference_image_size_mismatch(tmp_path):
    _write_image(tmp_path / "a.png", 20, 10)
    coco = {
        "images": [{"id": 1, "file_name": "a.png", "width": 21, "height": 10}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]}],
        "categories": [{"id": 1, "name": "a"}],
    }
    with pytest.raises(CocoFormatError, match=r"is 20x10 pixels but its record .* says 21x10"):
        list(iter_references(coco, tmp_path))


def test_duplicate_class_names_are_refused(tmp_path):
    _write_image(tmp_path / "a.png", 20, 10)
    coco = {
        "images": [{"id": 1, "file_name": "a.png", "width": 20, "height": 10}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]},
            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [1, 1, 4, 4]},
        ],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "a"}],
    }
    with pytest.raises(CocoFormatError, match="both named 'a'"):
        list(iter_references(coco, tmp_path))
    assert len(list(iter_references(coco, tmp_path, category_ids=[2]))) == 1


def test_write_json_is_atomic_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "out.json"
    write_json(target, {"a": [1, 2]})
    write_json(target, [{"b": 1.5}])
    assert json.loads(target.read_text()) == [{"b": 1.5}]
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]

    class Boom:
        pass

    with pytest.raises(TypeError):
        write_json(target, {"x": Boom()})
    assert json.loads(target.read_text()) == [{"b": 1.5}]  # previous content intact
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]


def test_load_results_errors(tmp_path):
    path = tmp_path / "res.json"
    path.write_text(json.dumps({"images": []}))
    with pytest.raises(CocoFormatError, match="must be a JSON list"):
        load_results(path)
    path.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}]))
    with pytest.raises(CocoFormatError, match=r"entry \[0\] has no 'score'"):
        load_results(path)


# ------------------------------------------------------------------------- evaluation

H, W = 48, 64


def _gt():
    """3 images; class 1 in images 1-2, class 2 in images 2-3; one crowd region."""
    boxes = [
        (1, 1, 1, (5, 5, 25, 30)),
        (2, 1, 1, (35, 10, 60, 40)),
        (3, 2, 1, (10, 8, 30, 28)),
        (4, 2, 2, (40, 20, 62, 46)),
        (5, 3, 2, (3, 3, 20, 40)),
        (6, 3, 2, (30, 5, 60, 20)),
    ]
    anns = []
    for ann_id, image_id, cat, box in boxes:
        mask = _mask_from_box(H, W, box)
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        x1, y1, x2, y2 = box
        anns.append(
            {
                "id": ann_id,
                "image_id": image_id,
                "category_id": cat,
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": float(mask.sum()),
                "iscrowd": 0,
                "segmentation": {"size": [H, W], "counts": rle["counts"].decode()},
            }
        )
    crowd = copy.deepcopy(anns[-1])
    crowd.update(id=7, iscrowd=1, bbox=[0, 42, 10, 5])
    anns.append(crowd)
    return {
        "images": [{"id": i, "file_name": f"{i}.png", "width": W, "height": H} for i in (1, 2, 3)],
        "annotations": anns,
        "categories": [{"id": 1, "name": "one"}, {"id": 2, "name": "two"}, {"id": 3, "name": "x"}],
    }


def _perfect(gt, shift=0):
    results = []
    for ann in gt["annotations"]:
        if ann["iscrowd"]:
            continue
        x, y, w, h = ann["bbox"]
        mask = _mask_from_box(H, W, (x + shift, y, x + w + shift, y + h))
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        results.append(
            {
                "image_id": ann["image_id"],
                "category_id": ann["category_id"],
                "bbox": [x + shift, y, w, h],
                "score": 0.9 - 0.01 * ann["id"],
                "segmentation": {"size": [H, W], "counts": rle["counts"].decode()},
            }
        )
    return results


def _direct(gt, results, iou_type):
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        ev.params.imgIds = sorted(coco_gt.getImgIds())
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(v) for v in ev.stats]


def test_perfect_predictions_give_ap_one():
    gt = _gt()
    out = evaluate(gt, _perfect(gt))
    assert out["iou_types"] == ["bbox", "segm"]
    for iou_type in ("bbox", "segm"):
        assert out[iou_type]["stats"]["AP"] == pytest.approx(1.0)
        per_class = {r["category_id"]: r["AP"] for r in out[iou_type]["per_class"]}
        assert per_class == {1: pytest.approx(1.0), 2: pytest.approx(1.0), 3: None}
    assert out["num_images"] == 3 and out["num_results"] == 6


@pytest.mark.parametrize("shift", [0, 3, 6])
def test_evaluation_equals_direct_pycocotools(shift):
    gt = _gt()
    results = _perfect(gt, shift=shift)
    out = evaluate(gt, results)
    for iou_type in ("bbox", "segm"):
        expected = _direct(gt, results, iou_type)
        assert [out[iou_type]["stats"][n] for n in STAT_NAMES] == pytest.approx(expected)
    if shift:
        assert out["bbox"]["stats"]["AP"] < 1.0


def test_inputs_are_not_modified(tmp_path):
    gt = _gt()
    results = _perfect(gt, shift=2)
    gt_copy, results_copy = copy.deepcopy(gt), copy.deepcopy(results)
    evaluate(gt, results)
    assert gt == gt_copy and results == results_copy
    gt_path, res_path = tmp_path / "gt.json", tmp_path / "res.json"
    write_json(gt_path, gt)
    write_json(res_path, results)
    assert evaluate(gt_path, res_path)["segm"] == evaluate(gt, results)["segm"]


def test_class_subset_restricts_gt_but_keeps_all_images():
    gt = _gt()
    results = [r for r in _perfect(gt) if r["category_id"] == 1]
    # A class-1 false positive on image 3, which has no class-1 object: it must count.
    fp = copy.deepcopy(results[0])
    fp.update(image_id=3, score=0.95)
    results.append(fp)
    out = evaluate(gt, results, category_ids=[1])
    restricted = restrict_to_categories(gt, [1])
    assert [a["category_id"] for a in restricted["annotations"]] == [1, 1, 1]
    assert len(restricted["images"]) == 3 and len(restricted["categories"]) == 3
    for iou_type in ("bbox", "segm"):
        expected = _direct(restricted, results, iou_type)
        assert [out[iou_type]["stats"][n] for n in STAT_NAMES] == pytest.approx(expected)
    assert out["bbox"]["stats"]["AP"] < 1.0  # the false positive on image 3 counted
    assert [r["category_id"] for r in out["bbox"]["per_class"]] == [1]
    assert out["num_images"] == 3
    # On all classes, class 2 has no detections: the mean halves.
    full = evaluate(gt, results)
    assert full["bbox"]["stats"]["AP"] == pytest.approx(out["bbox"]["stats"]["AP"] / 2)
    with pytest.raises(CocoFormatError, match=r"category id\(s\) \[8\]"):
        evaluate(gt, results, category_ids=[8])


def test_crowd_of_the_subset_is_kept():
    gt = _gt()
    restricted = restrict_to_categories(gt, [2])
    assert any(a["iscrowd"] for a in restricted["annotations"])


def test_box_only_ground_truth_evaluates_boxes():
    gt = _gt()
    for ann in gt["annotations"]:
        del ann["segmentation"]
    results = _perfect(_gt())
    out = evaluate(gt, results)
    assert out["iou_types"] == ["bbox"]
    assert "segm" not in out
    assert any("box-only" in note for note in out["notes"])
    assert out["bbox"]["stats"]["AP"] == pytest.approx(1.0)
    with pytest.raises(CocoFormatError, match="segm AP is undefined"):
        evaluate(gt, results, iou_types=["segm"])
    # Results without masks work against box-only ground truth too.
    boxes_only = [{k: v for k, v in r.items() if k != "segmentation"} for r in results]
    assert evaluate(gt, boxes_only)["bbox"]["stats"]["AP"] == pytest.approx(1.0)


def test_missing_area_is_filled():
    gt = _gt()
    for ann in gt["annotations"]:
        del ann["area"]
    assert evaluate(gt, _perfect(gt))["bbox"]["stats"]["AP"] == pytest.approx(1.0)


def test_empty_results_give_zero_ap():
    out = evaluate(_gt(), [])
    for iou_type in ("bbox", "segm"):
        assert out[iou_type]["stats"]["AP"] == 0.0
        assert out[iou_type]["stats"]["AR100"] == 0.0
    assert "0.0" in format_table(out)


def test_result_image_ids_must_be_in_the_ground_truth():
    gt = _gt()
    results = _perfect(gt)
    results[0]["image_id"] = 99
    with pytest.raises(CocoFormatError, match=r"not in the ground truth \(e\.g\. \[99\]\)"):
        evaluate(gt, results)


def test_result_masks_must_match_the_image_size():
    gt = _gt()
    results = _perfect(gt)
    small = mask_utils.encode(np.asfortranarray(np.ones((H // 2, W // 2), dtype=np.uint8)))
    results[1]["segmentation"] = {"size": [H // 2, W // 2], "counts": small["counts"].decode()}
    with pytest.raises(CocoFormatError, match=r"result \[1\] .* mask of size \[24, 32\]"):
        evaluate(gt, results)
    assert evaluate(gt, results, iou_types=["bbox"])["bbox"]["stats"]["AP"] == pytest.approx(1.0)


def test_image_subset():
    gt = _gt()
    results = _perfect(gt, shift=4)
    out = evaluate(gt, results, image_ids=[1])
    assert out["num_images"] == 1
    assert out["bbox"]["stats"]["AP"] != evaluate(gt, results)["bbox"]["stats"]["AP"]


def test_verbose_controls_pycocotools_output(capsys):
    gt = _gt()
    evaluate(gt, _perfect(gt))
    assert capsys.readouterr().out == ""
    evaluate(gt, _perfect(gt), verbose=True)
    assert "Average Precision" in capsys.readouterr().out


def test_zero_sized_records_need_the_image_folder_for_segm(tmp_path):
    gt = _gt()
    gt["images"][0]["width"] = 0
    with pytest.raises(CocoFormatError, match="pass the image folder"):
        evaluate(gt, _perfect(_gt()))
    for i in (1, 2, 3):
        _write_image(tmp_path / f"{i}.png", W, H)
    out = evaluate(gt, _perfect(_gt()), image_dir=tmp_path)
    assert out["segm"]["stats"]["AP"] == pytest.approx(1.0)
    assert gt["images"][0]["width"] == 0  # the caller's dict is untouched


def test_format_table():
    gt = _gt()
    out = evaluate(gt, _perfect(gt, shift=3), category_ids=[1, 2])
    table = format_table(out)
    lines = table.splitlines()
    assert lines[0].split() == ["iou", *STAT_NAMES]
    assert lines[2].startswith("bbox") and lines[3].startswith("segm")
    assert f"{100 * out['bbox']['stats']['AP']:.1f}" in lines[2]
    assert any(line.startswith("one (1)") for line in lines)
    assert "x (3)" not in table


def test_box_without_area_is_reported_with_its_annotation(tmp_path):
    _write_image(tmp_path / "a.png", 20, 10)
    coco = {
        "images": [{"id": 1, "file_name": "a.png", "width": 20, "height": 10}],
        "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "bbox": [25, 1, 4, 4]}],
        "categories": [{"id": 1, "name": "a"}],
    }
    with pytest.raises(CocoFormatError, match=r"annotation 5: .*no area inside"):
        list(iter_references(coco, tmp_path))


def test_record_images_follow_the_records_orientation(tmp_path):
    from fiftyone_ntt.coco import load_record_image

    pixels = np.zeros((10, 20, 3), dtype=np.uint8)
    pixels[:, :5] = 255  # left quarter white
    img = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    img.save(tmp_path / "r.png", exif=exif)
    stored = {"id": 1, "file_name": "r.png", "width": 20, "height": 10}
    np.testing.assert_array_equal(load_record_image(stored, tmp_path), pixels)
    displayed = {"id": 1, "file_name": "r.png", "width": 10, "height": 20}
    rotated = load_record_image(displayed, tmp_path)
    assert rotated.shape == (20, 10, 3)
    assert rotated[:5].min() == 255 and rotated[5:].max() == 0  # white band now on top
    unsized = {"id": 1, "file_name": "r.png", "width": 0, "height": 0}
    assert load_record_image(unsized, tmp_path).shape == (10, 20, 3)
