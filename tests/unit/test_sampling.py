"""Reference sampling: the paper's exact sampler (docs/method.md §2.2) and the general one."""

from __future__ import annotations

import random
import warnings

import pytest

from fiftyone_ntt.sampling import (
    Candidate,
    SamplingError,
    SamplingShortfallWarning,
    candidates_from_coco,
    count_candidates,
    sample_references,
    sample_references_paper,
)

pytestmark = pytest.mark.unit

W, H = 200, 150  # image size used by the hand-built files


def make_coco(annotations, images=None, categories=None):
    """A COCO dict; ``annotations`` are (ann_id, image_id, category_id, bbox[, iscrowd])."""
    anns = []
    for row in annotations:
        ann_id, image_id, category_id, bbox = row[:4]
        iscrowd = row[4] if len(row) > 4 else 0
        anns.append(
            {
                "id": ann_id,
                "image_id": image_id,
                "category_id": category_id,
                "bbox": list(bbox),
                "iscrowd": iscrowd,
            }
        )
    image_ids = sorted({a["image_id"] for a in anns})
    if images is None:
        images = [{"id": i, "file_name": f"{i}.jpg", "width": W, "height": H} for i in image_ids]
    if categories is None:
        cat_ids = sorted({a["category_id"] for a in anns})
        categories = [{"id": c, "name": f"class{c}"} for c in cat_ids]
    return {"images": images, "annotations": anns, "categories": categories}


GOOD = (20, 20, 40, 40)  # valid under every rule in a W x H image


# ------------------------------------------------------------------------------ the rules


@pytest.mark.parametrize(
    ("bbox", "valid"),
    [
        ((10, 10, 32, 32), True),  # every value exactly on its threshold
        ((9, 10, 32, 32), False),  # 9 px from the left border
        ((10, 9, 32, 32), False),  # 9 px from the top border
        ((10, 10, 31, 32), False),  # 31 px wide
        ((10, 10, 32, 31), False),  # 31 px high
        ((W - 10 - 32, 10, 32, 32), True),  # exactly 10 px from the right border
        ((W - 9 - 32, 10, 32, 32), False),  # 9 px from the right border
        ((10, H - 10 - 32, 32, 32), True),  # exactly 10 px from the bottom border
        ((10, H - 9 - 32, 32, 32), False),  # 9 px from the bottom border
        ((10.5, 10, 32, 32), True),  # fractional coordinates compare as floats
        ((9.99, 10, 32, 32), False),
        ((10, 10, 31.99, 40), False),
    ],
)
def test_paper_size_and_border_rules(bbox, valid):
    coco = make_coco([(1, 1, 1, bbox)])
    if valid:
        assert sample_references_paper(coco, [1], shots=1, seed=0) == {
            1: [{"img_id": 1, "ann_ids": [1]}]
        }
    else:
        with pytest.raises(SamplingError, match="only 0 valid"):
            sample_references_paper(coco, [1], shots=1, seed=0)
    counts = count_candidates(candidates_from_coco(coco), paper_rules=True)
    assert counts == {"1": int(valid)}
    # Without the paper's rules every non-crowd box is usable.
    assert count_candidates(candidates_from_coco(coco), paper_rules=False) == {"1": 1}


def test_border_rule_uses_each_image_records_size():
    bbox = (150, 100, 40, 40)  # right edge 190, bottom 140
    images = [
        {"id": 1, "file_name": "a.jpg", "width": 200, "height": 150},  # margins 10, 10
        {"id": 2, "file_name": "b.jpg", "width": 199, "height": 150},  # right margin 9
    ]
    coco = make_coco([(1, 1, 1, bbox), (2, 2, 1, bbox)], images=images)
    assert count_candidates(candidates_from_coco(coco), paper_rules=True) == {"1": 1}


def test_crowd_is_never_sampled():
    coco = make_coco([(1, 1, 1, GOOD, 1), (2, 2, 1, GOOD, 0)])
    assert sample_references_paper(coco, [1], shots=1, seed=0)[1] == [{"img_id": 2, "ann_ids": [2]}]
    with pytest.raises(SamplingError):
        sample_references_paper(coco, [1], shots=2, seed=0)
    cands = candidates_from_coco(coco)
    # Crowd is skipped by the general sampler too, with or without the paper's rules.
    assert count_candidates(cands) == {"1": 1}
    with pytest.warns(SamplingShortfallWarning):
        picked = sample_references(cands, 2, seed=0, strict=False)
    assert [c.ref_id for c in picked] == ["2"]


