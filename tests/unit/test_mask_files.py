"""Preview masks as PNG files (:mod:`fiftyone_ntt.fiftyone.dataset.mask_files`): each mask
moves into a file named by its label id and reads back equal through FiftyOne's
``get_mask``; a label without mask is left alone; the folder is per dataset under FiftyOne's
``default_dataset_dir``. No database: labels are built in memory."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import fiftyone as fo
import numpy as np
import pytest

from fiftyone_ntt.fiftyone.dataset.mask_files import MASKS_DIRNAME, masks_folder, store_masks

pytestmark = pytest.mark.unit


def test_masks_move_into_files_named_by_label_id_and_read_back_equal(tmp_path):
    rng = np.random.default_rng(0)
    masks = [rng.random((7, 5)) > 0.5, np.ones((3, 9), dtype=np.uint8)]
    detections = fo.Detections(
        detections=[
            fo.Detection(label="a", bounding_box=[0, 0, 0.5, 0.5], mask=masks[0]),
            fo.Detection(label="b", bounding_box=[0.1, 0.1, 0.2, 0.2]),  # box only
            fo.Detection(label="c", bounding_box=[0.5, 0.5, 0.4, 0.1], mask=masks[1]),
        ]
    )
    folder = tmp_path / "masks"
    assert store_masks(detections, folder) == 2
    with_mask = [detections.detections[0], detections.detections[2]]
    for detection, mask in zip(with_mask, masks):
        assert detection.mask is None
        assert Path(detection.mask_path) == folder / f"{detection.id}.png"
        assert np.array_equal(np.asarray(detection.get_mask()) > 0, mask > 0)
    box_only = detections.detections[1]
    assert box_only.mask is None and box_only.mask_path is None
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{d.id}.png" for d in with_mask)


def test_no_mask_no_folder(tmp_path):
    detections = fo.Detections(detections=[fo.Detection(label="a", bounding_box=[0, 0, 1, 1])])
    assert store_masks(detections, tmp_path / "masks") == 0
    assert not (tmp_path / "masks").exists()


def test_one_folder_per_dataset_under_the_dataset_dir(monkeypatch, tmp_path):
    monkeypatch.setattr(fo.config, "default_dataset_dir", str(tmp_path))
    folder = masks_folder(SimpleNamespace(slug="my-dataset"))
    assert folder == tmp_path / MASKS_DIRNAME / "my-dataset"


def test_an_unwritable_folder_is_named_with_the_fix(tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("a file where the folder should be")
    detections = fo.Detections(
        detections=[fo.Detection(label="a", bounding_box=[0, 0, 1, 1], mask=np.ones((2, 2)))]
    )
    with pytest.raises(OSError) as caught:
        store_masks(detections, blocker / "masks")
    message = str(caught.value)
    assert repr(str(blocker / "masks")) in message
    assert "FIFTYONE_DEFAULT_DATASET_DIR" in message
    assert detections.detections[0].mask is not None  # the label keeps its mask
