"""The keyframe loop over one video (docs/method.md §17.1).

Frame ``f`` is a keyframe when it is the first good frame or ``f - last_keyframe >=
keyframe_every``; No Time to Train (the segmenter) runs on keyframes only. Between keyframes the
propagator carries the live tracks (at most ``max_objects``, highest keyframe score first) from
frame to frame; on a keyframe the propagated masks are what the new detections are matched to
(:class:`~fiftyone_ntt.tracking.tracks.TrackBook`), and the propagator is re-seeded with the
keyframe's masks. With ``keyframe_every=1`` nothing is propagated: every frame's output is the
segmenter's predictions, unchanged, with track ids.

Scores: a detection keeps its No Time to Train score; a propagated mask gets the score of its
track's latest keyframe detection times ``score_decay ** n``, ``n`` the frames since it.

A frame that cannot be decoded (the iterator yields an exception in place of the image) or
whose model call fails (:class:`FrameFailure`) is reported (``TrackedFrame.error``) and
skipped; the tracks go on from the next good frame (a failed keyframe moves the detection to
the next good frame).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from fiftyone_ntt.tracking.protocol import Propagator
from fiftyone_ntt.tracking.tracks import TrackBook, check_keyframe_every, check_max_objects
from fiftyone_ntt.types import Predictions

__all__ = ["DETECTED", "PROPAGATED", "FrameFailure", "TrackedFrame", "track_video"]

DETECTED = "detected"
PROPAGATED = "propagated"


class FrameFailure(Exception):
    """A frame that could not be decoded or segmented; the message says why and what to do."""


@dataclass
class TrackedFrame:
    """The output of one frame.

    Attributes:
        frame_number: as the iterator gave it (1-based in FiftyOne).
        predictions: the frame's detections (None when the frame failed).
        track_ids: ``(N,)`` the track id of each detection.
        sources: ``"detected"`` (No Time to Train on a keyframe) or ``"propagated"``.
        keyframe: whether No Time to Train ran on this frame.
        error: why the frame failed, else None.
    """

    frame_number: int
    predictions: Predictions | None
    track_ids: np.ndarray
    sources: tuple[str, ...]
    keyframe: bool
    error: str | None = None


def _tight_boxes(masks: np.ndarray) -> np.ndarray:
    boxes = np.zeros((len(masks), 4), dtype=np.float32)
    for i, mask in enumerate(masks):
        rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
        if len(rows):
            boxes[i] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    return boxes


def _failed(number: int, error: Any) -> TrackedFrame:
    return TrackedFrame(number, None, np.zeros(0, dtype=np.int64), (), False, str(error))


def track_video(
    frames: Iterable[tuple[int, Any]],
    segmenter: Any,
    propagator: Propagator | None = None,
    *,
    keyframe_every: int = 1,
    max_objects: int | None = None,
    iou_threshold: float = 0.5,
    max_missed: int = 1,
    score_decay: float = 0.95,
    book: TrackBook | None = None,
) -> Iterator[TrackedFrame]:
    """Detections with track ids for each frame of one video, in order.

    Args:
        frames: ``(frame_number, image)`` in increasing frame order; ``image`` is RGB uint8
            ``(H, W, 3)``, or an exception for a frame that could not be decoded.
        segmenter: has ``predict(image) -> Predictions`` (a
            :class:`~fiftyone_ntt.segmenter.Segmenter`), or is that callable; may raise
            :class:`FrameFailure`.
        propagator: carries masks between keyframes; needed when ``keyframe_every > 1``.
        keyframe_every: K: No Time to Train runs on every K-th frame.
        max_objects: tracks propagated at a time (default: the propagator's cap).
        iou_threshold, max_missed: the matching rule (:class:`TrackBook`).
        score_decay: per-frame decay of a propagated mask's score.
        book: the :class:`TrackBook` to fill (pass one to read the tracks afterwards).
    """
    keyframe_every = check_keyframe_every(keyframe_every)
    if keyframe_every > 1 and propagator is None:
        raise ValueError(
            f"keyframe_every={keyframe_every} needs a propagator to carry detections between "
            "keyframes (fiftyone_ntt.models.sam2.video.Sam2VideoPropagator); pass one, or "
            "keyframe_every=1 to segment every frame"
        )
    if not 0.0 < float(score_decay) <= 1.0:
        raise ValueError(f"score_decay={score_decay!r} must be in (0, 1] (e.g. 0.95)")
    propagate = propagator if keyframe_every > 1 else None
    cap = max_objects if max_objects is not None else getattr(propagate, "max_objects", None)
    cap = None if cap is None else check_max_objects(cap)
    detect: Callable[[np.ndarray], Predictions] = getattr(segmenter, "predict", segmenter)
    book = book if book is not None else TrackBook(iou_threshold, max_missed)
    names: tuple[str, ...] = tuple(getattr(segmenter, "class_names", ()) or ())
    last_key: int | None = None
    seeded: set[int] = set()
    if propagate is not None:
        propagate.start_video()
    try:
        for number, image in frames:
            if image is None or isinstance(image, BaseException):
                yield _failed(number, image or f"frame {number} could not be decoded")
                continue
            carried: dict[int, np.ndarray] = {}
            if seeded:
                try:
                    moved = propagate.propagate(image)
                except FrameFailure as error:
                    yield _failed(number, error)
                    continue
                for track_id, mask in moved.items():
                    track = book.by_id(track_id)
                    if not track.ended and mask.any():
                        track.mask, track.last_frame = mask, number
                        track.since_detection += 1
                        carried[track_id] = mask
            if last_key is None or number - last_key >= keyframe_every:
                try:
                    predictions = detect(image)
                except FrameFailure as error:
                    yield _failed(number, error)
                    continue
                names = names or tuple(predictions.class_names)
                ids = book.match(predictions, number)
                matched = set(ids.tolist())
                extra = [
                    t for t in book.live if t.track_id in carried and t.track_id not in matched
                ]
                for track in extra:
                    track.frames += 1
                frame = _with_propagated(predictions, ids, extra, score_decay, image.shape[:2])
                last_key = number
                if propagate is not None:
                    chosen = sorted(book.live, key=lambda t: (-t.score, t.track_id))[:cap]
                    masks = {t.track_id: t.mask for t in chosen}
                    propagate.seed(image, masks)
                    seeded = set(masks)
                yield TrackedFrame(number, *frame, keyframe=True)
                continue
            shown = [book.by_id(i) for i in carried]
            for track in shown:
                track.frames += 1
            empty = Predictions.empty(*image.shape[:2], names)
            yield TrackedFrame(
                number,
                *_with_propagated(
                    empty, np.zeros(0, np.int64), shown, score_decay, image.shape[:2]
                ),
                keyframe=False,
            )
    finally:
        if propagate is not None:
            propagate.end_video()


def _with_propagated(
    predictions: Predictions,
    ids: np.ndarray,
    tracks: list[Any],
    decay: float,
    size: tuple[int, int],
) -> tuple[Predictions, np.ndarray, tuple[str, ...]]:
    """``predictions`` (detected) followed by the propagated masks of ``tracks``, highest
    score first."""
    sources = [DETECTED] * len(predictions)
    if not tracks:
        return predictions, ids, tuple(sources)
    tracks = sorted(tracks, key=lambda t: (-t.score * decay**t.since_detection, t.track_id))
    masks = np.stack([t.mask for t in tracks])
    combined = Predictions(
        masks=np.concatenate([predictions.masks.reshape(-1, *size), masks]),
        boxes=np.concatenate([predictions.boxes, _tight_boxes(masks)]),
        scores=np.concatenate(
            [predictions.scores, [t.score * decay**t.since_detection for t in tracks]]
        ),
        class_ids=np.concatenate([predictions.class_ids, [t.class_id for t in tracks]]),
        class_names=predictions.class_names,
    )
    all_ids = np.concatenate([ids, [t.track_id for t in tracks]]).astype(np.int64)
    return combined, all_ids, tuple(sources + [PROPAGATED] * len(tracks))
