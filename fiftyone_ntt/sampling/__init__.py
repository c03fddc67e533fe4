"""Seeded few-shot reference sampling, including the paper's exact sampler (docs/method.md §2.2).

Two entry points:

* :func:`sample_references_paper` reproduces the research code's COCO/VOC sampler
  (``dataset/few_shot_sampling.py``) bit for bit: same JSON, same seed -> the same reference
  set, in the same order, as the pickles behind the published numbers.
* :func:`sample_references` is the general sampler for any data (FiftyOne views, custom
  COCO files): it works on :class:`Candidate` records, can apply the paper's size/border
  rules or not, accepts a shot count per class and, unless ``strict=True``, takes what exists
  when a class has fewer than K usable instances (reporting the shortfall) instead of
  failing. With ``paper_rules=True``, ``one_per_image=True`` and the candidates of a COCO file
  in annotation order (:func:`candidates_from_coco`), it selects exactly what
  :func:`sample_references_paper` selects.

Nothing here reads files or imports FiftyOne.
"""

from fiftyone_ntt.sampling.paper import candidates_from_coco, sample_references_paper
from fiftyone_ntt.sampling.sampler import (
    PAPER_BORDER_MARGIN,
    PAPER_MIN_BOX_SIDE,
    Candidate,
    SampledReferences,
    SamplingError,
    SamplingShortfallWarning,
    count_candidates,
    sample_references,
)

__all__ = [
    "PAPER_BORDER_MARGIN",
    "PAPER_MIN_BOX_SIDE",
    "Candidate",
    "SampledReferences",
    "SamplingError",
    "SamplingShortfallWarning",
    "candidates_from_coco",
    "count_candidates",
    "sample_references",
    "sample_references_paper",
]
