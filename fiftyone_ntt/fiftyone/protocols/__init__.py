"""The paper's benchmarks and custom COCO datasets as one-line, resumable runs through FiftyOne.

Each protocol (docs/method.md §2, §6, §9.5):

1. imports the reference images (only those holding a reference) and the target images into
   two persistent FiftyOne datasets, ``<prefix>-refs`` and ``<prefix>-targets`` (every
   annotation as a ``Detection`` with its COCO annotation id ``coco_id``; samples carry the
   COCO image id ``coco_id``); a rerun adds only what is missing;
2. tags the references (``ntt:ref:<run>``): the research code's sampler
   (:func:`fiftyone_ntt.sampling.sample_references_paper`, same JSON + seed = same reference
   ids) for COCO-FSOD and PASCAL VOC, every annotation of the K-shot file for CD-FSOD and
   custom data;
3. builds the memory bank (reused when the references, classes, settings and models are the
   same); box-only references get SAM 2 masks;
4. segments the targets with :func:`fiftyone_ntt.fiftyone.runs.job` (resumable) into the field
   ``ntt_<run>``;
5. exports the predictions as COCO results with the paper's box convention (1 px short,
   docs/method.md §6) and evaluates them with :func:`fiftyone_ntt.coco.evaluate` against the
   original annotation file: COCO-FSOD on the 20 novel classes over all val2017 images, VOC
   as COCO-style AP50 on the split's 5 novel classes (``difficult`` -> crowd), CD-FSOD and
   custom data on the references' classes; box-only ground truth gives bbox AP only;
6. prints ours next to the published numbers (docs/method.md §7) and stores the report in the
   target dataset's ``info["ntt_protocols"]``.

Command line (:mod:`fiftyone_ntt.cli.protocol`): ``python -m fiftyone_ntt.fiftyone.protocols {coco-fsod,voc,cd-fsod,custom} ...``
(``--help`` for each).
"""

from __future__ import annotations

from fiftyone_ntt.fiftyone.protocols.importing import (
    import_coco,
    results_from_field,
)
from fiftyone_ntt.fiftyone.protocols.run import format_report, run_protocol
from fiftyone_ntt.fiftyone.protocols.specs import (
    CDFSOD_PUBLISHED,
    COCO_NOVEL_IDS,
    COCO_PUBLISHED,
    COCO_README_30,
    CUSTOM_TOY_PUBLISHED,
    GT_FIELD,
    VOC_NOVEL_CLASSES,
    VOC_PUBLISHED,
    ProtocolSpec,
    cd_fsod_spec,
    coco_fsod_spec,
    custom_spec,
    voc_spec,
)

__all__ = [
    "CDFSOD_PUBLISHED",
    "COCO_NOVEL_IDS",
    "COCO_PUBLISHED",
    "COCO_README_30",
    "CUSTOM_TOY_PUBLISHED",
    "GT_FIELD",
    "VOC_NOVEL_CLASSES",
    "VOC_PUBLISHED",
    "ProtocolSpec",
    "cd_fsod_spec",
    "coco_fsod_spec",
    "custom_spec",
    "format_report",
    "import_coco",
    "results_from_field",
    "run_protocol",
    "voc_spec",
]
