"""COCO-format input and output: annotation files, references, results, evaluation.

Nothing here imports FiftyOne. pycocotools is imported inside the functions that need it.

* :mod:`~fiftyone_ntt.coco.files`: :func:`load_coco` reads an annotation file with errors
  that name the file and the key, and repairs image records whose width/height are missing
  or 0 from the image files (a crash users of the research code reported, docs/method.md §11.3);
  results files, JSON writing, the image files records name.
* :mod:`~fiftyone_ntt.coco.references`: :func:`iter_references` / :func:`load_references`
  turn annotations into :class:`~fiftyone_ntt.types.Reference` objects (mask from polygons
  or RLE, or box-only).
* :mod:`~fiftyone_ntt.coco.evaluation`: :func:`predictions_to_coco` writes standard COCO
  results (docs/method.md §6), with the paper's 1-px-short boxes or exact ones; :func:`evaluate`
  runs pycocotools' ``COCOeval`` as the research code does (docs/method.md §2.4, §6), also on
  box-only ground truth (§11.3, user issue #29), and :func:`format_table` prints it.
"""

from fiftyone_ntt.coco.evaluation import (
    STAT_NAMES,
    evaluate,
    format_table,
    predictions_to_coco,
    restrict_to_categories,
)
from fiftyone_ntt.coco.files import (
    CocoFormatError,
    image_path,
    load_coco,
    load_record_image,
    load_results,
    repair_image_sizes,
    validate_coco,
    write_json,
)
from fiftyone_ntt.coco.references import (
    InvalidAnnotationsError,
    InvalidAnnotationsWarning,
    annotation_problem,
    annotation_to_mask,
    invalid_annotations,
    iter_references,
    load_references,
)

__all__ = [
    "STAT_NAMES",
    "CocoFormatError",
    "InvalidAnnotationsError",
    "InvalidAnnotationsWarning",
    "annotation_problem",
    "annotation_to_mask",
    "evaluate",
    "format_table",
    "image_path",
    "invalid_annotations",
    "iter_references",
    "load_coco",
    "load_record_image",
    "load_references",
    "load_results",
    "predictions_to_coco",
    "repair_image_sizes",
    "restrict_to_categories",
    "validate_coco",
    "write_json",
]
