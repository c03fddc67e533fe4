"""From an evaluation (or a curator's decisions) to a better bank (docs/method.md §16):
per-class score thresholds (:mod:`~fiftyone_ntt.curation.thresholds`), an audit of the
references (:mod:`~fiftyone_ntt.curation.reference_audit`) and the order of a review queue
(:mod:`~fiftyone_ntt.curation.review_queue`).

Plain arrays in, plain rows out: nothing here imports FiftyOne or runs a model.
"""

from fiftyone_ntt.curation.reference_audit import ReferenceAuditRow, audit_references
from fiftyone_ntt.curation.review_queue import informativeness, queue_signals, review_order
from fiftyone_ntt.curation.thresholds import (
    MIN_DECISIONS_PER_CLASS,
    ClassThreshold,
    MatchedDetections,
    pr_curve,
    thresholds_from_decisions,
    thresholds_from_matches,
)

__all__ = [
    "MIN_DECISIONS_PER_CLASS",
    "ClassThreshold",
    "MatchedDetections",
    "ReferenceAuditRow",
    "audit_references",
    "informativeness",
    "pr_curve",
    "queue_signals",
    "review_order",
    "thresholds_from_decisions",
    "thresholds_from_matches",
]
