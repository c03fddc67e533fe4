"""Variable-frame-rate videos (issue 25, docs/method.md §17): frames with irregular
timestamps. Frame numbers are the decode order (1, 2, ... as the stream gives them, whatever
the timestamps), tracking follows it, and every decoded frame is segmented: OpenCV's frame
count of such a video (its duration times a nominal rate) is only an estimate, too low or too
high, so a run counts the frames by decoding them when it fills a video's metadata.

The videos are the moving squares written as VP9 WebM by OpenCV, their block timestamps then
rewritten in the Matroska container (no FFmpeg binary here): the same 24 frames, irregular
gaps between them."""

from __future__ import annotations

import itertools
import struct
from pathlib import Path

import pytest
from ntt_video import FRAMES, boxes, fill_video_dataset, iou, write_video
from test_video_frames import _found_boxes

pytestmark = pytest.mark.integration

_MASTERS = {0x18538067, 0x1F43B675, 0xA0}  # Segment, Cluster, BlockGroup
_BLOCKS = {0xA3, 0xA1}  # SimpleBlock, Block
_DURATION = b"\x44\x89"


def _vint(buf: bytes, at: int, keep_marker: bool) -> tuple[int, int]:
    """(value, length) of the EBML variable-size integer at ``at``."""
    length = 1
    while not buf[at] & (0x80 >> (length - 1)):
        length += 1
    value = int.from_bytes(buf[at : at + length], "big")
    if not keep_marker:
        value &= (1 << (7 * length)) - 1
    return value, length


def _block_timecodes(buf: bytes, start: int, end: int, found: list[int]) -> None:
    """Offsets of the 16-bit relative timecodes of every (Simple)Block in ``buf[start:end]``."""
    at = start
    while at < end:
        element, n = _vint(buf, at, keep_marker=True)
        size, m = _vint(buf, at + n, keep_marker=False)
        body = at + n + m
        if size == (1 << (7 * m)) - 1:  # unknown size: to the end of the parent
            size = end - body
        if element in _MASTERS:
            _block_timecodes(buf, body, body + size, found)
        elif element in _BLOCKS:
            found.append(body + _vint(buf, body, keep_marker=False)[1])
        at = body + size


def write_vfr_video(path: Path, gaps_ms: list[int]) -> Path:
    """The moving squares (24 frames) with the gaps between frame timestamps cycling through
    ``gaps_ms`` (all frames in one cluster: timecodes relative to it, in ms) and the stated
    duration to match."""
    data = bytearray(write_video(path).read_bytes())
    offsets: list[int] = []
    _block_timecodes(data, 0, len(data), offsets)
    assert len(offsets) == FRAMES, len(offsets)
    time, gaps = 0, itertools.cycle(gaps_ms)
    for offset in offsets:
        data[offset : offset + 2] = time.to_bytes(2, "big", signed=True)
        time += next(gaps)
    at = data.index(_DURATION)
    size, m = _vint(data, at + 2, keep_marker=False)
    data[at + 2 + m : at + 2 + m + size] = struct.pack(">d" if size == 8 else ">f", float(time))
    path.write_bytes(bytes(data))
    return path


#: irregular gaps: OpenCV estimates 8 frames (too few) and 33 frames (too many) of 24
VARIABLE = {"fast": [10, 60], "irregular": [40, 250, 100, 10, 330]}


@pytest.fixture
def vfr_dataset(make_dataset, tmp_path, monkeypatch):
    """A moving-squares video holding the references (frame ground truth), then two
    variable-frame-rate ones without frame documents nor metadata (as added by a user)."""
    import fiftyone as fo

    import fiftyone_ntt.fiftyone as nf

    monkeypatch.setenv("FIFTYONE_NTT_TEST_MODELS", "fake")
    monkeypatch.setenv("FIFTYONE_NTT_BANKS_DIR", str(tmp_path / "banks"))
    dataset = fill_video_dataset(make_dataset("ntt-video-vfr"), tmp_path, videos=1)
    nf.build_bank(dataset, "frames.ground_truth", "squares")
    for name, gaps in VARIABLE.items():
        path = write_vfr_video(tmp_path / f"{name}.webm", gaps)
        dataset.add_sample(fo.Sample(filepath=str(path), name=name))
    return dataset


def test_opencv_estimates_the_frame_count_of_these_videos_wrongly(vfr_dataset):
    import cv2

    for sample in vfr_dataset.exists("name"):
        capture = cv2.VideoCapture(sample.filepath)
        estimate = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        decoded = 0
        while capture.grab():
            decoded += 1
        capture.release()
        assert decoded == FRAMES and estimate != FRAMES, (sample.name, estimate)


def test_a_tracked_run_segments_every_decoded_frame_with_stable_ids(vfr_dataset):
    import fiftyone_ntt.fiftyone as nf

    dataset = vfr_dataset
    summary = nf.segment(dataset, "squares", "tracks", keyframe_every=5, progress=None)
    assert summary["status"] == "completed" and summary["failed"] == 0, summary["failures"]
    assert summary["total"] == summary["processed"] == 3 * FRAMES - 1
    for sample in dataset.exists("name"):
        assert sample.metadata.total_frame_count == FRAMES  # counted, not estimated
        assert sorted(sample.frames) == list(range(1, FRAMES + 1))
        ids = {}
        for number, frame in sample.frames.items():
            # frame n is the n-th decoded frame whatever its timestamp: the squares of frame n
            found = _found_boxes(frame, "tracks")
            for name, box in boxes(number).items():
                assert iou(found[name], box) > 0.8, (sample.name, number, name)
            sources = {d.ntt_track_source for d in frame.tracks.detections}
            assert sources == {"detected" if number % 5 == 1 else "propagated"}, number
            for detection in frame.tracks.detections:
                ids.setdefault(detection.label, set()).add(detection.index)
        # one track per square over the whole video: no ID switch at irregular gaps
        assert len(ids["red"]) == len(ids["green"]) == 1, (sample.name, ids)
        spans = summary["tracking"]["videos"][sample.id]["spans"]
        assert {(s["first_frame"], s["last_frame"]) for s in spans} == {(1, FRAMES)}