def test_one_instance_per_image_per_class():
    # Two instances of class 1 in image 1, one in image 2; class 2 shares image 1.
    coco = make_coco(
        [(1, 1, 1, GOOD), (2, 1, 1, (80, 20, 40, 40)), (3, 2, 1, GOOD), (4, 1, 2, GOOD)]
    )
    result = sample_references_paper(coco, [1], shots=2, seed=0)
    assert sorted(entry["img_id"] for entry in result[1]) == [1, 2]
    result = sample_references_paper(coco, [1, 2], shots=1, seed=0)
    assert result[2] == [{"img_id": 1, "ann_ids": [4]}]  # the same image serves class 2
    with pytest.raises(SamplingError, match="only 2 valid"):
        sample_references_paper(coco, [1], shots=3, seed=0)
    # Without one-per-image the three instances are all usable.
    cands = candidates_from_coco(coco, [1])
    assert count_candidates(cands, one_per_image=False) == {"1": 3}
    assert len(sample_references(cands, 3, seed=0, one_per_image=False)) == 3


def test_category_order_is_first_appearance_not_id_order():
    coco = make_coco([(1, 1, 5, GOOD), (2, 2, 2, GOOD), (3, 3, 5, GOOD), (4, 4, 9, GOOD)])
    result = sample_references_paper(coco, [2, 9, 5], shots=1, seed=0)
    assert list(result) == [5, 2, 9]
    cands = candidates_from_coco(coco)
    picked = sample_references(cands, 1, seed=0, classes=["9", "2", "5"])
    assert [c.class_name for c in picked] == ["5", "2", "9"]


def test_fewer_than_k_raises_a_clear_error():
    coco = make_coco(
        [(1, 1, 3, GOOD), (2, 2, 3, (0, 0, 40, 40)), (3, 3, 3, GOOD)],
        categories=[{"id": 3, "name": "car"}],
    )
    with pytest.raises(SamplingError) as info:
        sample_references_paper(coco, [3], shots=5, seed=33)
    message = str(info.value)
    assert "category 3 ('car')" in message
    assert "only 2 valid" in message
    assert "out of 3 annotation" in message
    assert "5 shots" in message
    assert "lower the number of shots to at most 2" in message


