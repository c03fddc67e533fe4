"""A prediction field as comparable values, for tests that check two runs wrote the same."""

from __future__ import annotations

import numpy as np


def detections_by_sample(dataset, field: str) -> dict:
    """``{sample id: None or [(label, confidence, box, mask bytes), ...]}`` of ``field``
    (confidence and box rounded to 6 decimals, masks exact)."""
    out = {}
    for sample in dataset.select_fields(field):
        dets = sample[field]
        out[sample.id] = (
            None
            if dets is None
            else [
                (
                    d.label,
                    round(d.confidence, 6),
                    tuple(np.round(d.bounding_box, 6)),
                    d.mask.tobytes(),
                )
                for d in dets.detections
            ]
        )
    return out
