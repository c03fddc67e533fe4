"""fiftyone-ntt: No Time to Train (arXiv 2507.02798), training-free reference-based instance
segmentation with SAM2 proposals and DINOv2 semantics, as a library and a FiftyOne plugin.

The core never imports FiftyOne; :mod:`fiftyone_ntt.fiftyone` is the adapter.
"""

from __future__ import annotations

from fiftyone_ntt.config import PRESETS, ModelConfig, NTTConfig, get_preset
from fiftyone_ntt.types import Predictions, Reference

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "ModelConfig",
    "NTTConfig",
    "Predictions",
    "Reference",
    "__version__",
    "get_preset",
]