def test_category_without_annotations_raises():
    coco = make_coco([(1, 1, 1, GOOD)], categories=[{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
    with pytest.raises(SamplingError, match=r"category 2 \('b'\) has only 0"):
        sample_references_paper(coco, [1, 2], shots=1, seed=0)


def test_unknown_category_id_raises():
    coco = make_coco([(1, 1, 1, GOOD)])
    with pytest.raises(ValueError, match=r"category id\(s\) \[7\]"):
        sample_references_paper(coco, [7], shots=1, seed=0)


def test_unknown_image_size_is_reported_under_paper_rules():
    coco = make_coco(
        [(1, 1, 1, GOOD)], images=[{"id": 1, "file_name": "a.jpg", "width": 0, "height": 0}]
    )
    with pytest.raises(ValueError, match="image size is unknown"):
        sample_references_paper(coco, [1], shots=1, seed=0)
    # Without the border rule the size is not needed.
    assert len(sample_references(candidates_from_coco(coco), 1, seed=0)) == 1


# ------------------------------------------------------------------------------ exactness


def _exactness_fixture():
    """Three categories, interleaved in the file, with known invalid annotations."""
    rows = []
    invalid = set()
    ann_id = 100
    # (category, image) pairs in file order: category 7 appears first, then 3, then 11.
    layout = []
    for i in range(12):
        layout.append((7, 1 + i))
        if i % 2 == 0:
            layout.append((3, 1 + i // 2))
        if i % 3 == 0:
            layout.append((11, 20 + i))
    layout += [(3, 40 + j) for j in range(6)] + [(11, 50 + j) for j in range(5)]
    for k, (cat, img) in enumerate(layout):
        ann_id += 1
        bbox, crowd = GOOD, 0
        if k % 5 == 1:
            bbox = (20, 20, 20, 40)  # too narrow
            invalid.add(ann_id)
        elif k % 7 == 3:
            crowd = 1
            invalid.add(ann_id)
        elif k % 11 == 4:
            bbox = (2, 20, 40, 40)  # touches the left border
            invalid.add(ann_id)
        rows.append((ann_id, img, cat, bbox, crowd))
    # A second instance of category 7 in image 1: valid alone, but the same image.
    ann_id += 1
    rows.append((ann_id, 1, 7, (100, 40, 40, 40), 0))
    return make_coco(rows), rows, invalid


def _expected_with_global_random(rows, invalid, order, shots, seed):
    """What ``few_shot_sampling.py`` computes, written independently with global random."""
    lists = {cat: [(img, aid) for aid, img, c, *_ in rows if c == cat] for cat in order}
    state = random.getstate()
    try:
        random.seed(seed)
        expected = {}
        for cat in order:
            pairs = lists[cat]
            random.shuffle(pairs)
            taken_images, chosen = set(), []
            for img, aid in pairs:
                if len(chosen) == shots:
                    break
                if aid in invalid or img in taken_images:
                    continue
                chosen.append({"img_id": img, "ann_ids": [aid]})
                taken_images.add(img)
            expected[cat] = chosen
        return expected
    finally:
        random.setstate(state)


@pytest.mark.parametrize("seed", [33, 42, 0])
def test_matches_global_random_shuffle_exactly(seed):
    coco, rows, invalid = _exactness_fixture()
    order = [7, 3, 11]  # first appearance in the file
    expected = _expected_with_global_random(rows, invalid, order, shots=3, seed=seed)
    result = sample_references_paper(coco, [3, 7, 11], shots=3, seed=seed)
    assert result == expected
    assert list(result) == order
    # The general sampler with the paper's rules picks the same instances.
    picked = sample_references(
        candidates_from_coco(coco, [3, 7, 11]), 3, seed, paper_rules=True, strict=True
    )
    assert [(int(c.class_name), c.image_id, int(c.ref_id)) for c in picked] == [
        (cat, e["img_id"], e["ann_ids"][0]) for cat in order for e in expected[cat]
    ]


def test_random_instance_matches_global_random():
    state = random.getstate()
    try:
        a, b = list(range(40)), list(range(25))
        random.seed(33)
        random.shuffle(a)
        random.shuffle(b)
    finally:
        random.setstate(state)
    rng = random.Random(33)
    c, d = list(range(40)), list(range(25))
    rng.shuffle(c)
    rng.shuffle(d)
    assert (a, b) == (c, d)


def test_changing_the_seed_changes_the_result():
    coco, _, _ = _exactness_fixture()
    first = sample_references_paper(coco, [3, 7, 11], shots=3, seed=1)
    second = sample_references_paper(coco, [3, 7, 11], shots=3, seed=2)
    assert first != second
    assert first == sample_references_paper(coco, [3, 7, 11], shots=3, seed=1)


def test_global_random_state_is_untouched():
    coco, _, _ = _exactness_fixture()
    state = random.getstate()
    sample_references_paper(coco, [3, 7, 11], shots=2, seed=5)
    assert random.getstate() == state


def test_shuffle_consumes_randomness_even_when_nothing_is_valid():
    # Category 1 appears first and has 6 candidates, all too small: its shuffle still
    # advances the stream before category 2 is shuffled.
    rows = [(i, i, 1, (20, 20, 10, 10)) for i in range(1, 7)]
    rows += [(10 + i, 10 + i, 2, GOOD) for i in range(8)]
    cands = candidates_from_coco(make_coco(rows))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingShortfallWarning)
        picked = sample_references(cands, 2, seed=4, paper_rules=True)
    rng = random.Random(4)
    rng.shuffle(list(range(6)))
    second = [10 + i for i in range(8)]
    rng.shuffle(second)
    assert [c.ref_id for c in picked] == [str(a) for a in second[:2]]
    # Only category 2 sampled: a different stream position, so (here) a different draw.
    alone = sample_references(cands, 2, seed=4, classes=["2"], paper_rules=True)
    rng = random.Random(4)
    second = [10 + i for i in range(8)]
    rng.shuffle(second)
    assert [c.ref_id for c in alone] == [str(a) for a in second[:2]]
    assert [c.ref_id for c in alone] != [c.ref_id for c in picked]


# ------------------------------------------------------------------------------ general


def _cands(spec):
    """(class, ref, image) triples -> Candidates with a valid box."""
    return [
        Candidate(cls, ref, img, (20, 20, 40, 40), image_width=W, image_height=H)
        for cls, ref, img in spec
    ]


def test_shortfall_takes_what_exists_and_reports():
    cands = _cands([("cat", "a", 1), ("cat", "b", 2), ("dog", "c", 3)])
    with pytest.warns(SamplingShortfallWarning, match="'dog': 1 of 2"):
        picked = sample_references(cands, 2, seed=0)
    assert sorted(c.ref_id for c in picked) == ["a", "b", "c"]
    assert picked.shortfalls == {"dog": (2, 1)}
    assert picked.available == {"cat": 2, "dog": 1}
    with pytest.raises(SamplingError, match="class 'dog' has only 1 valid"):
        sample_references(cands, 2, seed=0, strict=True)


def test_shots_per_class_mapping_and_missing_classes():
    cands = _cands([("cat", str(i), i) for i in range(5)] + [("dog", "d", 9)])
    picked = sample_references(cands, {"cat": 3}, seed=1)
    assert [c.class_name for c in picked] == ["cat"] * 3
    with pytest.warns(SamplingShortfallWarning):
        picked = sample_references(cands, {"cat": 1, "dog": 1, "bird": 2}, seed=1)
    assert picked.shortfalls == {"bird": (2, 0)}
    with pytest.raises(ValueError, match=r"no count for class\(es\) \['dog'\]"):
        sample_references(cands, {"cat": 1}, seed=1, classes=["cat", "dog"])
    with pytest.raises(ValueError, match="non-negative integer"):
        sample_references(cands, -1, seed=1)


def test_class_argument_order_does_not_matter():
    cands = _cands([("a", f"a{i}", i) for i in range(6)] + [("b", f"b{i}", i) for i in range(6)])
    one = sample_references(cands, 2, seed=3, classes=["a", "b"])
    two = sample_references(cands, 2, seed=3, classes=["b", "a"])
    assert list(one) == list(two)


def test_count_candidates():
    cands = _cands([("a", "1", 1), ("a", "2", 1), ("a", "3", 2), ("b", "4", 3)])
    cands.append(Candidate("b", "5", 4, (20, 20, 40, 40), W, H, iscrowd=True))
    cands.append(Candidate("b", "6", 5, (20, 20, 8, 8), W, H))
    assert count_candidates(cands) == {"a": 2, "b": 2}
    assert count_candidates(cands, paper_rules=True) == {"a": 2, "b": 1}
    assert count_candidates(cands, one_per_image=False) == {"a": 3, "b": 2}
    assert count_candidates(cands, classes=["b", "zebra"]) == {"b": 2, "zebra": 0}


def test_candidate_validation():
    with pytest.raises(ValueError, match="4 numbers"):
        Candidate("a", "1", 1, (1, 2, 3))
    with pytest.raises(ValueError, match="class_name"):
        Candidate("", "1", 1, (1, 2, 3, 4))
    assert Candidate("a", 5, 1, (1, 2, 3, 4)).ref_id == "5"


def test_candidates_from_coco_errors():
    coco = make_coco([(1, 1, 1, GOOD), (1, 2, 1, GOOD)])
    with pytest.raises(ValueError, match="annotation id 1 appears more than once"):
        candidates_from_coco(coco)
    coco = make_coco([(1, 1, 1, GOOD)])
    coco["annotations"][0]["image_id"] = 99
    with pytest.raises(ValueError, match="image_id 99"):
        candidates_from_coco(coco)
    coco = make_coco([(1, 1, 1, GOOD)])
    del coco["annotations"][0]["bbox"]
    with pytest.raises(ValueError, match=r"annotations\[0\] has no 'bbox'"):
        candidates_from_coco(coco)
