"""Preview masks kept as image files (FiftyOne's ``mask_path``) instead of inside the labels.

Why: FiftyOne 1.22's App hands a label's in-document mask to one of its label-painting
workers as a transferred buffer. When it paints the same sample twice close together (the
sample view opening over its grid tile, a sample previewed again), the second hand-over finds
that buffer detached ("DataCloneError: An ArrayBuffer is detached") and the App loses that
worker for good: one per CPU core, and with all of them gone it draws no overlay anywhere
until the page is reloaded. A mask file is read by the worker itself, so nothing is handed
over. Measured in docs/architecture.md ("The panel and the App's label painting"). Previews
are what the curation loop paints again and again, so their masks are files.

The files are PNGs (0 or 255), cropped to the box as FiftyOne's convention wants, named by the
label id (ids are unique, so a file is never rewritten with another mask), in one folder per
dataset under FiftyOne's ``default_dataset_dir``. Nothing deletes them: labels moved to the
curated field and clones of the dataset point at the same files. Every reader of a mask goes
through FiftyOne's ``get_mask`` (:func:`~fiftyone_ntt.fiftyone.dataset.labels.detection_full_mask`),
which reads either form.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fiftyone as fo
import numpy as np
from PIL import Image

#: The folder, under FiftyOne's ``default_dataset_dir``, that holds the preview mask files.
MASKS_DIRNAME = "ntt-masks"


def masks_folder(dataset: Any) -> Path:
    """The folder of ``dataset``'s preview mask files (created by :func:`store_masks`)."""
    return Path(fo.config.default_dataset_dir).expanduser() / MASKS_DIRNAME / dataset.slug


def store_masks(detections: Any, folder: Path) -> int:
    """Move the in-label masks of ``detections`` (a ``fo.Detections``) into PNG files in
    ``folder``: each detection with a ``mask`` gets ``mask_path`` instead. Returns how many
    files were written."""
    written = 0
    for detection in detections.detections:
        if detection.mask is None:
            continue
        path = folder / f"{detection.id}.png"
        pixels = (np.asarray(detection.mask) > 0).astype(np.uint8) * 255
        try:
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(path)
        except OSError as error:
            raise OSError(
                f"cannot write preview masks into {str(folder)!r} ({error}); make FiftyOne's "
                "dataset folder writable or point it elsewhere (FIFTYONE_DEFAULT_DATASET_DIR, "
                "or fo.config.default_dataset_dir)"
            ) from error
        detection.mask_path = str(path)
        detection.mask = None
        written += 1
    return written
