"""Bad input to split video runs (issue 25, reliability matrix of issue 9 §3): queueing the
shards of a video dataset (``queue_shards``, what the *Segment* form's "Split into N
delegated tasks" calls) refuses a frame output field the run would refuse, and a bad number
of shards, before anything is queued: each message names the value and the fix; nothing is
queued and the frame ground truth and the other frame fields are byte-identical."""

from __future__ import annotations

import json

import pytest
from test_reliability_video import _protected, video_dataset  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration

#: (case, out_field, num_shards, words the error must contain)
REFUSED = [
    ("output = frame ground truth", "ground_truth", 2, ["ground-truth"]),
    ("output = frame ground truth (prefixed)", "frames.ground_truth", 2, ["ground-truth"]),
    ("frame field with foreign labels", "other_model", 2, ["other_model", "did not write"]),
    ("frame field of another type", "caption", 2, ["caption", "Detections"]),
    ("output name with a space", "bad name", 2, ["bad name", "valid"]),
    ("zero shards", "tracks", 0, ["n=0", "at least 1"]),
    ("shards not a number", "tracks", "two", ["'two'", "pair of integers"]),
]


def _queued(dataset) -> int:
    from fiftyone.operators.delegated import DelegatedOperationService

    return len(DelegatedOperationService().list_operations(dataset_name=dataset.name))


@pytest.mark.parametrize("case,out_field,num_shards,words", REFUSED, ids=[c[0] for c in REFUSED])
def test_queueing_video_shards_refuses_before_queueing(
    video_dataset,  # noqa: F811
    case,
    out_field,
    num_shards,
    words,
):
    from fiftyone_ntt.fiftyone.runs.shards import queue_shards

    before = _protected(video_dataset)
    with pytest.raises(ValueError) as error:
        queue_shards(video_dataset, "squares", out_field, num_shards, keyframe_every=3)
    for word in words:
        assert word in str(error.value), (case, word, str(error.value))
    assert _queued(video_dataset) == 0
    assert _protected(video_dataset) == before


def _count_cases() -> dict[str, int]:
    """How many bad-input cases this file covers."""
    return {"refused when queueing video shards": len(REFUSED)}


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(_count_cases()))
