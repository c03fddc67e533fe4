"""COCO results and evaluation: :func:`predictions_to_coco` writes standard COCO results
(docs/method.md §6), with the paper's 1-px-short boxes or exact ones; :func:`evaluate` runs
pycocotools' ``COCOeval`` as the research code does (docs/method.md §2.4, §6), also on box-only
ground truth (§11.3, user issue #29); :func:`format_table` prints it. pycocotools is imported
inside the functions that need it; nothing here imports FiftyOne.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from fiftyone_ntt.coco.files import (
    CocoFormatError,
    load_coco,
    load_results,
    positive_int,
    repair_image_sizes,
    validate_coco,
    validate_results,
)
from fiftyone_ntt.coco.references import has_segmentation
from fiftyone_ntt.types import Predictions

#: Names of the 12 numbers of ``COCOeval.summarize()``, in its order.
STAT_NAMES = (
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "AR1",
    "AR10",
    "AR100",
    "ARs",
    "ARm",
    "ARl",
)


def predictions_to_coco(
    predictions: Predictions,
    image_id: Any,
    category_ids: Sequence[int],
    box_convention: Literal["paper", "exact"] = "exact",
) -> list[dict[str, Any]]:
    """Standard COCO results for one image (docs/method.md §6).

    Args:
        predictions: the detections, in descending score order (kept as is).
            ``boxes`` are XYXY with exclusive ``x2``/``y2``.
        image_id: the COCO image id.
        category_ids: COCO category id of each class index (``category_ids[class_id]``).
        box_convention: ``"exact"`` writes ``[x1, y1, x2 - x1, y2 - y1]``, the true pixel
            extent; ``"paper"`` writes ``[x1, y1, (x2 - 1) - x1, (y2 - 1) - y1]``, 1 px short
            in width and height as the research code does (inclusive max index, docs/method.md §6,
            §11.2 item 7).

    Returns:
        One dict per detection: ``image_id``, ``category_id``, ``bbox`` (xywh floats),
        ``score`` (float), ``segmentation`` (compressed RLE of the full-resolution mask,
        ``counts`` as a UTF-8 string).
    """
    from pycocotools import mask as mask_utils

    if box_convention not in ("paper", "exact"):
        raise ValueError(f"box_convention={box_convention!r}; use 'paper' or 'exact'")
    category_ids = list(category_ids)
    if predictions.class_names and len(category_ids) != len(predictions.class_names):
        raise ValueError(
            f"{len(category_ids)} category ids for {len(predictions.class_names)} classes "
            f"{list(predictions.class_names)}; give one COCO category id per bank class"
        )
    if len(predictions) and int(predictions.class_ids.max()) >= len(category_ids):
        raise ValueError(
            f"class index {int(predictions.class_ids.max())} has no category id "
            f"(only {len(category_ids)} given)"
        )
    if not len(predictions):
        return []
    shrink = 1.0 if box_convention == "paper" else 0.0
    masks = np.asfortranarray(predictions.masks.transpose(1, 2, 0).astype(np.uint8))
    rles = mask_utils.encode(masks)
    results = []
    for i, rle in enumerate(rles):
        x1, y1, x2, y2 = (float(v) for v in predictions.boxes[i])
        counts = rle["counts"]
        results.append(
            {
                "image_id": image_id,
                "category_id": int(category_ids[int(predictions.class_ids[i])]),
                "bbox": [x1, y1, (x2 - shrink) - x1, (y2 - shrink) - y1],
                "score": float(predictions.scores[i]),
                "segmentation": {
                    "size": [int(v) for v in rle["size"]],
                    "counts": counts.decode("utf-8") if isinstance(counts, bytes) else counts,
                },
            }
        )
    return results


# ------------------------------------------------------------------------------------------
# evaluation


def restrict_to_categories(coco: Mapping[str, Any], category_ids: Sequence[int]) -> dict[str, Any]:
    """A copy whose annotations are only those of ``category_ids`` (docs/method.md §2.4).

    Crowd annotations of those categories are kept (COCOeval ignores them); the image list
    and the category list are unchanged, so every image is still evaluated and detections of
    the other categories meet no ground truth and do not count in the mean.
    """
    wanted = {int(c) for c in category_ids}
    known = {int(c["id"]) for c in coco.get("categories", ())}
    unknown = sorted(wanted - known)
    if unknown:
        raise CocoFormatError(
            f"category id(s) {unknown} are not in the ground truth's categories; known ids: "
            f"{sorted(known)}"
        )
    out = dict(coco)
    out["annotations"] = [
        ann for ann in coco.get("annotations", ()) if int(ann["category_id"]) in wanted
    ]
    return out


def _empty_results(coco_gt: Any) -> Any:
    """A results object with no detections (pycocotools' ``loadRes([])`` raises)."""
    from pycocotools.coco import COCO

    res = COCO()
    res.dataset = {
        "images": list(coco_gt.dataset["images"]),
        "categories": copy.deepcopy(coco_gt.dataset.get("categories", [])),
        "annotations": [],
    }
    res.createIndex()
    return res


def _per_class(cocoeval: Any, names: Mapping[int, str], report_ids: Sequence[int]) -> list:
    precision = cocoeval.eval["precision"]  # [T, R, K, A, M]
    cat_ids = list(cocoeval.params.catIds)
    area_all = list(cocoeval.params.areaRngLbl).index("all")
    max_dets = len(cocoeval.params.maxDets) - 1
    rows = []
    for cid in report_ids:
        row: dict[str, Any] = {"category_id": int(cid), "name": names.get(int(cid), str(cid))}
        if cid in cat_ids:
            k = cat_ids.index(cid)
            p = precision[:, :, k, area_all, max_dets]
            for key, values in (("AP", p), ("AP50", p[0]), ("AP75", p[5])):
                valid = values[values > -1]
                row[key] = float(np.mean(valid)) if valid.size else None
        else:
            row.update(AP=None, AP50=None, AP75=None)
        rows.append(row)
    return rows


def evaluate(
    gt: Mapping[str, Any] | str | os.PathLike,
    results: Sequence[Mapping[str, Any]] | str | os.PathLike,
    *,
    category_ids: Sequence[int] | None = None,
    image_ids: Sequence[Any] | None = None,
    iou_types: Sequence[str] | None = None,
    image_dir: str | os.PathLike | None = None,
    verbose: bool = False,
) -> dict[str, Any]:
    """COCO AP of results against ground truth, as the research code evaluates (docs/method.md §6).

    ``COCOeval`` runs with default parameters and ``params.imgIds`` = every ground-truth
    image (or ``image_ids``), so images without any object of the evaluated classes still
    count their detections as false positives (docs/method.md §2.4, §11.2 item 8).

    Args:
        gt: a COCO annotation dict or file. Not modified.
        results: a COCO results list or file. Not modified. May be empty (AP 0).
        category_ids: evaluate only these classes: the ground truth keeps only their
            annotations (crowd included), all images and categories stay (docs/method.md §2.4).
        image_ids: evaluate on these images only; default all.
        iou_types: ``("bbox", "segm")`` by default; when the ground truth has no segmentation
            (box-only data) only ``bbox`` is evaluated, with a note (docs/method.md §11.3, issue
            #29).
        image_dir: image folder used to repair records with width/height 0 (needed for
            segm evaluation of polygon ground truth).
        verbose: let pycocotools print its usual output.

    Returns:
        ``{"iou_types": [...], "notes": [...], "num_images": int, "num_results": int,
        "category_ids": [...] | None, <iou_type>: {"stats": {name: float}, "per_class":
        [{"category_id", "name", "AP", "AP50", "AP75"}]}}``. Stats follow pycocotools
        (fractions in [0, 1], ``-1`` when undefined); a per-class value is ``None`` when the
        class has no ground truth.

    Raises:
        CocoFormatError: malformed inputs, unknown category ids, result image ids that are
            not in the ground truth, or ``segm`` requested on box-only ground truth.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if isinstance(gt, (str, os.PathLike)):
        gt_source = str(gt)
        gt_dict = load_coco(gt)
    else:
        gt_source = "ground truth"
        gt_dict = validate_coco(gt, source=gt_source)
    gt_dict = dict(gt_dict)
    gt_dict["images"] = [dict(r) for r in gt_dict["images"]]
    if image_dir is not None:
        repair_image_sizes(gt_dict, image_dir)
    if category_ids is not None:
        category_ids = [int(c) for c in category_ids]
        gt_dict = restrict_to_categories(gt_dict, category_ids)
    # COCOeval writes into annotation dicts ("ignore", RLE segmentations): work on copies.
    gt_dict["annotations"] = copy.deepcopy(gt_dict["annotations"])
    if isinstance(results, (str, os.PathLike)):
        results_list = load_results(results)
    else:
        results_list = validate_results(list(results), "results")
    results_list = copy.deepcopy(results_list)

    notes: list[str] = []
    annotations = gt_dict["annotations"]
    with_segm = sum(has_segmentation(a) for a in annotations)
    if iou_types is None:
        iou_types = ["bbox", "segm"]
        if annotations and with_segm < len(annotations):
            iou_types = ["bbox"]
            if with_segm == 0:
                notes.append(
                    "the ground truth has no segmentation (box-only data): only bbox AP is "
                    "evaluated"
                )
            else:
                notes.append(
                    f"{len(annotations) - with_segm} of {len(annotations)} ground-truth "
                    "annotations have no segmentation: only bbox AP is evaluated"
                )
    else:
        iou_types = list(dict.fromkeys(iou_types))
        bad = [t for t in iou_types if t not in ("bbox", "segm")]
        if bad:
            raise ValueError(f"iou_types {bad} not supported; use 'bbox' and/or 'segm'")
        if "segm" in iou_types and with_segm < len(annotations):
            raise CocoFormatError(
                f"{len(annotations) - with_segm} of {len(annotations)} ground-truth annotations "
                "have no segmentation, so segm AP is undefined; evaluate iou_types=['bbox'] or "
                "add masks to the ground truth"
            )
    for ann in annotations:
        if "area" not in ann:  # COCOeval needs it for the area ranges; box area here
            _, _, w, h = ann["bbox"]
            ann["area"] = float(w) * float(h)
    if "segm" in iou_types:
        unsized = [
            r["id"]
            for r in gt_dict["images"]
            if not (positive_int(r.get("width")) and positive_int(r.get("height")))
        ]
        if unsized:
            raise CocoFormatError(
                f"{len(unsized)} ground-truth image record(s) have no width/height (e.g. ids "
                f"{unsized[:5]}); pass the image folder so they are read from the files"
            )

    gt_image_ids = [r["id"] for r in gt_dict["images"]]
    known_images = set(gt_image_ids)
    stray = sorted({d["image_id"] for d in results_list} - known_images, key=str)
    if stray:
        raise CocoFormatError(
            f"{len(stray)} result image id(s) are not in the ground truth (e.g. {stray[:5]}); "
            "use the image ids of the ground-truth file when predicting"
        )
    if "segm" in iou_types:
        sizes = {r["id"]: [r.get("height"), r.get("width")] for r in gt_dict["images"]}
        for i, det in enumerate(results_list):
            segm = det.get("segmentation")
            if isinstance(segm, dict) and list(segm.get("size", ())) != sizes[det["image_id"]]:
                raise CocoFormatError(
                    f"result [{i}] (image {det['image_id']!r}) has a mask of size "
                    f"{segm.get('size')} but the image is {sizes[det['image_id']]} (height, "
                    "width); the results were made on other images or another resolution"
                )
    if image_ids is None:
        eval_ids = sorted(gt_image_ids, key=lambda v: (isinstance(v, str), v))
    else:
        eval_ids = list(image_ids)
        missing = [i for i in eval_ids if i not in known_images]
        if missing:
            raise CocoFormatError(
                f"image id(s) {missing[:5]} are not in the ground truth; choose ids from its "
                "'images'"
            )

    names = {int(c["id"]): str(c["name"]) for c in gt_dict["categories"]}
    report_ids = category_ids if category_ids is not None else sorted(names)
    output: dict[str, Any] = {
        "iou_types": list(iou_types),
        "notes": notes,
        "num_images": len(eval_ids),
        "num_results": len(results_list),
        "category_ids": category_ids,
    }
    stream = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with stream:
        coco_gt = COCO()
        coco_gt.dataset = gt_dict
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results_list) if results_list else _empty_results(coco_gt)
        for iou_type in iou_types:
            cocoeval = COCOeval(coco_gt, coco_dt, iou_type)
            cocoeval.params.imgIds = eval_ids
            cocoeval.evaluate()
            cocoeval.accumulate()
            cocoeval.summarize()
            output[iou_type] = {
                "stats": {
                    name: float(v) for name, v in zip(STAT_NAMES, cocoeval.stats, strict=True)
                },
                "per_class": _per_class(cocoeval, names, report_ids),
            }
    return output


def format_table(result: Mapping[str, Any], *, per_class: bool = True) -> str:
    """A plain-text table of :func:`evaluate`'s output, numbers in percent.

    Undefined values (pycocotools' ``-1``, classes without ground truth) print as ``-``.
    """

    def cell(value: float | None) -> str:
        return "-" if value is None or value < 0 else f"{100 * value:.1f}"

    lines = []
    header = f"{'iou':<6}" + "".join(f"{name:>7}" for name in STAT_NAMES)
    lines.append(header)
    lines.append("-" * len(header))
    for iou_type in result["iou_types"]:
        stats = result[iou_type]["stats"]
        lines.append(f"{iou_type:<6}" + "".join(f"{cell(stats[name]):>7}" for name in STAT_NAMES))
    if per_class and result["iou_types"]:
        rows = result[result["iou_types"][0]]["per_class"]
        width = max([len("class")] + [len(f"{r['name']} ({r['category_id']})") for r in rows])
        lines.append("")
        columns = "".join(f"{t + ' AP':>9}{t + ' AP50':>11}" for t in result["iou_types"])
        lines.append(f"{'class':<{width}}" + columns)
        lines.append("-" * (width + len(columns)))
        for i, row in enumerate(rows):
            label = f"{row['name']} ({row['category_id']})"
            values = ""
            for iou_type in result["iou_types"]:
                r = result[iou_type]["per_class"][i]
                values += f"{cell(r['AP']):>9}{cell(r['AP50']):>11}"
            lines.append(f"{label:<{width}}" + values)
    for note in result.get("notes", ()):
        lines.append(f"note: {note}")
    return "\n".join(lines)
