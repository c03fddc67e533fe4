"""A small demo dataset built offline from images that ship inside scikit-image.

Nothing is downloaded: the images come from the scikit-image wheel (a FiftyOne dependency),
and the ground-truth instance masks are made here by classical segmentation, not by a model:

- ``coins`` (scikit-image's photograph of 24 Greek coins, 384x303 grey levels) is segmented
  with the region-based recipe from scikit-image's own coins tutorial: a Sobel elevation map,
  watershed from markers placed at clearly dark (background, < 30) and clearly bright
  (coin, > 150) pixels, holes filled, specks under 100 px dropped, connected components
  labelled. It finds all 24 coins. The photograph is cut along the empty band between its
  second and third row of coins into two samples of 12 coins each, so that one half can hold
  the references and the other the targets.
- ``chelsea`` (a cat) is a negative: no coin is in it, so its ground truth is empty.

The dataset ships a saved view ``references`` (= ``coins_top``): *sample references*
samples from it by default, so the references all come from the top half and *segment*
(which skips the images holding references) segments the bottom half and the cat.

The masks follow the outlines well but are not hand-checked: a few dark coin rims are a pixel
or two off.
"""

from __future__ import annotations

import os

import fiftyone as fo
import numpy as np
from fiftyone import ViewField as F
from PIL import Image

__all__ = [
    "DEMO_DATASET_NAME",
    "GROUND_TRUTH_FIELD",
    "REFERENCES_VIEW",
    "build_demo_dataset",
    "segment_coins",
]

DEMO_DATASET_NAME = "ntt-demo"
GROUND_TRUTH_FIELD = "ground_truth"
COIN_LABEL = "coin"
#: The saved view holding the sample meant for references (the top half of the coins).
REFERENCES_VIEW = "references"

# Bumped when the recipe changes, so an older copy of the dataset is rebuilt.
_DEMO_VERSION = 2  # 2: the saved view 'references'
_INFO_KEY = "ntt_demo"

# Watershed markers for the coins photograph: grey levels that are surely background or coin.
_BACKGROUND_BELOW = 30
_COIN_ABOVE = 150
_MIN_COIN_AREA_PX = 100


def segment_coins(gray: np.ndarray) -> np.ndarray:
    """Instance labels of the coins in scikit-image's ``coins`` photograph.

    Args:
        gray: (H, W) uint8 grey image.

    Returns:
        (H, W) int array: 0 for background, 1..N for the coins in raster order.
    """
    # deferred: SciPy loads only when this runs
    from scipy import ndimage as ndi
    from skimage import filters, measure, segmentation

    elevation = filters.sobel(gray)
    markers = np.zeros(gray.shape, dtype=np.uint8)
    markers[gray < _BACKGROUND_BELOW] = 1
    markers[gray > _COIN_ABOVE] = 2
    foreground = segmentation.watershed(elevation, markers) == 2
    foreground = ndi.binary_fill_holes(foreground)
    labels = measure.label(foreground)
    areas = np.bincount(labels.ravel())
    small = np.flatnonzero(areas < _MIN_COIN_AREA_PX)
    labels[np.isin(labels, small[small > 0])] = 0
    return measure.label(labels > 0)


def _split_row(labels: np.ndarray) -> int:
    """Row in the empty band (no coin pixel) closest to the middle of the image."""
    empty = np.flatnonzero(~(labels > 0).any(axis=1))
    middle = labels.shape[0] // 2
    if empty.size == 0:
        return middle
    return int(empty[np.argmin(np.abs(empty - middle))])


def _detections(labels: np.ndarray, label: str):
    """FiftyOne detections for an instance-label image: relative [x, y, w, h] boxes and
    bool masks cropped to the box (FiftyOne's convention)."""
    # deferred: scikit-image loads only when this runs
    from skimage import measure

    height, width = labels.shape
    detections = []
    for region in measure.regionprops(labels):
        y0, x0, y1, x1 = region.bbox
        detections.append(
            fo.Detection(
                label=label,
                bounding_box=[x0 / width, y0 / height, (x1 - x0) / width, (y1 - y0) / height],
                mask=labels[y0:y1, x0:x1] == region.label,
            )
        )
    return fo.Detections(detections=detections)


