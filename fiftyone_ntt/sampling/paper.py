"""The research code's COCO/VOC few-shot sampler, bit for bit (docs/method.md §2.2), and COCO
annotations as :class:`~fiftyone_ntt.sampling.sampler.Candidate` records. Nothing here reads
files or imports FiftyOne.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from fiftyone_ntt.sampling.sampler import (
    Candidate,
    SamplingError,
    group_by_class,
    scan_candidates,
    shortfall_message,
    usable_count,
)


def _category_names(coco: Mapping[str, Any]) -> dict[int, str]:
    names: dict[int, str] = {}
    for i, category in enumerate(coco.get("categories", ())):
        try:
            names[int(category["id"])] = str(category.get("name", category["id"]))
        except (KeyError, TypeError, ValueError):
            raise ValueError(
                f"categories[{i}] = {category!r} has no valid 'id'; fix the annotation file"
            ) from None
    return names


def candidates_from_coco(
    coco: Mapping[str, Any], category_ids: Sequence[int] | None = None
) -> list[Candidate]:
    """Every annotation of a COCO dict as a :class:`Candidate`, in annotation-file order.

    The class name of a candidate is ``str(category_id)`` so that two categories sharing a
    display name stay apart; map back with ``int(candidate.class_name)``. Image sizes come from
    the image records (``None`` when missing or 0). The order follows ``coco["annotations"]``
    as pycocotools' ``coco.anns`` does (§2.2: the order matters for the random stream).

    Args:
        coco: a COCO annotation dict (``images``, ``annotations``).
        category_ids: keep only these categories; ``None`` keeps all.

    Raises:
        ValueError: duplicate annotation ids, annotations pointing to unknown images, or
            records without the keys the sampler needs (the message names them).
    """
    wanted = None if category_ids is None else {int(c) for c in category_ids}
    images: dict[Any, Mapping[str, Any]] = {}
    for i, record in enumerate(coco.get("images", ())):
        if "id" not in record:
            raise ValueError(f"images[{i}] has no 'id'; fix the annotation file")
        images[record["id"]] = record
    candidates: list[Candidate] = []
    seen: set[Any] = set()
    for i, ann in enumerate(coco.get("annotations", ())):
        for key in ("id", "image_id", "category_id", "bbox"):
            if key not in ann:
                raise ValueError(
                    f"annotations[{i}] has no {key!r} key; every annotation needs id, "
                    "image_id, category_id and bbox"
                )
        if str(ann["id"]) in seen:
            # pycocotools would silently keep the last one at the first one's position; a
            # duplicate id makes reference ids ambiguous, so refuse it.
            raise ValueError(
                f"annotation id {ann['id']!r} appears more than once (annotations[{i}]); "
                "give every annotation a unique id"
            )
        seen.add(str(ann["id"]))
        category_id = int(ann["category_id"])
        if wanted is not None and category_id not in wanted:
            continue
        record = images.get(ann["image_id"])
        if record is None:
            raise ValueError(
                f"annotation {ann['id']!r} refers to image_id {ann['image_id']!r}, which has "
                "no record in 'images'; add the image record or remove the annotation"
            )
        bbox = ann["bbox"]
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
            raise ValueError(
                f"annotation {ann['id']!r}: bbox {bbox!r} is not [x, y, w, h]; fix the file"
            )
        width, height = record.get("width"), record.get("height")
        candidates.append(
            Candidate(
                class_name=str(category_id),
                ref_id=str(ann["id"]),
                image_id=ann["image_id"],
                box_xywh=tuple(bbox),
                image_width=int(width) if width else None,
                image_height=int(height) if height else None,
                iscrowd=bool(ann.get("iscrowd", 0)),
            )
        )
    return candidates


def sample_references_paper(
    coco: Mapping[str, Any], category_ids: Sequence[int], shots: int, seed: int
) -> dict[int, list[dict[str, Any]]]:
    """The research code's few-shot sampler, exactly (docs/method.md §2.2).

    1. Build ``category -> [(image_id, ann_id), ...]`` by iterating the annotations in JSON
       order, keeping only ``category_ids``; the dict's order is the order in which each
       category first appears among the annotations, **not** id order and not the order of
       ``category_ids``. This order fixes how the random stream is consumed.
    2. Seed one Mersenne Twister once (``random.seed(seed)`` in the research code; a
       ``random.Random(seed)`` instance gives the identical sequence without touching the
       global state).
    3. Per category, in that order: shuffle its whole list (always, so the stream advances
       even for categories whose candidates are mostly invalid), then scan it and accept an
       annotation if it is not crowd, its bbox sides are >= 32 px, it lies >= 10 px from every
       border of its image (``x >= 10``, ``y >= 10``, ``W - (x + w) >= 10``,
       ``H - (y + h) >= 10`` with the image record's width/height) and its image has not yet
       been taken for this category. Stop at K.

    Args:
        coco: the annotation dict (e.g. ``instances_train2017.json``), unmodified: the order of
            its ``annotations`` list matters.
        category_ids: the split's COCO category ids (e.g. the 20 novel classes, §2.1).
        shots: K.
        seed: the seed (the README uses 33).

    Returns:
        ``{category_id: [{"img_id": int, "ann_ids": [int]}, ...]}`` with K entries each, in
        first-appearance category order: the layout of the research code's pickle.

    Raises:
        SamplingError: a category has fewer than K valid candidates. (The research code also
            raises, except for a category with no annotation at all, which it silently leaves
            out; we raise for it too rather than return fewer classes than asked for.)
        ValueError: unknown category ids, images without a usable width/height, malformed
            annotations.
    """
    if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
        raise ValueError(f"shots={shots!r}; give a positive integer")
    names = _category_names(coco)
    category_ids = [int(c) for c in category_ids]
    unknown = [c for c in category_ids if c not in names]
    if unknown:
        raise ValueError(
            f"category id(s) {unknown} are not in the file's categories; known ids: {sorted(names)}"
        )
    candidates = candidates_from_coco(coco, category_ids)
    annotation_ids = {str(ann["id"]): ann["id"] for ann in coco.get("annotations", ())}
    # Category order = first appearance among the (filtered) annotations; categories with no
    # annotation at all come last and fail below.
    classes = [str(c) for c in category_ids]
    groups = group_by_class(candidates, classes)
    rng = random.Random(seed)
    result: dict[int, list[dict[str, Any]]] = {}
    for class_name, group in groups.items():
        category_id = int(class_name)
        picked = scan_candidates(group, shots, rng, paper_rules=True, one_per_image=True)
        if len(picked) < shots:
            usable = usable_count(group, paper_rules=True, one_per_image=True)
            raise SamplingError(
                shortfall_message(
                    f"category {category_id} ({names[category_id]!r})",
                    shots,
                    usable,
                    len(group),
                    paper_rules=True,
                )
            )
        result[category_id] = [
            {"img_id": c.image_id, "ann_ids": [annotation_ids[c.ref_id]]} for c in picked
        ]
    return result
