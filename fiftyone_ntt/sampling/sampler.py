"""The general seeded few-shot sampler (docs/method.md §2.2) over :class:`Candidate` records: the
paper's size/border rules or none, a shot count per class, and a reported shortfall (or, with
``strict=True``, an error) when a class has fewer than K usable instances. Nothing here reads
files or imports FiftyOne.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

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
        # A 0 or missing size is a known defect of user COCO files (§11.3); the
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


def group_by_class(
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


def usable_count(group: Sequence[Candidate], paper_rules: bool, one_per_image: bool) -> int:
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
    groups = group_by_class(candidates, classes)
    return {name: usable_count(group, paper_rules, one_per_image) for name, group in groups.items()}


def scan_candidates(
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
    groups = group_by_class(candidates, classes)
    rng = random.Random(seed)
    chosen: list[Candidate] = []
    shortfalls: dict[str, tuple[int, int]] = {}
    available: dict[str, int] = {}
    for name, group in groups.items():
        k = _shots_for(shots, name)
        picked = scan_candidates(group, k, rng, paper_rules, one_per_image)
        available[name] = usable_count(group, paper_rules, one_per_image)
        if len(picked) < k:
            if strict:
                raise SamplingError(
                    shortfall_message(
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


def shortfall_message(
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
