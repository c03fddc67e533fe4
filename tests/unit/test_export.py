"""Side-by-side pictures (``fiftyone_ntt.export``): layout, contours, threshold, palette."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.unit


def _image(h=60, w=80):
    image = np.zeros((h, w, 3), dtype=np.uint8)
    image[:] = (128, 128, 128)
    return image


def _mask(h, w, box):
    x1, y1, x2, y2 = box
    mask = np.zeros((h, w), dtype=bool)
    mask[y1:y2, x1:x2] = True
    return mask


def test_contour_is_mask_xor_erosion():
    from fiftyone_ntt.export import contour

    mask = _mask(20, 20, (5, 5, 15, 15))
    ring = contour(mask, 2)
    assert ring[5, 5] and ring[6, 6] and not ring[7, 7] and not ring[10, 10]
    assert not ring[4, 4]  # never outside the mask
    assert ring.sum() == 100 - 36  # 10x10 square minus its 6x6 interior
    # a mask touching the border has a contour there too
    edge = contour(_mask(10, 10, (0, 0, 10, 10)), 1)
    assert edge[0].all() and edge[:, 0].all() and not edge[5, 5]
    with pytest.raises(ValueError):
        contour(np.zeros((2, 2, 2), bool))


def test_side_by_side_layout_threshold_and_colours():
    from fiftyone_ntt.export import SEPARATOR, Instance, label_color, side_by_side

    h, w = 60, 80
    image = _image(h, w)
    gt = [Instance("cat", (10, 20, 40, 50), _mask(h, w, (10, 20, 40, 50)))]
    preds = [
        Instance("cat", (10, 20, 40, 50), _mask(h, w, (10, 20, 40, 50)), score=0.9),
        Instance("dog", (50, 30, 75, 55), _mask(h, w, (50, 30, 75, 55)), score=0.3),
    ]
    picture = side_by_side(image, gt, preds, labels=["cat", "dog"], threshold=0.5)
    assert picture.shape == (h, 2 * w + SEPARATOR, 3) and picture.dtype == np.uint8
    assert (picture[:, w : w + SEPARATOR] == 255).all()
    left, right = picture[:, :w], picture[:, w + SEPARATOR :]
    cat, dog = label_color("cat", ["cat", "dog"]), label_color("dog", ["cat", "dog"])
    assert cat != dog
    # the cat's contour/box is drawn on both sides, in the cat's colour
    assert (left[35, 10] == cat).all() and (right[35, 10] == cat).all()
    # the interior of the mask is the original image
    assert (right[40, 25] == (128, 128, 128)).all()
    # the dog (score 0.3 <= 0.5) is not drawn; untouched pixels equal the image
    assert (right[45, 60:75] == (128, 128, 128)).all()
    assert not (right == dog).all(axis=-1).any()
    # lower threshold: the dog appears
    picture = side_by_side(image, gt, preds, labels=["cat", "dog"], threshold=0.2)
    assert (picture[:, w + SEPARATOR :] == dog).all(axis=-1).any()


def test_colours_are_fixed_per_label_and_save(tmp_path):
    from PIL import Image

    from fiftyone_ntt.export import PALETTE, Instance, save_side_by_side, side_by_side

    assert len(PALETTE) == 80 and len(set(PALETTE)) == 80
    image = _image()
    only_box = [Instance("b", (5, 5, 30, 30), None, score=0.99)]
    a = side_by_side(image, [], only_box, labels=["a", "b"])
    b = side_by_side(image, [], only_box, labels=["a", "b"])
    assert np.array_equal(a, b)
    assert (a[:, 80 + 10 :] == PALETTE[1]).all(axis=-1).any()
    path = save_side_by_side(tmp_path / "x" / "pic.png", a)
    with Image.open(path) as png:
        assert png.size == (a.shape[1], a.shape[0])


def test_instances_from_coco():
    from fiftyone_ntt.export import instances_from_coco

    anns = [
        {"category_id": 3, "bbox": [2, 3, 10, 5], "segmentation": [[2, 3, 12, 3, 12, 8, 2, 8]]},
        {"category_id": 4, "bbox": [0, 0, 4, 4], "score": 0.7},
    ]
    out = instances_from_coco(anns, {3: "cat"}, 20, 20)
    assert out[0].label == "cat" and out[0].box == (2.0, 3.0, 12.0, 8.0)
    assert out[0].mask.shape == (20, 20) and out[0].mask[5, 5] and out[0].score is None
    assert out[1].label == "4" and out[1].mask is None and out[1].score == pytest.approx(0.7)
