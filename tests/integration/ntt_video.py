"""A generated video for the video tests: flat-colour squares moving over a grey background
(palette colours of :mod:`fiftyone_ntt.testing`, so the fake models segment them), written
with OpenCV's bundled FFmpeg as VP9 WebM (Chromium plays it; OpenCV writes no H.264 here),
and a video dataset holding it with exact frame-level ground truth.

Used by the integration tests and the e2e test (which puts this folder on ``sys.path``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SIZE = (96, 128)  # (H, W)
FRAMES = 24
SIDE = 24
FPS = 10
COLOURS = {"red": 1, "green": 2}  # class -> palette index


def boxes(number: int) -> dict[str, tuple[int, int, int, int]]:
    """XYXY pixel boxes of the squares in 1-based frame ``number``: red moves right, green
    moves down."""
    t = number - 1
    return {
        "red": (4 + 3 * t, 10, 4 + 3 * t + SIDE, 10 + SIDE),
        "green": (90, 2 + 2 * t, 90 + SIDE, 2 + 2 * t + SIDE),
    }


def write_video(path: Path, frames: int = FRAMES) -> Path:
    """Write the moving squares as VP9 WebM (``.webm``) or lossless FFV1 (``.mkv``)."""
    import cv2

    from fiftyone_ntt.testing import paint

    codec = "FFV1" if str(path).endswith(".mkv") else "VP90"
    height, width = SIZE
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), FPS, (width, height))
    assert writer.isOpened(), f"OpenCV cannot write {codec} to {path}"
    for number in range(1, frames + 1):
        shapes = [(COLOURS[name], box) for name, box in boxes(number).items()]
        writer.write(paint(SIZE, shapes)[:, :, ::-1].copy())
    writer.release()
    return Path(path)


def ground_truth(number: int, reference: bool = False):
    """``fo.Detections`` of frame ``number`` with exact masks (tagged ``ntt:ref`` when
    ``reference``)."""
    import fiftyone as fo

    height, width = SIZE
    detections = []
    for name, (x1, y1, x2, y2) in boxes(number).items():
        detections.append(
            fo.Detection(
                label=name,
                bounding_box=[x1 / width, y1 / height, (x2 - x1) / width, (y2 - y1) / height],
                mask=np.ones((y2 - y1, x2 - x1), dtype=bool),
                tags=["ntt:ref"] if reference else [],
            )
        )
    return fo.Detections(detections=detections)


def fill_video_dataset(dataset, folder: Path, name: str = "moving_squares.webm", videos: int = 1):
    """Add ``videos`` copies of the moving-squares video with frame ground truth
    (``frames.ground_truth``; frame 1 of the first video tagged ``ntt:ref``) and a sample
    field ``note``; return the dataset."""
    import fiftyone as fo

    samples = []
    for index in range(videos):
        path = write_video(Path(folder) / f"{index}_{name}")
        sample = fo.Sample(filepath=str(path), note="keep")
        for number in range(1, FRAMES + 1):
            reference = index == 0 and number == 1
            sample.frames[number] = fo.Frame(ground_truth=ground_truth(number, reference))
        samples.append(sample)
    dataset.add_samples(samples)
    return dataset


def iou(a, b) -> float:
    """IoU of two XYXY boxes."""
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, x2 - x1) * max(0, y2 - y1)

    def area(r):
        return (r[2] - r[0]) * (r[3] - r[1])

    return inter / (area(a) + area(b) - inter)
