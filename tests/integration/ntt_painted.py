"""Painted datasets for the No Time to Train tests: flat-colour rectangles with exact instance
masks, which the deterministic fake models (:mod:`fiftyone_ntt.testing`) segment exactly.
Used by the integration fixtures and the e2e workflow test."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Palette index -> class name. Magenta (5) is painted but labelled "red" once (a missed
#: instance) and yellow (4) is an unlabelled distractor, so scores are not all perfect.
PAINT_CLASSES = {1: "red", 2: "green", 3: "blue"}
IMAGE_SIZE = (96, 128)  # (H, W)

#: Per sample: (palette index, XYXY box, ground-truth label or None). Samples 0 and 1 hold
#: the references tagged by ``painted_dataset(tag_references=True)``.
PAINT_LAYOUTS = [
    [(1, (8, 10, 40, 42), "red"), (2, (60, 20, 100, 60), "green"), (3, (104, 50, 124, 90), "blue")],
    [(3, (20, 30, 50, 70), "blue"), (1, (70, 10, 110, 40), "red"), (2, (10, 75, 40, 94), "green")],
    [(1, (5, 50, 35, 85), "red"), (3, (60, 40, 100, 80), "blue")],
    [(2, (10, 10, 45, 45), "green"), (3, (70, 50, 110, 90), "blue"), (4, (60, 5, 90, 30), None)],
    [(1, (30, 20, 70, 60), "red"), (5, (90, 60, 120, 90), "red")],
    [(2, (50, 40, 90, 80), "green"), (1, (5, 5, 30, 30), "red")],
    [(3, (15, 15, 55, 55), "blue"), (4, (80, 40, 120, 80), None)],
    [],  # a negative: background only
]
#: (sample index, detection index) of the references.
REFERENCE_POSITIONS = [(0, 0), (0, 1), (1, 0)]


def _paint_sample(fo, directory: Path, index: int, layout):
    from PIL import Image

    from fiftyone_ntt.testing import paint

    height, width = IMAGE_SIZE
    image = paint(IMAGE_SIZE, [(color, box) for color, box, _ in layout])
    path = directory / f"painted_{index:02d}.png"
    Image.fromarray(image).save(path)
    detections = []
    for _, (x1, y1, x2, y2), label in layout:
        if label is None:
            continue
        detections.append(
            fo.Detection(
                label=label,
                bounding_box=[x1 / width, y1 / height, (x2 - x1) / width, (y2 - y1) / height],
                mask=np.ones((y2 - y1, x2 - x1), dtype=bool),
            )
        )
    return fo.Sample(filepath=str(path), ground_truth=fo.Detections(detections=detections))


def fill_painted_dataset(dataset, directory, tag_references: bool = True):
    """Add the painted samples (images written to ``directory``) to ``dataset``; tag the
    references ``ntt:ref`` unless told not to. Returns the dataset."""
    import fiftyone as fo

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    dataset.add_samples(
        [_paint_sample(fo, directory, i, layout) for i, layout in enumerate(PAINT_LAYOUTS)]
    )
    dataset.compute_metadata()
    if tag_references:
        samples = list(dataset.select_fields("ground_truth"))
        ids = [samples[s].ground_truth.detections[d].id for s, d in REFERENCE_POSITIONS]
        dataset.select_labels(ids=ids, fields="ground_truth").tag_labels(
            "ntt:ref", label_fields=["ground_truth"]
        )
    return dataset


def grow_painted_dataset(dataset, size: int):
    """Add copies of the painted samples (same images, ground truth without tags, so the
    references stay on the first ones) until ``dataset`` holds ``size`` samples."""
    import fiftyone as fo

    originals = list(dataset)
    copies = []
    while len(dataset) + len(copies) < size:
        source = originals[(len(dataset) + len(copies)) % len(originals)]
        sample = fo.Sample(filepath=source.filepath, metadata=source.metadata)
        if source.ground_truth is not None:
            sample["ground_truth"] = fo.Detections(
                detections=[
                    fo.Detection(label=d.label, bounding_box=d.bounding_box, mask=d.mask)
                    for d in source.ground_truth.detections
                ]
            )
        copies.append(sample)
    dataset.add_samples(copies)
    return dataset
