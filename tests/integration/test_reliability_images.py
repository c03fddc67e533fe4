"""Reliability (issue 19 items 4 and 9), SDK side: a segmentation over a dataset whose samples
point at bad image files (``bad_images``: forged 40000 x 40000 headers, a real 30000 x 30000
PNG, truncated/zero-byte/text files, a folder and a symlink loop named like images, a pixel
format PIL does not decode) skips and reports each, writes the good samples, and a rerun goes
past them too; messages about empty datasets and views say what they are."""

from __future__ import annotations

import json

import bad_images
import pytest

pytestmark = pytest.mark.integration

GT = "ground_truth"


@pytest.fixture
def bad_dataset(painted_dataset, tmp_path):
    """The painted dataset, its bank ``colours``, plus one sample per bad file and per
    readable format (GIF, JFIF, PCX: a file given by its path is read whatever its format)."""
    import fiftyone as fo

    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    folder = tmp_path / "bad"
    bad_images.write_all(folder)
    names = [*bad_images.BAD_IMAGES, *bad_images.READ_IMAGES, *bad_images.NOTED_IMAGES]
    dataset.add_samples([fo.Sample(filepath=str(folder / name)) for name in names])
    nf.build_bank(dataset, GT, "colours")
    return dataset, folder


def test_segment_skips_and_reports_each_bad_image_and_a_rerun_goes_past_them(bad_dataset):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.runs.record import run_state

    dataset, folder = bad_dataset
    good = len(dataset) - 2 - len(bad_images.BAD_IMAGES)  # references are not targets
    summary = nf.segment(dataset, "colours", "ntt", points_per_side=16, progress=False)
    assert summary["status"] == "completed", summary
    reasons = {f["filepath"]: f["error"] for f in summary["failures"]}
    assert set(reasons) == {str(folder / name) for name in bad_images.BAD_IMAGES}
    for name, (_, reason) in bad_images.BAD_IMAGES.items():
        assert reason in reasons[str(folder / name)], (name, reasons[str(folder / name)])
    assert summary["processed"] == good
    # every good sample holds predictions: painted ones, GIF, JFIF, PCX
    done = dataset.exists("ntt")
    assert len(done) == good
    readable = {*bad_images.READ_IMAGES, *bad_images.NOTED_IMAGES}
    assert readable <= {p.rsplit("/", 1)[-1] for p in done.values("filepath")}
    # the stored record says the same
    assert dataset.load_run_results("ntt", cache=False).failed == len(bad_images.BAD_IMAGES)
    assert run_state(dataset, "ntt")["status"] == "completed"

    # a rerun does not stop at the same sample: it skips (and reports) them again
    again = nf.segment(dataset, "colours", "ntt", points_per_side=16, progress=False)
    assert again["status"] == "completed", again
    assert again["done_before"] == good and again["processed"] == 0
    assert {f["filepath"] for f in again["failures"]} == set(reasons)


def test_sdk_batches_skip_bad_images_too(bad_dataset):
    """Batches read and prepare images in the loader thread: a bad one is skipped there."""
    import fiftyone_ntt.fiftyone as nf

    dataset, _ = bad_dataset
    summary = nf.segment(
        dataset, "colours", "batched", points_per_side=16, batch_images=3, progress=False
    )
    assert summary["status"] == "completed", summary
    assert summary["failed"] == len(bad_images.BAD_IMAGES)
    assert summary["processed"] == len(dataset) - 2 - len(bad_images.BAD_IMAGES)


# -------------------------------------------------------- empty datasets and views


def _empty_dataset(make_dataset):
    return make_dataset("ntt-empty")


def _view_of_an_empty_dataset(make_dataset):
    return make_dataset("ntt-empty").limit(5)


def _match_on_an_empty_dataset(make_dataset):
    from fiftyone import ViewField as F

    return make_dataset("ntt-empty").match(F("filepath") != "")


EMPTY_CASES = {
    "an empty dataset": _empty_dataset,
    "a view of an empty dataset": _view_of_an_empty_dataset,
    "a match on an empty dataset": _match_on_an_empty_dataset,
}


@pytest.mark.parametrize("case", list(EMPTY_CASES))
def test_an_empty_dataset_is_named_as_empty_not_as_none_samples(
    painted_dataset, make_dataset, case
):
    """An empty dataset has no media type yet (None): it used to read "holds None samples"."""
    import fiftyone_ntt.fiftyone as nf

    nf.build_bank(painted_dataset, GT, "colours")
    collection = EMPTY_CASES[case](make_dataset)
    name = collection._root_dataset.name
    for call in (
        lambda: nf.build_bank(collection, GT, "again"),
        lambda: nf.segment(collection, "colours", "ntt", progress=False),
    ):
        with pytest.raises(ValueError) as caught:
            call()
        message = str(caught.value)
        assert f"dataset {name!r} has no samples" in message, message
        assert "None" not in message and "add images" in message, message


def test_an_empty_view_of_images_completes_with_nothing(painted_dataset):
    """A view that selects no samples of an image dataset is not an error for a run (shards
    of a small view are empty too): it completes with nothing to do."""
    import fiftyone_ntt.fiftyone as nf

    nf.build_bank(painted_dataset, GT, "colours")
    summary = nf.segment(painted_dataset.limit(0), "colours", "ntt", progress=False)
    assert summary["status"] == "completed" and summary["total"] == 0


def _count_cases() -> dict[str, int]:
    """How many bad-input cases this file covers."""
    return {
        "bad image files in a segmentation": len(bad_images.BAD_IMAGES),
        "formats read by path (gif, jfif, pcx)": len(bad_images.READ_IMAGES)
        + len(bad_images.NOTED_IMAGES),
        "bad images in batches": 1,
        "empty collections": len(EMPTY_CASES) + 1,
    }


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(_count_cases()))
