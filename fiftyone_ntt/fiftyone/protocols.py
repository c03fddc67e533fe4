"""The paper's benchmarks and custom COCO datasets as one-line, resumable runs through FiftyOne.

Each protocol (method §2, §6, §9.5):

1. imports the reference images (only those holding a reference) and the target images into
   two persistent FiftyOne datasets, ``<prefix>-refs`` and ``<prefix>-targets`` (every
   annotation as a ``Detection`` with its COCO annotation id ``coco_id``; samples carry the
   COCO image id ``coco_id``); a rerun adds only what is missing;
2. tags the references (``ntt:ref:<run>``): the research code's sampler
   (:func:`fiftyone_ntt.sampling.sample_references_paper`, same JSON + seed = same reference
   ids) for COCO-FSOD and PASCAL VOC, every annotation of the K-shot file for CD-FSOD and
   custom data;
3. builds the memory bank (reused when the references, classes, settings and models are the
   same); box-only references get SAM 2 masks;
4. segments the targets with :func:`fiftyone_ntt.fiftyone.segment` (resumable) into the field
   ``ntt_<run>``;
5. exports the predictions as COCO results with the paper's box convention (1 px short,
   method §6) and evaluates them with :func:`fiftyone_ntt.coco.evaluate` against the
   original annotation file: COCO-FSOD on the 20 novel classes over all val2017 images, VOC
   as COCO-style AP50 on the split's 5 novel classes (``difficult`` -> crowd), CD-FSOD and
   custom data on the references' classes; box-only ground truth gives bbox AP only;
6. prints ours next to the published numbers (method §7) and stores the report in the
   target dataset's ``info["ntt_protocols"]``.

Command line: ``python -m fiftyone_ntt.fiftyone.protocols {coco-fsod,voc,cd-fsod,custom} ...``
(``--help`` for each).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CDFSOD_PUBLISHED",
    "COCO_NOVEL_IDS",
    "COCO_PUBLISHED",
    "GT_FIELD",
    "VOC_NOVEL_CLASSES",
    "VOC_PUBLISHED",
    "ProtocolSpec",
    "cd_fsod_spec",
    "coco_fsod_spec",
    "custom_spec",
    "format_report",
    "import_coco",
    "main",
    "results_from_field",
    "run_protocol",
    "voc_spec",
]

GT_FIELD = "ground_truth"

#: The 20 novel classes of COCO-FSOD (the PASCAL VOC classes), COCO ids (method §2.1).
COCO_NOVEL_IDS = (1, 2, 3, 4, 5, 6, 7, 9, 16, 17, 18, 19, 20, 21, 44, 62, 63, 64, 67, 72)

#: PASCAL VOC few-shot novel classes per split (method §2.1).
VOC_NOVEL_CLASSES = {
    1: ("bird", "bus", "cow", "motorbike", "sofa"),
    2: ("aeroplane", "bottle", "cow", "horse", "sofa"),
    3: ("boat", "cat", "motorbike", "sheep", "sofa"),
}

#: COCO-FSOD per shot: (seed-33 bbox, seed-33 segm, 10-seed mean±std bbox, segm) (method §7).
COCO_PUBLISHED = {
    1: (25.6, 24.1, "24.5±1.5", "22.9±1.6"),
    2: (30.7, 28.5, "29.5±2.0", "27.5±1.9"),
    3: (32.4, 29.7, "32.3±1.3", "30.1±1.3"),
    5: (35.1, 32.4, "34.4±0.8", "32.1±0.7"),
    10: (36.6, 33.8, "35.9±0.5", "33.4±0.5"),
    30: (37.3, 34.7, "37.0±0.2", "34.4±0.2"),
}
#: README headline, 30-shot seed 33: bbox / segm nAP.
COCO_README_30 = (36.8, 34.2)

#: PASCAL VOC nAP50 per split and shot (project page, method §7); the abstract's average
#: over splits is 71.2.
VOC_PUBLISHED = {
    1: {1: 70.8, 2: 72.3, 3: 73.3, 5: 77.2, 10: 79.1},
    2: {1: 54.5, 2: 67.0, 3: 76.3, 5: 75.9, 10: 78.2},
    3: {1: 61.1, 2: 67.9, 3: 71.3, 5: 70.8, 10: 72.6},
}

#: CD-FSOD bbox nAP: mean over the 6 datasets per shot, and 5-shot per dataset (method §7).
CDFSOD_PUBLISHED = {
    "mean": {1: 18.0, 5: 22.4, 10: 21.4},
    "5shot": {
        "artaxor": 35.7,
        "clipart1k": 24.9,
        "dior": 18.5,
        "deepfish": 29.6,
        "neu-det": 5.2,
        "uodd": 20.2,
    },
}

#: The research code's toy custom dataset (bird + boat, 1 shot): bbox / segm AP.
CUSTOM_TOY_PUBLISHED = (47.8, 45.8)

_STATS = (("AP", "AP"), ("AP50", "AP50"), ("AP75", "AP75"))


@dataclass
class ProtocolSpec:
    """Everything a protocol run needs (built by the ``*_spec`` functions).

    Attributes:
        kind: ``coco-fsod``, ``voc``, ``cd-fsod`` or ``custom``.
        name: run name (bank key, reference tag and output field derive from it).
        ref_coco, ref_image_dir: the references' annotation dict and image folder.
        reference_ann_ids: annotation ids (of ``ref_coco``) of the references.
        class_ids: the bank's categories (ids of ``ref_coco``); bank order = sorted ids.
        target_coco, target_image_dir: the targets' annotation dict (ground truth) and folder.
        eval_category_ids: categories (ids of ``target_coco``) evaluated.
        metric: the headline number (``AP`` or ``AP50``).
        published: ``{(iou_type, stat): text}`` published values to print next to ours.
        description: one line for the report.
    """

    kind: str
    name: str
    ref_coco: dict[str, Any]
    ref_image_dir: Path
    reference_ann_ids: list[Any]
    class_ids: list[int]
    target_coco: dict[str, Any]
    target_image_dir: Path
    eval_category_ids: list[int]
    metric: str = "AP"
    published: dict[tuple[str, str], str] = field(default_factory=dict)
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------
# loading annotation files


def _load(path: str | os.PathLike, image_dir: str | os.PathLike, *, difficult_as_crowd=False):
    from fiftyone_ntt.coco import load_coco

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file {str(path)!r} does not exist")
    coco = load_coco(path, image_dir=image_dir)
    if difficult_as_crowd:  # VOC "difficult" objects are ignored as crowd (method §6)
        for ann in coco["annotations"]:
            if ann.get("difficult") and not ann.get("iscrowd"):
                ann["iscrowd"] = 1
    return coco


def _names(coco: Mapping[str, Any]) -> dict[int, str]:
    return {int(c["id"]): str(c["name"]) for c in coco.get("categories", ())}


def _ids_by_name(coco: Mapping[str, Any], names: Sequence[str], what: str) -> list[int]:
    by_name = {v: k for k, v in _names(coco).items()}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ValueError(
            f"{what} has no categories {missing}; its categories are {sorted(by_name)}"
        )
    return [by_name[n] for n in names]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()


# ------------------------------------------------------------------------------------------
# protocol specifications


def coco_fsod_spec(
    coco_root: str | os.PathLike,
    shots: int,
    seed: int = 33,
    *,
    train_json: str | os.PathLike | None = None,
    val_json: str | os.PathLike | None = None,
) -> ProtocolSpec:
    """COCO-FSOD: references sampled from train2017 with the paper's rules and ``seed`` for the
    20 novel classes; targets = all of val2017 with novel-class ground truth (method §2)."""
    from fiftyone_ntt.sampling import sample_references_paper

    root = Path(coco_root)
    train_json = Path(train_json or root / "annotations" / "instances_train2017.json")
    val_json = Path(val_json or root / "annotations" / "instances_val2017.json")
    ref_coco = _load(train_json, root / "train2017")
    sampled = sample_references_paper(ref_coco, COCO_NOVEL_IDS, shots, seed)
    ann_ids = [a for entries in sampled.values() for e in entries for a in e["ann_ids"]]
    bbox, segm, bbox_mean, segm_mean = COCO_PUBLISHED.get(shots, (None, None, None, None))
    published: dict[tuple[str, str], str] = {}
    if bbox is not None:
        published[("bbox", "AP")] = f"{bbox} (seed 33); 10 seeds {bbox_mean}"
        published[("segm", "AP")] = f"{segm} (seed 33); 10 seeds {segm_mean}"
    if shots == 30:
        published[("bbox", "AP")] += f"; README {COCO_README_30[0]}"
        published[("segm", "AP")] += f"; README {COCO_README_30[1]}"
    return ProtocolSpec(
        kind="coco-fsod",
        name=f"coco-fsod-{shots}shot-seed{seed}",
        ref_coco=ref_coco,
        ref_image_dir=root / "train2017",
        reference_ann_ids=ann_ids,
        class_ids=sorted(COCO_NOVEL_IDS),
        target_coco=_load(val_json, root / "val2017"),
        target_image_dir=root / "val2017",
        eval_category_ids=sorted(COCO_NOVEL_IDS),
        metric="AP",
        published=published,
        description=f"COCO-FSOD, 20 novel classes, {shots}-shot, seed {seed}",
        extra={"sampled": {str(k): v for k, v in sampled.items()}},
    )


def voc_spec(
    voc_root: str | os.PathLike,
    split: int,
    shots: int,
    seed: int = 33,
    *,
    train_json: str | os.PathLike | None = None,
    test_json: str | os.PathLike | None = None,
    train_images: str | os.PathLike | None = None,
    test_images: str | os.PathLike | None = None,
) -> ProtocolSpec:
    """PASCAL VOC few-shot split 1-3: references sampled (paper rules, ``seed``) from VOC07+12
    trainval for the split's 5 novel classes, targets = VOC07 test, COCO-style AP50 with
    ``difficult`` as crowd (method §2.1, §6).

    Default layout under ``voc_root``: ``annotations/voc0712_trainval_with_segm.json`` (the
    research code's file), ``annotations/voc07_test_with_segm.json`` and one image folder
    ``JPEGImages/`` for both (each can be given explicitly).
    """
    from fiftyone_ntt.sampling import sample_references_paper

    if split not in VOC_NOVEL_CLASSES:
        raise ValueError(f"split={split!r}; PASCAL VOC few-shot splits are 1, 2 and 3")
    root = Path(voc_root)
    train_json = Path(train_json or root / "annotations" / "voc0712_trainval_with_segm.json")
    test_json = Path(test_json or root / "annotations" / "voc07_test_with_segm.json")
    train_images = Path(train_images or root / "JPEGImages")
    test_images = Path(test_images or root / "JPEGImages")
    ref_coco = _load(train_json, train_images, difficult_as_crowd=True)
    names = sorted(VOC_NOVEL_CLASSES[split])
    class_ids = _ids_by_name(ref_coco, names, str(train_json))
    sampled = sample_references_paper(ref_coco, class_ids, shots, seed)
    ann_ids = [a for entries in sampled.values() for e in entries for a in e["ann_ids"]]
    target_coco = _load(test_json, test_images, difficult_as_crowd=True)
    published = {}
    value = VOC_PUBLISHED[split].get(shots)
    if value is not None:
        published[("bbox", "AP50")] = f"{value} (split {split}); 3-split mean 71.2"
    return ProtocolSpec(
        kind="voc",
        name=f"voc-split{split}-{shots}shot-seed{seed}",
        ref_coco=ref_coco,
        ref_image_dir=train_images,
        reference_ann_ids=ann_ids,
        class_ids=sorted(class_ids),
        target_coco=target_coco,
        target_image_dir=test_images,
        eval_category_ids=sorted(_ids_by_name(target_coco, names, str(test_json))),
        metric="AP50",
        published=published,
        description=f"PASCAL VOC split {split} ({', '.join(names)}), {shots}-shot, seed {seed}",
        extra={"sampled": {str(k): v for k, v in sampled.items()}},
    )


def _all_annotation_spec(
    kind: str,
    name: str,
    refs_json: Path,
    refs_images: Path,
    targets_json: Path,
    targets_images: Path,
    published: dict[tuple[str, str], str],
    description: str,
) -> ProtocolSpec:
    ref_coco = _load(refs_json, refs_images)
    target_coco = _load(targets_json, targets_images)
    anns = [a for a in ref_coco["annotations"] if not a.get("iscrowd")]
    if not anns:
        raise ValueError(f"{refs_json}: no (non-crowd) annotation to use as a reference")
    ref_names = _names(ref_coco)
    class_ids = sorted({int(a["category_id"]) for a in anns})
    target_by_name = {v: k for k, v in _names(target_coco).items()}
    missing = [ref_names[c] for c in class_ids if ref_names[c] not in target_by_name]
    if missing:
        raise ValueError(
            f"the references' classes {missing} are not categories of {str(targets_json)!r} "
            f"(its categories: {sorted(target_by_name)}); the names must match"
        )
    return ProtocolSpec(
        kind=kind,
        name=name,
        ref_coco=ref_coco,
        ref_image_dir=refs_images,
        reference_ann_ids=[a["id"] for a in anns],
        class_ids=class_ids,
        target_coco=target_coco,
        target_image_dir=targets_images,
        eval_category_ids=sorted(target_by_name[ref_names[c]] for c in class_ids),
        metric="AP",
        published=published,
        description=description,
    )


def cd_fsod_spec(root: str | os.PathLike, shots: int, *, name: str | None = None) -> ProtocolSpec:
    """A CD-FSOD dataset in the research code's layout (method §9.5): ``<root>/train``,
    ``<root>/test``, ``annotations/{K}_shot.json`` (every annotation is a reference) and
    ``annotations/test.json``; the SAM-H ``*_with_segm.json`` versions are used when present,
    otherwise box-only references get SAM 2 masks and the evaluation is bbox only."""
    root = Path(root)
    ann = root / "annotations"

    def pick(stem: str) -> Path:
        with_segm = ann / f"{stem}_with_segm.json"
        return with_segm if with_segm.is_file() else ann / f"{stem}.json"

    dataset = name or root.name
    published = {}
    per_dataset = CDFSOD_PUBLISHED["5shot"].get(dataset.lower()) if shots == 5 else None
    mean = CDFSOD_PUBLISHED["mean"].get(shots)
    if per_dataset is not None or mean is not None:
        parts = ([f"{per_dataset} ({dataset})"] if per_dataset is not None else []) + (
            [f"6-dataset mean {mean}"] if mean is not None else []
        )
        published[("bbox", "AP")] = "; ".join(parts)
    return _all_annotation_spec(
        "cd-fsod",
        f"cd-fsod-{_slug(dataset)}-{shots}shot",
        pick(f"{shots}_shot"),
        root / "train",
        pick("test"),
        root / "test",
        published,
        f"CD-FSOD {dataset}, {shots}-shot",
    )


def custom_spec(
    refs_json: str | os.PathLike,
    targets_json: str | os.PathLike,
    images: str | os.PathLike,
    *,
    target_images: str | os.PathLike | None = None,
    name: str = "custom",
) -> ProtocolSpec:
    """Custom COCO data: every annotation of ``refs_json`` is a reference (masks or boxes,
    any number of classes, unequal shots); ``targets_json`` holds the targets and their
    ground truth (evaluated on the references' classes; boxes only when it has no masks).
    Image records without width/height are repaired from the files."""
    images = Path(images)
    return _all_annotation_spec(
        "custom",
        _slug(name) or "custom",
        Path(refs_json),
        images,
        Path(targets_json),
        Path(target_images or images),
        {},
        f"custom data {name!r}",
    )


# ------------------------------------------------------------------------------------------
# FiftyOne import


def _detection(fo, ann: Mapping[str, Any], name: str, width: int, height: int):
    from fiftyone_ntt.coco import annotation_to_mask

    x, y, w, h = (float(v) for v in ann["bbox"])
    attrs = {
        "coco_id": ann["id"],
        "iscrowd": int(bool(ann.get("iscrowd", 0))),
        "category_id": int(ann["category_id"]),
    }
    mask = None
    if ann.get("segmentation"):
        full = annotation_to_mask(ann, height, width)
        if full is not None and full.any():
            # crop to an integer box holding both the bbox and the mask, so the mask is
            # stored pixel-exact (FiftyOne stretches a mask over its box)
            ys, xs = np.nonzero(full)
            x1 = max(0, min(math.floor(x), int(xs.min())))
            y1 = max(0, min(math.floor(y), int(ys.min())))
            x2 = min(width, max(math.ceil(x + w), int(xs.max()) + 1))
            y2 = min(height, max(math.ceil(y + h), int(ys.max()) + 1))
            mask = np.ascontiguousarray(full[y1:y2, x1:x2].astype(bool))
            x, y, w, h = x1, y1, x2 - x1, y2 - y1
            attrs["coco_bbox"] = [float(v) for v in ann["bbox"]]
    return fo.Detection(
        label=name,
        bounding_box=[x / width, y / height, w / width, h / height],
        mask=mask,
        **attrs,
    )


def import_coco(
    name: str,
    coco: Mapping[str, Any],
    image_dir: str | os.PathLike,
    image_ids: Sequence[Any] | None = None,
    *,
    gt_field: str = GT_FIELD,
    log: Callable[[str], None] | None = None,
) -> Any:
    """Load or create the persistent dataset ``name`` and add the images of ``coco`` (only
    ``image_ids``, default all) that it does not hold yet, with their annotations in
    ``gt_field`` (masks pixel-exact, ``coco_id``/``iscrowd``/``category_id`` attributes).

    Samples carry ``coco_id`` (the image id) and their metadata from the record.
    """
    import fiftyone as fo

    from fiftyone_ntt.coco import image_path

    if fo.dataset_exists(name):
        dataset = fo.load_dataset(name)
    else:
        dataset = fo.Dataset(name, persistent=True)
    have = (
        set(dataset.values("coco_id")) if len(dataset) and dataset.has_field("coco_id") else set()
    )
    records = {r["id"]: r for r in coco["images"]}
    wanted = list(records) if image_ids is None else list(dict.fromkeys(image_ids))
    unknown = [i for i in wanted if i not in records]
    if unknown:
        raise ValueError(f"image id(s) {unknown[:5]} have no record in the annotation file")
    todo = [i for i in wanted if i not in have]
    if not todo:
        return dataset
    names = _names(coco)
    by_image: dict[Any, list] = defaultdict(list)
    todo_set = set(todo)
    for ann in coco["annotations"]:
        if ann["image_id"] in todo_set:
            by_image[ann["image_id"]].append(ann)
    if log:
        log(f"importing {len(todo)} image(s) into dataset {name!r}")
    batch: list = []
    for image_id in todo:
        record = records[image_id]
        width, height = int(record["width"]), int(record["height"])
        detections = [
            _detection(
                fo, ann, names.get(int(ann["category_id"]), str(ann["category_id"])), width, height
            )
            for ann in by_image[image_id]
        ]
        batch.append(
            fo.Sample(
                filepath=str(image_path(record, image_dir).resolve()),
                coco_id=image_id,
                metadata=fo.ImageMetadata(width=width, height=height),
                **{gt_field: fo.Detections(detections=detections)},
            )
        )
        if len(batch) >= 500:
            dataset.add_samples(batch, progress=False)
            batch = []
    if batch:
        dataset.add_samples(batch, progress=False)
    return dataset


# ------------------------------------------------------------------------------------------
# results


def _full_mask(det, box, width, height, fallback) -> np.ndarray | None:
    """Full-image mask of a detection; the crop is pasted directly when it has the box's
    pixel size (as ``segment`` writes it), else FiftyOne's rendering (resize) is used."""
    if det.mask is None:
        return fallback(det, width, height)
    x1, y1, x2, y2 = box
    crop = np.asarray(det.mask)
    if crop.ndim == 2 and crop.shape == (y2 - y1, x2 - x1) and x1 >= 0 and y1 >= 0:
        if x2 <= width and y2 <= height:
            full = np.zeros((height, width), dtype=np.uint8)
            full[y1:y2, x1:x2] = crop.astype(bool)
            return full
    return fallback(det, width, height)


def results_from_field(
    collection: Any,
    pred_field: str,
    category_ids: Mapping[str, int],
    *,
    box_convention: str = "paper",
) -> list[dict[str, Any]]:
    """COCO results of the predictions in ``pred_field`` (image id = the sample's
    ``coco_id``), with the paper's box convention (``[x1, y1, x2 - 1 - x1, y2 - 1 - y1]``,
    method §6) or the exact extent; masks as compressed RLE at full resolution."""
    from pycocotools import mask as mask_utils

    from fiftyone_ntt.fiftyone.labels import detection_box_xyxy, detection_full_mask

    if box_convention not in ("paper", "exact"):
        raise ValueError(f"box_convention={box_convention!r}; use 'paper' or 'exact'")
    shrink = 1.0 if box_convention == "paper" else 0.0
    results = []
    view = collection.select_fields([pred_field, "coco_id", "metadata"])
    for sample in view:
        detections = sample[pred_field]
        if detections is None:
            continue
        width, height = sample.metadata.width, sample.metadata.height
        for det in detections.detections:
            x1, y1, x2, y2 = (round(v) for v in detection_box_xyxy(det, width, height))
            entry = {
                "image_id": sample["coco_id"],
                "category_id": int(category_ids[str(det.label)]),
                "bbox": [float(x1), float(y1), (x2 - shrink) - x1, (y2 - shrink) - y1],
                "score": float(det.confidence if det.confidence is not None else 1.0),
            }
            mask = _full_mask(det, (x1, y1, x2, y2), width, height, detection_full_mask)
            if mask is not None:
                rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
                counts = rle["counts"]
                entry["segmentation"] = {
                    "size": [int(v) for v in rle["size"]],
                    "counts": counts.decode() if isinstance(counts, bytes) else counts,
                }
            results.append(entry)
    return results


# ------------------------------------------------------------------------------------------
# running


def _config(preset: str, points_per_side: int | None):
    from fiftyone_ntt.config import get_preset

    config = get_preset(preset)
    if points_per_side:
        config = config.replace(points_per_side=int(points_per_side))
    return config


def _ensure_bank(refs, key, tag, classes, config, preset, device, log) -> tuple[Any, bool]:
    """The bank ``key`` of ``refs``: reused when it holds exactly the tagged references with
    the same classes, settings and models; built (overwriting) otherwise."""
    import fiftyone as fo

    from fiftyone_ntt.fiftyone.banks import build_bank, get_bank_info, load_bank
    from fiftyone_ntt.fiftyone.models import get_models, model_identity

    tagged = refs.filter_labels(GT_FIELD, fo.ViewField("tags").contains(tag)).values(
        f"{GT_FIELD}.detections.id", unwind=True
    )
    encoder, proposer = get_models(config.models, device)
    wanted_config = config.to_dict()
    wanted_config["models"]["device"] = "auto"
    try:
        info = get_bank_info(refs, key)
    except KeyError:
        info = None
    if info is not None and info.get("exists"):
        bank = load_bank(refs, key)
        if (
            set(bank.reference_ids) == set(tagged)
            and list(bank.class_names) == list(classes)
            and bank.metadata.get("config") == wanted_config
            and bank.metadata.get("models") == model_identity(encoder, proposer)
        ):
            log(f"reusing memory bank {key!r} ({bank.num_references} references)")
            return bank, True
    log(f"building memory bank {key!r} from {len(tagged)} references")
    build_bank(
        refs,
        GT_FIELD,
        key,
        tag=tag,
        classes=list(classes),
        preset=preset,
        config=config,
        device=device,
        encoder=encoder,
        proposer=proposer,
        overwrite=True,
    )
    return load_bank(refs, key), False


def run_protocol(
    spec: ProtocolSpec,
    *,
    prefix: str | None = None,
    max_samples: int | None = None,
    preset: str = "paper",
    points_per_side: int | None = None,
    device: str | None = None,
    output_dir: str | os.PathLike | None = None,
    export_pngs: int = 0,
    vis_threshold: float = 0.5,
    fiftyone_eval: bool = False,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run a protocol end to end (import, references, bank, segment, evaluate); resumable.

    Args:
        spec: from :func:`coco_fsod_spec`, :func:`voc_spec`, :func:`cd_fsod_spec` or
            :func:`custom_spec`.
        prefix: dataset name prefix (default ``ntt-<kind>``): ``<prefix>-refs`` and
            ``<prefix>-targets``.
        max_samples: only the first N target images (annotation-file order): a smoke run;
            the evaluation then covers those images only.
        preset: configuration preset (default ``paper``: the published numbers' models,
            SAM 2.0 Hiera-L + DINOv2 ViT-L/14); ``points_per_side`` overrides its grid.
        device: compute device.
        output_dir: where ``<run>_results.json`` and ``<run>_report.json`` are written
            (default ``./ntt_protocols``), and ``<run>_vis/`` with ``export_pngs`` side-by-side
            PNGs (0: none) drawn at ``vis_threshold``.
        fiftyone_eval: also run FiftyOne's COCO evaluator (eval key ``eval_<run>``, mask
            IoU when the ground truth has masks) for the App's Model Evaluation panel and
            TP/FP/FN browsing.
        overwrite: re-segment every target (needed when the settings or models changed
            since the predictions in ``ntt_<run>`` were made; otherwise ``segment`` refuses).
        log: called with progress lines (default: print to stderr).

    Returns:
        The report: ``name``, ``kind``, ``description``, ``datasets``, ``bank`` (key,
        fingerprint, ``reused``), ``reference_ids`` (COCO annotation ids), ``classes``,
        ``segment`` (the segment summary), ``evaluation`` (:func:`fiftyone_ntt.coco.evaluate`
        output), ``table`` (text), file paths.
    """
    from fiftyone_ntt.coco import evaluate as coco_evaluate
    from fiftyone_ntt.coco import write_json
    from fiftyone_ntt.fiftyone.segment import segment

    started = time.perf_counter()
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    prefix = prefix or f"ntt-{spec.kind}"
    output_dir = Path(output_dir or "ntt_protocols")
    slug = _slug(spec.name)
    tag = f"ntt:ref:{spec.name}"
    config = _config(preset, points_per_side)

    # 1. datasets
    ref_anns = {a["id"]: a for a in spec.ref_coco["annotations"]}
    ref_image_ids = list(dict.fromkeys(ref_anns[a]["image_id"] for a in spec.reference_ann_ids))
    refs = import_coco(f"{prefix}-refs", spec.ref_coco, spec.ref_image_dir, ref_image_ids, log=log)
    target_ids = [r["id"] for r in spec.target_coco["images"]]
    if max_samples is not None:
        target_ids = target_ids[: int(max_samples)]
    targets = import_coco(
        f"{prefix}-targets", spec.target_coco, spec.target_image_dir, target_ids, log=log
    )

    # 2. references
    label_ids, coco_ids = refs.values(
        [f"{GT_FIELD}.detections.id", f"{GT_FIELD}.detections.coco_id"], unwind=True
    )
    by_coco = dict(zip(coco_ids, label_ids))
    wanted = set(spec.reference_ann_ids)
    selected = [by_coco[a] for a in spec.reference_ann_ids if a in by_coco]
    if len(selected) != len(wanted):
        raise RuntimeError(f"{len(wanted) - len(selected)} reference annotation(s) not imported")
    refs.untag_labels(tag, label_fields=[GT_FIELD])
    refs.select_labels(ids=selected, fields=GT_FIELD).tag_labels(tag, label_fields=[GT_FIELD])

    # 3. bank (classes in category-id order, as the research code's label indices)
    ref_names = _names(spec.ref_coco)
    classes = [ref_names[c] for c in sorted(spec.class_ids)]
    bank, reused = _ensure_bank(refs, slug, tag, classes, config, preset, device, log)

    # 4. segment (resumable)
    from fiftyone import ViewField as F

    view = targets.match(F("coco_id").is_in(target_ids))
    out_field = f"ntt_{slug}"
    log(f"segmenting {len(view)} target image(s) into {targets.name!r}.{out_field}")
    summary = segment(
        view, bank, out_field, skip_references=False, device=device, overwrite=overwrite
    )
    if summary["failed"]:
        log(f"warning: {summary['failed']} image(s) could not be read (see the report)")

    # 5. results with the paper's box convention, evaluated on the original ground truth
    target_by_name = {v: k for k, v in _names(spec.target_coco).items()}
    results = results_from_field(view, out_field, target_by_name, box_convention="paper")
    evaluation = coco_evaluate(
        spec.target_coco,
        results,
        category_ids=spec.eval_category_ids,
        image_ids=None if max_samples is None else target_ids,
    )

    report: dict[str, Any] = {
        "name": spec.name,
        "kind": spec.kind,
        "description": spec.description,
        "datasets": {"references": refs.name, "targets": targets.name},
        "pred_field": out_field,
        "reference_tag": tag,
        "bank": {"key": slug, "fingerprint": bank.fingerprint, "reused": reused},
        "reference_ids": list(spec.reference_ann_ids),
        "sampled": spec.extra.get("sampled"),
        "classes": classes,
        "eval_category_ids": list(spec.eval_category_ids),
        "num_target_images": len(target_ids),
        "smoke": max_samples is not None,
        "segment": {k: v for k, v in summary.items() if k != "failures"},
        "failures": summary["failures"],
        "evaluation": evaluation,
        "published": {f"{k[0]} {k[1]}": v for k, v in spec.published.items()},
    }
    if fiftyone_eval:
        from fiftyone_ntt.fiftyone.evaluate import evaluate as fo_evaluate

        eval_key = f"eval_{slug}"
        has_masks = "segm" in evaluation["iou_types"]
        log(f"FiftyOne evaluation {eval_key!r} ({'mask' if has_masks else 'box'} IoU)")
        eval_names = _names(spec.target_coco)
        fo_summary = fo_evaluate(
            view,
            out_field,
            eval_key,
            gt_field=GT_FIELD,
            classes=[eval_names[c] for c in spec.eval_category_ids],
            use_masks=has_masks,
        )
        report["fiftyone_eval"] = {
            k: fo_summary[k] for k in ("eval_key", "mAP", "tp", "fp", "fn", "num_samples")
        }
    report["table"] = format_report(report, spec.published, metric=spec.metric)
    output_dir.mkdir(parents=True, exist_ok=True)
    report["results_file"] = str(write_json(output_dir / f"{slug}_results.json", results))
    if export_pngs:
        from fiftyone_ntt.fiftyone.export import export_side_by_side

        files = export_side_by_side(
            view, output_dir / f"{slug}_vis", GT_FIELD, out_field,
            threshold=vis_threshold, labels=classes, limit=export_pngs,
        )  # fmt: skip
        report["png_files"] = [str(p) for p in files]
    report["seconds"] = round(time.perf_counter() - started, 3)
    report["report_file"] = str(output_dir / f"{slug}_report.json")
    write_json(report["report_file"], report, indent=1)

    stored = dict(targets.info.get("ntt_protocols") or {})
    stored[spec.name] = {
        "pred_field": out_field,
        "references_dataset": refs.name,
        "bank": report["bank"],
        "stats": {t: evaluation[t]["stats"] for t in evaluation["iou_types"]},
        "num_target_images": len(target_ids),
        "report_file": report["report_file"],
    }
    targets.info["ntt_protocols"] = stored
    targets.save()
    return report


def _pct(value: float | None) -> str:
    if value is None or value < 0:
        return "-"
    return f"{100 * value:.1f}"


def format_report(
    report: Mapping[str, Any], published: Mapping[tuple[str, str], str], *, metric: str = "AP"
) -> str:
    """The report's table: bbox/segm nAP, nAP50, nAP75 (ours, in %) and the published values."""
    evaluation = report["evaluation"]
    prefix = "n" if report.get("kind") in ("coco-fsod", "voc") else ""
    lines = [
        f"{report['description']}: {report['num_target_images']} target image(s), "
        f"{len(report['classes'])} class(es), {len(report['reference_ids'])} reference(s)"
        + (" [smoke run: --max-samples]" if report.get("smoke") else ""),
        f"{'metric':<14}{'ours':>8}   published (method §7)",
    ]
    for iou_type in ("bbox", "segm"):
        for stat, _ in _STATS:
            label = f"{iou_type} {prefix}{stat}"
            if iou_type not in evaluation:
                ours = "n/a"
            else:
                ours = _pct(evaluation[iou_type]["stats"][stat])
            mark = " *" if stat == metric else ""
            lines.append(f"{label:<14}{ours:>8}   {published.get((iou_type, stat), '-')}{mark}")
    for note in evaluation.get("notes", ()):
        lines.append(f"note: {note}")
    lines.append(f"* headline metric ({prefix}{metric}); GPU time was not measured")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fiftyone_ntt.fiftyone.protocols",
        description="Run a paper protocol or a custom COCO dataset through FiftyOne "
        "(import, references, bank, segment, evaluate); rerunning resumes.",
    )
    sub = parser.add_subparsers(dest="protocol", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--prefix", help="dataset name prefix (default ntt-<protocol>)")
        p.add_argument("--max-samples", type=int, help="only the first N target images")
        p.add_argument(
            "--preset",
            default="paper",
            help="configuration preset (default: paper, the published models)",
        )
        p.add_argument("--points-per-side", type=int, help="SAM 2 prompt grid (default 32)")
        p.add_argument("--device", help="cpu, cuda, cuda:1, ... (default auto)")
        p.add_argument("--output-dir", default="ntt_protocols", help="results and report")
        p.add_argument("--export-pngs", type=int, default=0, help="side-by-side PNGs of N images")
        p.add_argument("--vis-threshold", type=float, default=0.5, help="PNG score threshold")
        p.add_argument(
            "--fiftyone-eval",
            action="store_true",
            help="also run FiftyOne's evaluator (Model Evaluation panel in the App)",
        )
        p.add_argument(
            "--overwrite",
            action="store_true",
            help="re-segment everything (after changing the preset or settings)",
        )
        p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = sub.add_parser("coco-fsod", help="COCO-FSOD, 20 novel classes (method §2)")
    p.add_argument("coco_root", help="folder with train2017/, val2017/, annotations/")
    p.add_argument("--shots", type=int, default=10, choices=(1, 2, 3, 5, 10, 30))
    p.add_argument("--seed", type=int, default=33)
    common(p)

    p = sub.add_parser("voc", help="PASCAL VOC few-shot split (nAP50)")
    p.add_argument("voc_root")
    p.add_argument("--split", type=int, default=1, choices=(1, 2, 3))
    p.add_argument("--shots", type=int, default=1)
    p.add_argument("--seed", type=int, default=33)
    p.add_argument("--train-json", help="default annotations/voc0712_trainval_with_segm.json")
    p.add_argument("--test-json", help="default annotations/voc07_test_with_segm.json")
    p.add_argument("--train-images", help="default JPEGImages/")
    p.add_argument("--test-images", help="default JPEGImages/")
    common(p)

    p = sub.add_parser("cd-fsod", help="a CD-FSOD dataset ({K}_shot.json / test.json)")
    p.add_argument("root", help="folder with train/, test/, annotations/")
    p.add_argument("--shots", type=int, default=1)
    p.add_argument("--name", help="dataset name (default: the folder's name)")
    common(p)

    p = sub.add_parser("custom", help="custom COCO references + targets")
    p.add_argument("refs_json", help="references: every annotation is one")
    p.add_argument("targets_json", help="targets and their ground truth")
    p.add_argument("images", help="image folder (of the references, and targets by default)")
    p.add_argument("--target-images", help="image folder of the targets")
    p.add_argument("--name", default="custom")
    common(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.protocol == "coco-fsod":
            spec = coco_fsod_spec(args.coco_root, args.shots, args.seed)
        elif args.protocol == "voc":
            spec = voc_spec(
                args.voc_root, args.split, args.shots, args.seed,
                train_json=args.train_json, test_json=args.test_json,
                train_images=args.train_images, test_images=args.test_images,
            )  # fmt: skip
        elif args.protocol == "cd-fsod":
            spec = cd_fsod_spec(args.root, args.shots, name=args.name)
        else:
            spec = custom_spec(
                args.refs_json, args.targets_json, args.images,
                target_images=args.target_images, name=args.name,
            )  # fmt: skip
        report = run_protocol(
            spec,
            prefix=args.prefix,
            max_samples=args.max_samples,
            preset=args.preset,
            points_per_side=args.points_per_side,
            device=args.device,
            output_dir=args.output_dir,
            export_pngs=args.export_pngs,
            vis_threshold=args.vis_threshold,
            fiftyone_eval=args.fiftyone_eval,
            overwrite=args.overwrite,
        )
    except (ValueError, FileNotFoundError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k != "evaluation"}, indent=1))
    else:
        print(report["table"])
        print(f"report: {report['report_file']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
