"""Segmentation runs over FiftyOne collections: claims on output fields, the run record and
its config (FiftyOne stores the class path ``fiftyone_ntt.fiftyone.runs.NTTRunConfig`` with
every run, so it is exported here), the one settings resolver, shards, the per-image and
per-frame loops, the job over a view (:mod:`.job`), previews and ``apply_model``."""

from fiftyone_ntt.fiftyone.runs.config import NTTRun, NTTRunConfig

__all__ = ["NTTRun", "NTTRunConfig"]
