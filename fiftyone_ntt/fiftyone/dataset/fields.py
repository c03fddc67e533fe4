"""Names NTT writes into a dataset (label tags, prediction/preview/curated fields, run
attributes), the ``Detections``-field checks and the dataset's ground-truth fields.
"""

from __future__ import annotations

from typing import Any

import fiftyone as fo

from fiftyone_ntt.fiftyone.dataset.store import BANK_KEY_PREFIX, execution_store, root_dataset

#: The label tag that marks instances (ground truth or accepted predictions) as references.
DEFAULT_REFERENCE_TAG = "ntt:ref"


#: The label tag that marks instances as negatives: they look like their class but are not
#: (rejected predictions; see :mod:`fiftyone_ntt.fiftyone.curation.decisions`).
NEG_TAG = "ntt:neg"


def detections_fields(collection: Any) -> list[str]:
    """Names of the ``fo.Detections`` sample fields of a collection, and of a video
    collection's frame fields as ``frames.<name>``."""
    schema = collection.get_field_schema(embedded_doc_type=fo.Detections)
    names = sorted(schema)
    if getattr(collection, "media_type", None) == "video":
        frames = collection.get_frame_field_schema(embedded_doc_type=fo.Detections) or {}
        names += sorted(f"frames.{name}" for name in frames)
    return names


def check_detections_field(collection: Any, field: str, what: str = "field") -> None:
    """Raise a ValueError naming the field and the fix unless ``field`` holds ``Detections``
    (in the collection, or in its dataset: a patches view holds single ``Detection``s of a
    ``Detections`` field). The one check of a references, negatives or predictions field."""
    dataset = root_dataset(collection)
    for where in (collection, dataset):
        if field and field in where.get_field_schema(embedded_doc_type=fo.Detections):
            return
    choices = detections_fields(collection)
    schema = collection.get_field_schema() if field else {}
    if field not in schema:
        raise ValueError(
            f"{what} {field!r} does not exist on dataset {dataset.name!r}; choose one of its "
            f"Detections fields: {choices}"
        )
    kind = getattr(schema[field], "document_type", None) or type(schema[field])
    raise ValueError(
        f"{what} {field!r} holds {kind.__name__}, not Detections: only instance detections "
        f"(with masks) can be references, negatives or predictions; choose one of {choices}"
    )


#: The label tag of references (positives).
REF_TAG = DEFAULT_REFERENCE_TAG


def label_type(collection: Any, field: str) -> Any:
    """The label class of ``field`` in ``collection`` (``Detections`` in a dataset,
    ``Detection`` in a patches view of it), or None when there is no such field."""
    schema = collection.get_field_schema()
    if field not in schema:
        return None
    return getattr(schema[field], "document_type", None)


#: The field a preview writes (replaced at each preview).
PREVIEW_FIELD = "ntt_preview"


#: Where tagged preview labels are kept when a new preview replaces the field.
CURATED_FIELD = "ntt_curated"


#: Attribute of the preview's ``fo.Detections``: the bank key and version it shows.
PREVIEW_ATTRIBUTE = "ntt_preview"


#: Attribute of the output ``fo.Detections`` holding the fingerprint of the run that wrote
#: it: a rerun skips the samples whose value matches (resume).
RUN_ATTRIBUTE = "ntt_run"


#: ``method`` of the runs this package registers.
RUN_METHOD = "fiftyone_ntt.segment"


def ground_truth_fields(collection: Any) -> list[str]:
    """Fields this dataset uses as ground truth: the ``gt_field`` of its banks (their index
    entries in the execution store) and of its No Time to Train runs."""
    dataset = root_dataset(collection)
    store = execution_store(dataset)
    fields = {
        (store.get(name) or {}).get("gt_field")
        for name in store.list_keys()
        if name.startswith(BANK_KEY_PREFIX)
    }
    try:
        for key in dataset.list_runs(method=RUN_METHOD):
            fields.add(getattr(dataset.get_run_info(key).config, "gt_field", None))
    except Exception:  # pragma: no cover - a run config FiftyOne cannot load
        pass
    return sorted(f for f in fields if f)