def _to_rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]


def _demo_items() -> list[dict]:
    """(file name, RGB image, instance labels or None, tags, description) of every sample."""
    # deferred: scikit-image loads only when this runs
    from skimage import data

    coins = data.coins()
    labels = segment_coins(coins)
    cut = _split_row(labels)
    items = [
        {
            "filename": "coins_top.png",
            "image": _to_rgb(coins[:cut]),
            "labels": labels[:cut],
            "tags": ["coins"],
            "source": f"skimage.data.coins(), rows 0-{cut - 1}",
        },
        {
            "filename": "coins_bottom.png",
            "image": _to_rgb(coins[cut:]),
            "labels": labels[cut:],
            "tags": ["coins"],
            "source": f"skimage.data.coins(), rows {cut}-{coins.shape[0] - 1}",
        },
        {
            "filename": "chelsea.png",
            "image": _to_rgb(data.chelsea()),
            "labels": None,
            "tags": ["negative"],
            "source": "skimage.data.chelsea() (no coins)",
        },
    ]
    return items


def _is_current_demo(dataset) -> bool:
    info = dataset.info.get(_INFO_KEY) or {}
    if info.get("version") != _DEMO_VERSION:
        return False
    paths = dataset.values("filepath")
    return len(paths) == info.get("num_samples") and all(os.path.isfile(p) for p in paths)


def build_demo_dataset(name: str = DEMO_DATASET_NAME, overwrite: bool = False):
    """Builds (or loads) the persistent demo dataset.

    Images are written to ``<fo.config.default_dataset_dir>/<name>/``. The ``ground_truth``
    field holds ``fo.Detections`` with instance masks (label ``"coin"``).

    Args:
        name: the dataset name.
        overwrite: rebuild even if a current copy exists. Without it, an existing current
            demo dataset is returned as is, and an outdated or incomplete one is rebuilt.

    Returns:
        the ``fo.Dataset``.

    Raises:
        ValueError: a dataset called ``name`` exists that is not this demo and ``overwrite``
            is False.
    """

    if fo.dataset_exists(name):
        dataset = fo.load_dataset(name)
        if not overwrite:
            if _is_current_demo(dataset):
                return dataset
            if _INFO_KEY not in dataset.info:
                raise ValueError(
                    f"a dataset named {name!r} already exists and is not the NTT demo "
                    f"dataset; choose another name or pass overwrite=True to replace it"
                )
        dataset.delete()

    image_dir = os.path.join(fo.config.default_dataset_dir, name)
    os.makedirs(image_dir, exist_ok=True)

    samples = []
    for item in _demo_items():
        path = os.path.join(image_dir, item["filename"])
        Image.fromarray(item["image"]).save(path)
        labels = item["labels"]
        gt = _detections(labels, COIN_LABEL) if labels is not None else fo.Detections(detections=[])
        samples.append(
            fo.Sample(
                filepath=path,
                tags=item["tags"],
                source=item["source"],
                **{GROUND_TRUTH_FIELD: gt},
            )
        )

    dataset = fo.Dataset(name)
    dataset.add_samples(samples)
    dataset.compute_metadata()
    dataset.description = (
        "No Time to Train demo: scikit-image's coins photograph cut in two halves with "
        "coin masks from classical segmentation (watershed), plus a negative image."
    )
    dataset.info[_INFO_KEY] = {
        "version": _DEMO_VERSION,
        "num_samples": len(samples),
        "ground_truth": "watershed on a Sobel elevation map (scikit-image coins recipe)",
    }
    dataset.persistent = True
    dataset.save()

    dataset.save_view(
        REFERENCES_VIEW,
        dataset.match(F("filepath").ends_with("coins_top.png")),
        description="Sample references here; the other images are the targets",
    )
    return dataset
