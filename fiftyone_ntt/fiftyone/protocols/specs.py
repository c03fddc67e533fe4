"""Protocol definitions: published numbers, :class:`ProtocolSpec` and one builder per
protocol (COCO-FSOD, PASCAL VOC, CD-FSOD, custom COCO). No FiftyOne here."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fiftyone_ntt.coco import load_coco
from fiftyone_ntt.sampling import sample_references_paper

GT_FIELD = "ground_truth"

#: The 20 novel classes of COCO-FSOD (the PASCAL VOC classes), COCO ids (docs/method.md §2.1).
COCO_NOVEL_IDS = (1, 2, 3, 4, 5, 6, 7, 9, 16, 17, 18, 19, 20, 21, 44, 62, 63, 64, 67, 72)

#: PASCAL VOC few-shot novel classes per split (docs/method.md §2.1).
VOC_NOVEL_CLASSES = {
    1: ("bird", "bus", "cow", "motorbike", "sofa"),
    2: ("aeroplane", "bottle", "cow", "horse", "sofa"),
    3: ("boat", "cat", "motorbike", "sheep", "sofa"),
}

#: COCO-FSOD per shot: (seed-33 bbox, seed-33 segm, 10-seed mean±std bbox, segm), docs/method.md
#: §7.
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

#: PASCAL VOC nAP50 per split and shot (project page, docs/method.md §7); the abstract's average
#: over splits is 71.2.
VOC_PUBLISHED = {
    1: {1: 70.8, 2: 72.3, 3: 73.3, 5: 77.2, 10: 79.1},
    2: {1: 54.5, 2: 67.0, 3: 76.3, 5: 75.9, 10: 78.2},
    3: {1: 61.1, 2: 67.9, 3: 71.3, 5: 70.8, 10: 72.6},
}

#: CD-FSOD bbox nAP: mean over the 6 datasets per shot, and 5-shot per dataset (docs/method.md §7).
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

STATS = (("AP", "AP"), ("AP50", "AP50"), ("AP75", "AP75"))


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

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file {str(path)!r} does not exist")
    coco = load_coco(path, image_dir=image_dir)
    if difficult_as_crowd:  # VOC "difficult" objects are ignored as crowd (docs/method.md §6)
        for ann in coco["annotations"]:
            if ann.get("difficult") and not ann.get("iscrowd"):
                ann["iscrowd"] = 1
    return coco


def category_names(coco: Mapping[str, Any]) -> dict[int, str]:
    return {int(c["id"]): str(c["name"]) for c in coco.get("categories", ())}


def _ids_by_name(coco: Mapping[str, Any], names: Sequence[str], what: str) -> list[int]:
    by_name = {v: k for k, v in category_names(coco).items()}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ValueError(
            f"{what} has no categories {missing}; its categories are {sorted(by_name)}"
        )
    return [by_name[n] for n in names]


def slugify(text: str) -> str:
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
    20 novel classes; targets = all val2017 images with novel-class ground truth (docs/method.md
    §2)."""

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
    ``difficult`` as crowd (docs/method.md §2.1, §6).

    Default layout under ``voc_root``: ``annotations/voc0712_trainval_with_segm.json`` (the
    research code's file), ``annotations/voc07_test_with_segm.json`` and one image folder
    ``JPEGImages/`` for both (each can be given explicitly).
    """

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
    ref_names = category_names(ref_coco)
    class_ids = sorted({int(a["category_id"]) for a in anns})
    target_by_name = {v: k for k, v in category_names(target_coco).items()}
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
    """A CD-FSOD dataset in the research code's layout (docs/method.md §9.5): ``<root>/train``,
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
        f"cd-fsod-{slugify(dataset)}-{shots}shot",
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
        slugify(name) or "custom",
        Path(refs_json),
        images,
        Path(targets_json),
        Path(target_images or images),
        {},
        f"custom data {name!r}",
    )
