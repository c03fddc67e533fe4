"""Seeded few-shot reference sampling, including the paper's exact sampler (method §2.2).

Two entry points:

* :func:`sample_references_paper` reproduces the research code's COCO/VOC sampler
  (``dataset/few_shot_sampling.py``) bit for bit: same JSON, same seed -> the same reference
  set, in the same order, as the pickles behind the published numbers.
* :func:`sample_references` is the general sampler for any data (FiftyOne views, custom
  COCO files): it works on :class:`Candidate` records, can apply the paper's size/border
  rules or not, accepts a shot count per class and, unless ``strict=True``, takes what exists
  when a class has fewer than K usable instances (reporting the shortfall) instead of
  failing. With ``paper_rules=True``, ``one_per_image=True`` and the candidates of a COCO file
  in annotation order (:func:`candidates_from_coco`), it selects exactly what
  :func:`sample_references_paper` selects.

Nothing here reads files or imports FiftyOne.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "PAPER_BORDER_MARGIN",
    "PAPER_MIN_BOX_SIDE",
    "Candidate",
    "SampledReferences",
    "SamplingError",
    "SamplingShortfallWarning",
    "candidates_from_coco",
    "count_candidates",
    "sample_references",
    "sample_references_paper",
]

#: Minimum bbox width and height, in pixels, of a reference under the paper's rules (§2.2,
#: rule 2). The thresholds are on the box sides, not on the mask area.
PAPER_MIN_BOX_SIDE = 32
#: Minimum distance, in pixels, between a reference's bbox and every image border (§2.2,
#: rule 3), so the 1.2x context crop (§3) rarely gets clipped.
PAPER_BORDER_MARGIN = 10


class SamplingError(ValueError):
    """A class has fewer usable reference candidates than requested (or none at all)."""


class SamplingShortfallWarning(UserWarning):
    """Emitted by :func:`sample_references` when a class got fewer references than asked."""


@dataclass(frozen=True)
class Candidate:
    """One annotated instance that may be picked as a reference.

    The box is stored as COCO ``(x, y, w, h)`` absolute pixels (floats), not as the library's
    usual XYXY: the paper's rules (§2.2) test ``w``, ``h`` and ``x + w`` exactly as written in
    the annotation file, and converting to XYXY and back (``(x + w) - x``) can move a value
    that sits on a threshold by one rounding step. COCO and FiftyOne both store boxes as
    ``x, y, w, h`` (FiftyOne in relative units: multiply by the image size first).

    Attributes:
        class_name: the class of the instance.
        ref_id: stable identifier of the instance (a COCO annotation id, a FiftyOne label id).
        image_id: identifier of the image it lies in (one-per-image uses it).
        box_xywh: ``(x, y, w, h)`` in absolute pixels of the stored image.
        image_width: width of the image in pixels, or ``None`` when unknown (then the paper's
            border rule cannot be checked and raises).
        image_height: height of the image in pixels, or ``None``.
        iscrowd: crowd regions (COCO ``iscrowd=1``) are never sampled.
    """

    class_name: str
    ref_id: str
    image_id: Hashable
    box_xywh: tuple[float, float, float, float]
    image_width: int | None = None
    image_height: int | None = None
    iscrowd: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.class_name, str) or not self.class_name:
            raise ValueError(f"candidate {self.ref_id!r}: class_name must be a non-empty string")
        object.__setattr__(self, "ref_id", str(self.ref_id))
        box = tuple(float(v) for v in self.box_xywh)
        if len(box) != 4:
            raise ValueError(
                f"candidate {self.ref_id!r}: box_xywh must have 4 numbers (x, y, w, h), "
                f"got {self.box_xywh!r}"
            )
        object.__setattr__(self, "box_xywh", box)
        object.__setattr__(self, "iscrowd", bool(self.iscrowd))


class SampledReferences(list):
    """The sampled candidates (a plain ``list`` of :class:`Candidate`) plus what was missing.

    Attributes:
        shortfalls: ``{class_name: (requested, selected)}`` for every class that got fewer
            references than requested; empty when every class got its K.
        available: ``{class_name: usable candidates}`` for every sampled class (what
            :func:`count_candidates` reports).
    """

    shortfalls: dict[str, tuple[int, int]]
    available: dict[str, int]

    def __init__(
        self,
        items: Iterable[Candidate] = (),
        shortfalls: Mapping[str, tuple[int, int]] | None = None,
        available: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__(items)
        self.shortfalls = dict(shortfalls or {})
        self.available = dict(available or {})


# ------------------------------------------------------------------------------------------
# rules


def _passes_paper_rules(candidate: Candidate) -> bool:
    """The size and border rules of the research sampler (§2.2, rules 2 and 3).

    Raises:
        ValueError: the image size is unknown (the border rule needs it).
    """
    x, y, w, h = candidate.box_xywh
    width, height = candidate.image_width, candidate.image_height
    if not width or not height:
        # A 0 or missing size is a known defect of user COCO files (§11 user issues); the
        # research code would silently reject every annotation of such an image.
        raise ValueError(
            f"candidate {candidate.ref_id!r} (image {candidate.image_id!r}): the image "
            f"size is unknown (width={width!r}, height={height!r}), so the paper's border "
            "rule cannot be checked; repair the sizes (fiftyone_ntt.coco.repair_image_sizes, "
            "or load the file with an image folder) or sample with paper_rules=False"
        )
    # Rule 2: both bbox sides >= 32 px.
    if not (w >= PAPER_MIN_BOX_SIDE and h >= PAPER_MIN_BOX_SIDE):
        return False
    # Rule 3: >= 10 px from every border, measured on the stored image size.
    return (
        x >= PAPER_BORDER_MARGIN
        and y >= PAPER_BORDER_MARGIN
        and width - (x + w) >= PAPER_BORDER_MARGIN
        and height - (y + h) >= PAPER_BORDER_MARGIN
    )


def _is_usable(candidate: Candidate, paper_rules: bool) -> bool:
    # Rule 1 (§2.2): crowd regions are never references, with or without the paper's rules.
    if candidate.iscrowd:
        return False
    return _passes_paper_rules(candidate) if paper_rules else True


def _group_by_class(
    candidates: Sequence[Candidate], classes: Sequence[str] | None
) -> dict[str, list[Candidate]]:
    """``class -> candidates`` in first-appearance order, restricted to ``classes``.

    The dict's insertion order is the order in which classes first appear among the
    candidates, **not** the order of ``classes``: that is the order in which the research
    sampler consumes its random stream (§2.2), so listing the classes differently never
    changes the result. Requested classes without any candidate are appended at the end
    with empty lists (they consume no randomness).
    """
    wanted = None if classes is None else set(classes)
    groups: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        if wanted is not None and candidate.class_name not in wanted:
            continue
        groups.setdefault(candidate.class_name, []).append(candidate)
    for name in classes or ():
        groups.setdefault(name, [])
    return groups


def _shots_for(shots: int | Mapping[str, int], class_name: str) -> int:
    value = shots[class_name] if isinstance(shots, Mapping) else shots
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            f"shots for class {class_name!r} is {value!r}; give a non-negative integer"
        )
    return value


def _resolve_classes(
    shots: int | Mapping[str, int], classes: Sequence[str] | None
) -> list[str] | None:
    if isinstance(classes, str):
        raise TypeError(f"classes must be a sequence of class names, not the string {classes!r}")
    if classes is not None:
        classes = list(dict.fromkeys(classes))
        if isinstance(shots, Mapping):
            missing = [c for c in classes if c not in shots]
            if missing:
                raise ValueError(
                    f"shots has no count for class(es) {missing}; add them to the shots "
                    "mapping or give a single integer"
                )
        return classes
    if isinstance(shots, Mapping):
        return list(shots)
    return None


def _usable_count(group: Sequence[Candidate], paper_rules: bool, one_per_image: bool) -> int:
    """How many references the class can give at most (distinct images if one per image)."""
    usable = [c for c in group if _is_usable(c, paper_rules)]
    if one_per_image:
        return len({c.image_id for c in usable})
    return len(usable)


# ------------------------------------------------------------------------------------------
# general sampler


def count_candidates(
    candidates: Sequence[Candidate],
    *,
    classes: Sequence[str] | None = None,
    paper_rules: bool = False,
    one_per_image: bool = True,
) -> dict[str, int]:
    """How many references each class can provide at most under the given rules.

    Args:
        candidates: all annotated instances.
        classes: restrict to these classes (a class without candidates counts 0); ``None``
            counts every class present.
        paper_rules: apply the size/border rules of §2.2.
        one_per_image: count distinct images rather than instances (§2.2 rule 4).

    Returns:
        ``{class_name: count}`` in first-appearance order (requested classes without
        candidates last).
    """
    classes = _resolve_classes(0, classes)
    groups = _group_by_class(candidates, classes)
    return {
        name: _usable_count(group, paper_rules, one_per_image) for name, group in groups.items()
    }


def _scan(
    group: list[Candidate],
    k: int,
    rng: random.Random,
    paper_rules: bool,
    one_per_image: bool,
) -> list[Candidate]:
    """Shuffle one class's candidates and take the first ``k`` usable ones (§2.2).

    The shuffle always happens, whatever ``k`` is and whatever the rules reject: the research
    sampler shuffles each category's full list before scanning it, so the random stream
    advances by the same amount (``len(group) - 1`` draws) no matter which candidates turn
    out valid. The validity checks themselves consume no randomness.
    """
    order = list(group)
    rng.shuffle(order)
    chosen: list[Candidate] = []
    taken_images: set[Hashable] = set()
    for candidate in order:
        if len(chosen) >= k:
            break
        if not _is_usable(candidate, paper_rules):
            continue
        # Rule 4 (§2.2): one instance per image per class; the same image may still serve
        # other classes.
        if one_per_image and candidate.image_id in taken_images:
            continue
        chosen.append(candidate)
        taken_images.add(candidate.image_id)
    return chosen


def sample_references(
    candidates: Sequence[Candidate],
    shots: int | Mapping[str, int],
    seed: int,
    *,
    classes: Sequence[str] | None = None,
    paper_rules: bool = False,
    one_per_image: bool = True,
    strict: bool = False,
) -> SampledReferences:
    """Pick K references per class with a seeded shuffle.

    The procedure is the research sampler's (§2.2) with its rules made optional: one
    ``random.Random(seed)`` stream; classes in order of first appearance among
    ``candidates``; per class, shuffle its candidates (in input order) and scan them,
    skipping crowd regions, (with ``paper_rules``) boxes under 32 px or closer than 10 px to a
    border, and (with ``one_per_image``) images already used for this class; stop at K.
    Because the stream is shared, adding or removing a class can change the draws of the
    classes after it, exactly as in the research code.

    Args:
        candidates: annotated instances, in a stable order (e.g. annotation-file order).
        shots: K for every class, or ``{class_name: K}`` (then only those classes are
            sampled unless ``classes`` says otherwise).
        seed: the random seed.
        classes: restrict to these classes; ``None`` = every class in ``shots`` (if a mapping)
            or present in ``candidates``.
        paper_rules: apply the size/border rules of §2.2.
        one_per_image: at most one reference per image per class (§2.2 rule 4).
        strict: raise :class:`SamplingError` when a class has fewer than K usable candidates
            (as the research code does); otherwise take what exists, record the shortfall in
            ``result.shortfalls`` and emit a :class:`SamplingShortfallWarning`.

    Returns:
        The chosen candidates grouped by class (class order as above, draw order within a
        class), as a :class:`SampledReferences` list.

    Raises:
        SamplingError: ``strict`` and a class falls short.
        ValueError: bad ``shots``, or ``paper_rules`` with a candidate of unknown image size.
    """
    classes = _resolve_classes(shots, classes)
    groups = _group_by_class(candidates, classes)
    rng = random.Random(seed)
    chosen: list[Candidate] = []
    shortfalls: dict[str, tuple[int, int]] = {}
    available: dict[str, int] = {}
    for name, group in groups.items():
        k = _shots_for(shots, name)
        picked = _scan(group, k, rng, paper_rules, one_per_image)
        available[name] = _usable_count(group, paper_rules, one_per_image)
        if len(picked) < k:
            if strict:
                raise SamplingError(
                    _shortfall_message(
                        f"class {name!r}",
                        k,
                        available[name],
                        len(group),
                        paper_rules,
                        one_per_image,
                    )
                )
            shortfalls[name] = (k, len(picked))
        chosen.extend(picked)
    if shortfalls:
        summary = ", ".join(f"{n!r}: {got} of {k}" for n, (k, got) in shortfalls.items())
        warnings.warn(
            f"fewer references than requested for {len(shortfalls)} class(es) ({summary}); "
            "all usable candidates of those classes were taken",
            SamplingShortfallWarning,
            stacklevel=2,
        )
    return SampledReferences(chosen, shortfalls=shortfalls, available=available)


def _shortfall_message(
    what: str, k: int, usable: int, total: int, paper_rules: bool, one_per_image: bool = True
) -> str:
    rules = ["not crowd"]
    if paper_rules:
        rules += ["box sides >= 32 px", ">= 10 px from every border"]
    if one_per_image:
        rules.append("one per image")
    fix = (
        f"lower the number of shots to at most {usable}, leave the class out, or accept fewer "
        "references (strict=False)"
        if usable
        else "leave the class out or annotate usable instances of it"
    )
    return (
        f"{what} has only {usable} valid reference candidate(s) ({', '.join(rules)}) out of "
        f"{total} annotation(s), but {k} shots were requested; {fix}"
    )


# ------------------------------------------------------------------------------------------
# COCO


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
    """The research code's few-shot sampler, exactly (method §2.2).

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
    groups = _group_by_class(candidates, classes)
    rng = random.Random(seed)
    result: dict[int, list[dict[str, Any]]] = {}
    for class_name, group in groups.items():
        category_id = int(class_name)
        picked = _scan(group, shots, rng, paper_rules=True, one_per_image=True)
        if len(picked) < shots:
            usable = _usable_count(group, paper_rules=True, one_per_image=True)
            raise SamplingError(
                _shortfall_message(
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
