"""What the keyframe loop needs from a video model: carry object masks to the next frame."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Propagator"]


@runtime_checkable
class Propagator(Protocol):
    """Carries masks of objects (keyed by track id) from frame to frame of one video.

    Implementations: :class:`fiftyone_ntt.models.sam2.video.Sam2VideoPropagator` (SAM 2's
    video memory), :class:`fiftyone_ntt.models.edgetam.video.EdgeTamVideoPropagator`
    (EdgeTAM's, the same session logic) and :class:`fiftyone_ntt.testing.ColorPropagator` (a
    deterministic fake).

    Attributes:
        max_objects: the most objects one video's state holds at a time.
        identity: what the propagator is (recorded with a run).
    """

    max_objects: int
    identity: dict[str, Any]

    def start_video(self) -> None:
        """Begin a new video (a new inference session); forget the previous one."""

    def seed(self, image: np.ndarray, masks: Mapping[int, np.ndarray]) -> None:
        """Track exactly these objects from ``image`` (a keyframe) on: ``masks`` are full
        ``(H, W)`` bool masks by track id, at most :attr:`max_objects`."""

    def propagate(self, image: np.ndarray) -> dict[int, np.ndarray]:
        """The masks of the seeded objects on ``image``, the frame after the last one seen
        (an empty mask: the object is not visible)."""

    def end_video(self) -> None:
        """Free the video's state."""
