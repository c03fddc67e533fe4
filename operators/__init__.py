"""The plugin's operators: glue between the FiftyOne App and :mod:`fiftyone_ntt`.

One operator per module; :func:`register` is called by the plugin entry (``../__init__.py``).
Every operator registered here must also be listed under ``operators:`` in ``fiftyone.yml``.
Shared form helpers live in ``_forms.py``; library modules that load torch are imported inside
the method that needs them (FiftyOne imports every plugin when the App starts).
"""

from .about import NTTAbout
from .build_bank import NTTBuildBank
from .class_thresholds import NTTClassThresholds
from .evaluate import NTTEvaluate
from .manage_banks import NTTManageBanks
from .map_predictions import NTTMapPredictions
from .panel import NTTPanel
from .reference_audit import NTTReferenceAudit
from .review_queue import NTTReviewQueue
from .runs import NTTRuns
from .sample_references import NTTSampleReferences
from .segment import NTTSegment
from .similar_predictions import NTTSimilarPredictions
from .tag_references import NTTTagReferences

#: In workflow order. The App's operator browser sorts by the first character of each
#: operator's description, so descriptions start with the step number ("1 · ...") and labels
#: read "NTT 1 · ..." to "NTT 9 · ..." (steps that belong together share a number: 6 from an
#: evaluation to a better bank, 7 the embeddings map); About ("About · ...") comes last.
OPERATORS = (
    NTTTagReferences,
    NTTSampleReferences,
    NTTBuildBank,
    NTTSegment,
    NTTEvaluate,
    NTTClassThresholds,
    NTTReferenceAudit,
    NTTReviewQueue,
    NTTMapPredictions,
    NTTSimilarPredictions,
    NTTManageBanks,
    NTTRuns,
    NTTAbout,
    NTTPanel,  # the "No Time to Train" panel (listed under panels: in fiftyone.yml)
)


def register(p):
    for operator in OPERATORS:
        p.register(operator)
