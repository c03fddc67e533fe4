"""Predictions, references and negatives on one embeddings map and in one similarity index
(issue 22; docs/method.md §15).

FiftyOne's brain maps and indexes the patches of ONE label field, while a bank's references
and negatives live in the ground-truth field (and in prediction fields, for accepted or
rejected predictions). :func:`build_map_field` therefore writes a *map field*
(:func:`map_field_name`, owned by No Time to Train): one box-only copy of every prediction of
``pred_field`` that has its feature (``ntt_embedding``) and of every reference and negative of
the bank, each with

* :data:`ROLE_ATTRIBUTE`: ``reference``, ``negative``, ``prediction``, or ``tp``/``fp``
  after an evaluation of ``pred_field`` (a false negative is a ground-truth instance the
  model never proposed: it has no feature, so it is not on the map);
* :data:`SOURCE_FIELD_ATTRIBUTE` and :data:`SOURCE_ID_ATTRIBUTE`: the label it copies, so a
  selection on the map acts on the real labels (:func:`source_labels`).

:func:`map_predictions` runs ``compute_visualization`` over that field with our vectors,
:func:`similar_predictions` runs ``compute_similarity``; both refuse a field written with
another encoder than the bank's (:func:`check_field_encoder`) and a field without features.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Iterable
from typing import Any

import fiftyone as fo
import fiftyone.brain as fob
import numpy as np
from bson import ObjectId

from fiftyone_ntt.embeddings import NEGATIVE, REFERENCE, bank_vectors
from fiftyone_ntt.fiftyone.banks.index import load_bank
from fiftyone_ntt.fiftyone.dataset.fields import check_detections_field
from fiftyone_ntt.fiftyone.dataset.labels import EMBEDDING_ATTRIBUTE, decode_embedding
from fiftyone_ntt.fiftyone.dataset.store import root_dataset

__all__ = [
    "MAP_PREFIX",
    "PREDICTION",
    "ROLE_ATTRIBUTE",
    "SOURCE_FIELD_ATTRIBUTE",
    "SOURCE_ID_ATTRIBUTE",
    "TSNE_LIMIT",
    "build_map_field",
    "check_field_encoder",
    "choose_method",
    "map_field_name",
    "map_predictions",
    "similar_predictions",
    "similarity_key",
    "source_labels",
]

#: Prefix of the map fields and of the brain keys of maps (``ntt_map_``) and similarity
#: indexes (``ntt_sim_``).
MAP_PREFIX = "ntt_map_"
_SIM_PREFIX = "ntt_sim_"
#: Attribute of a map label: what the point is.
ROLE_ATTRIBUTE = "ntt_role"
PREDICTION = "prediction"
#: Attributes of a map label: the field and id of the label it copies.
SOURCE_FIELD_ATTRIBUTE = "ntt_source_field"
SOURCE_ID_ATTRIBUTE = "ntt_source_id"
#: Marker in the map field's ``info``: the field is No Time to Train's to replace.
_OWNER = {"written_by": "fiftyone-ntt", "kind": "map"}
#: Above this many points, t-SNE (quadratic memory in sklearn's exact parts, minutes at 100k)
#: gives way to PCA when umap-learn is not installed (docs/benchmarks.md, "Map").
TSNE_LIMIT = 10_000
#: Below this many points UMAP's and t-SNE's neighbourhoods (15, perplexity 30) do not fit.
_MIN_MANIFOLD = 50


def _key_part(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]", "_", str(text))


def map_field_name(pred_field: str, bank_key: str, version: int) -> str:
    """The map field (and brain key) of ``pred_field`` with version ``version`` of bank
    ``bank_key``: one per field and bank version."""
    return f"{MAP_PREFIX}{_key_part(pred_field)}_{_key_part(bank_key)}_v{int(version)}"


def similarity_key(map_field: str) -> str:
    """The brain key of the similarity index over ``map_field``."""
    return _SIM_PREFIX + map_field.removeprefix(MAP_PREFIX)


def choose_method(num_points: int, method: str | None = None) -> tuple[str, str]:
    """The dimensionality reduction of a map of ``num_points`` points, and why.

    UMAP where ``umap-learn`` is installed (keeps clusters and scales); else t-SNE from
    scikit-learn up to :data:`TSNE_LIMIT` points, PCA above (t-SNE takes minutes there);
    PCA for fewer than 50 points. An explicit ``method`` (``umap``, ``tsne``, ``pca``) wins.
    """
    if method is not None:
        if method not in ("umap", "tsne", "pca"):
            raise ValueError(f"method={method!r}; choose 'umap', 'tsne' or 'pca', or None")
        if method == "umap" and importlib.util.find_spec("umap") is None:
            raise ValueError(
                "method='umap' needs umap-learn, which is not installed; install it "
                "(pip install umap-learn) or choose 'tsne' or 'pca'"
            )
        return method, "chosen"
    if num_points < _MIN_MANIFOLD:
        return "pca", f"{num_points} points are too few for UMAP or t-SNE neighbourhoods"
    if importlib.util.find_spec("umap") is not None:
        return "umap", "umap-learn is installed"
    if num_points <= TSNE_LIMIT:
        return "tsne", "umap-learn is not installed; t-SNE (scikit-learn) keeps the clusters"
    return "pca", (
        f"umap-learn is not installed and t-SNE is slow above {TSNE_LIMIT} points; "
        "install umap-learn for clusters, or map a sample"
    )


def _field_encoder(dataset: Any, pred_field: str) -> dict[str, Any] | None:
    """The encoder identity the run of ``pred_field`` recorded, if it has one."""
    if pred_field not in dataset.list_runs():
        return None
    models = getattr(dataset.get_run_info(pred_field).config, "models", None) or {}
    encoder = models.get("encoder") if isinstance(models, dict) else None
    return dict(encoder) if encoder else None


def check_field_encoder(
    dataset: Any, pred_field: str, bank: Any, bank_key: str, width: int
) -> None:
    """Refuse features of ``pred_field`` that another encoder than the bank's computed: the
    encoder its run recorded (when it has a record) and the features' width must be the
    bank's (:meth:`~fiftyone_ntt.bank_file.MemoryBank.check_encoder`, the one rule).

    Raises:
        ValueError: naming both encoders and the fix.
    """
    # deferred: the bank module loads torch, which the plugin must not load when the App starts
    from fiftyone_ntt.bank_file import EncoderMismatchError

    identity = _field_encoder(dataset, pred_field) or dict(bank.encoder)
    try:
        bank.check_encoder(identity, width)
    except EncoderMismatchError as error:
        raise ValueError(
            f"the features of field {pred_field!r} ({width}-wide) come from another encoder "
            f"than bank {bank_key!r} ({bank.feature_dim}-wide): {error}. Map the field with "
            "the bank it was segmented with, or segment it again with embeddings=True"
        ) from None


def _prediction_rows(collection: Any, pred_field: str) -> dict[str, list[Any]]:
    """Per-label values of ``pred_field`` (one ``values`` call each, no masks)."""
    base = f"{pred_field}.detections"
    paths = ["id", f"{base}.id", f"{base}.label", f"{base}.bounding_box", f"{base}.confidence"]
    sample_ids, ids, labels, boxes, scores = collection.values(paths)
    # the attribute may be undeclared (runs write labels without extending the schema)
    vectors = collection.values(f"{base}.{EMBEDDING_ATTRIBUTE}")
    return {
        "sample_ids": sample_ids,
        "ids": ids,
        "labels": labels,
        "boxes": boxes,
        "scores": scores,
        "vectors": vectors,
    }


def latest_evaluation(dataset: Any, pred_field: str) -> str | None:
    """The key of the latest evaluation of ``pred_field`` (its labels say tp/fp), or None."""
    best = None
    for key in dataset.list_evaluations():
        info = dataset.get_evaluation_info(key)
        if getattr(info.config, "pred_field", None) == pred_field:
            if best is None or info.timestamp > best[1]:
                best = (key, info.timestamp)
    return best[0] if best else None


def build_map_field(
    collection: Any,
    pred_field: str,
    bank_key: str,
    version: int | None = None,
    eval_key: str | None = None,
) -> dict[str, Any]:
    """Write the map field of ``pred_field`` and a bank version (see the module docstring).

    Args:
        collection: the dataset or a view (its predictions are mapped; the bank's
            references and negatives always are, wherever they are in the dataset).
        pred_field: a ``Detections`` field written with ``embeddings=True``.
        bank_key: a bank of this dataset; ``version``: its version (default: the latest).
        eval_key: the evaluation whose tp/fp the predictions' roles show (default: the
            latest of ``pred_field``, if any).

    Returns:
        ``field``, ``embeddings`` (``{map label id: float32 vector}``), ``by_sample``
        (``{sample id: (labels, D)}``, in the map field's order: what FiftyOne's brain
        reads), ``sample_ids
        (samples with map labels), ``roles`` (count per role), ``skipped`` (predictions
        without feature), ``bank_key``, ``bank_version``, ``eval_key``.

    Raises:
        ValueError: not a Detections field, no prediction with a feature (the message says
            how to compute them), features of another encoder, a field of that name that
            No Time to Train did not write.
    """
    dataset = root_dataset(collection)
    check_detections_field(collection, pred_field, "predictions field")
    bank = load_bank(dataset, bank_key, version)
    version = int(bank.origin.get("bank_version") or version or 1)
    field = map_field_name(pred_field, bank_key, version)
    if dataset.has_sample_field(field):
        info = dataset.get_field(field).info or {}
        if info.get("written_by") != _OWNER["written_by"]:
            raise ValueError(
                f"field {field!r} exists and No Time to Train did not write it; rename or "
                "delete it to map these predictions"
            )
    if eval_key is None:
        eval_key = latest_evaluation(dataset, pred_field)
    # a label copied again keeps its map id: the map's points and a selection on them
    # stay valid when the field is rebuilt (e.g. for the similarity index)
    known = _known_copies(dataset, field)

    rows = _prediction_rows(collection, pred_field)
    outcomes = (
        collection.values(f"{pred_field}.detections.{eval_key}")
        if eval_key
        else [[None] * len(i or []) for i in rows["ids"]]
    )
    per_sample: dict[str, list[Any]] = {}
    embeddings: dict[str, np.ndarray] = {}
    roles: dict[str, int] = {}
    skipped = with_vectors = 0
    width = None
    for s, sample_id in enumerate(rows["sample_ids"]):
        for i, label_id in enumerate(rows["ids"][s] or []):
            vector = decode_embedding(rows["vectors"][s][i])
            if vector is None:
                skipped += 1
                continue
            if width is None:
                width = len(vector)
                check_field_encoder(dataset, pred_field, bank, bank_key, width)
            elif len(vector) != width:
                check_field_encoder(dataset, pred_field, bank, bank_key, len(vector))
            outcome = outcomes[s][i] if outcomes[s] else None
            role = outcome if outcome in ("tp", "fp") else PREDICTION
            copy = _copy(
                rows["labels"][s][i],
                rows["boxes"][s][i],
                rows["scores"][s][i],
                role,
                known.pop((pred_field, label_id, False), None),
            )
            copy[SOURCE_FIELD_ATTRIBUTE], copy[SOURCE_ID_ATTRIBUTE] = pred_field, label_id
            per_sample.setdefault(sample_id, []).append(copy)
            embeddings[copy.id] = vector
            roles[role] = roles.get(role, 0) + 1
            with_vectors += 1
    if not with_vectors:
        raise ValueError(
            f"no prediction of field {pred_field!r} in this view has a feature "
            f"({EMBEDDING_ATTRIBUTE!r}): segment it again with embeddings=True "
            "(segment(..., embeddings=True); the features only, the masks come out the same), "
            "or preview with embeddings=True"
        )

    vectors = bank_vectors(bank)
    by_id = dict(zip(vectors.ids, zip(vectors.roles, vectors.vectors)))
    for source, sample_id, label in _bank_labels(dataset, bank, set(by_id)):
        role, vector = by_id[str(label.id)]
        copy = _copy(
            label.label,
            label.bounding_box,
            None,
            role,
            known.pop((source, str(label.id), True), None),
        )
        copy[SOURCE_FIELD_ATTRIBUTE], copy[SOURCE_ID_ATTRIBUTE] = source, str(label.id)
        per_sample.setdefault(sample_id, []).append(copy)
        embeddings[copy.id] = vector
        roles[role] = roles.get(role, 0) + 1

    if not dataset.has_sample_field(field):
        dataset.add_sample_field(
            field,
            fo.EmbeddedDocumentField,
            embedded_doc_type=fo.Detections,
            info=dict(_OWNER),
            description=f"No Time to Train map of {pred_field!r} with bank {bank_key!r} "
            f"v{version}: box-only copies of predictions, references and negatives",
        )
    stale = [i for i in dataset.exists(field).values("id") if i not in per_sample]
    values = {i: fo.Detections(detections=d) for i, d in per_sample.items()}
    values.update({i: None for i in stale})
    dataset.set_values(field, values, key_field="id", dynamic=True)
    by_sample = {
        sample_id: np.stack([embeddings[d.id] for d in detections])
        for sample_id, detections in per_sample.items()
    }
    return {
        "field": field,
        "embeddings": embeddings,
        "by_sample": by_sample,
        "sample_ids": list(per_sample),
        "roles": roles,
        "skipped": skipped,
        "bank_key": bank_key,
        "bank_version": version,
        "eval_key": eval_key,
    }


def _known_copies(dataset: Any, field: str) -> dict[tuple[str, str, bool], ObjectId]:
    """``{(source field, source id, from the bank): map label id}`` of the map field as it
    is (a rejected prediction is on the map twice: as a prediction and as a negative)."""
    if not dataset.has_sample_field(field):
        return {}
    base = f"{field}.detections"
    ids, fields, sources, roles = dataset.values(
        [
            f"{base}.id",
            f"{base}.{SOURCE_FIELD_ATTRIBUTE}",
            f"{base}.{SOURCE_ID_ATTRIBUTE}",
            f"{base}.{ROLE_ATTRIBUTE}",
        ],
        unwind=True,
    )
    bank = (REFERENCE, NEGATIVE)
    return {
        (f, s, r in bank): ObjectId(i) for i, f, s, r in zip(ids, fields, sources, roles) if f and s
    }


def _copy(
    label: Any, box: Any, confidence: Any, role: str, label_id: ObjectId | None = None
) -> Any:
    kwargs = {} if label_id is None else {"_id": label_id}
    copy = fo.Detection(label=label, bounding_box=list(box), confidence=confidence, **kwargs)
    copy[ROLE_ATTRIBUTE] = role
    return copy


def _bank_labels(dataset: Any, bank: Any, wanted: set[str]) -> Iterable[tuple[str, str, Any]]:
    """``(field, sample id, label)`` of the bank's references and negatives found in the
    fields it was built from (a label deleted since is left out)."""
    fields = [f for f in bank.metadata.get("fields") or [] if dataset.has_sample_field(f)]
    gt = bank.metadata.get("gt_field")
    if gt and gt not in fields and dataset.has_sample_field(gt):
        fields.append(gt)
    for field in fields:
        view = dataset.select_labels(ids=list(wanted), fields=field).select_fields(field)
        for sample in view:
            for label in sample[field].detections if sample[field] else []:
                if str(label.id) in wanted:
                    yield field, sample.id, label


def _no_progress(done: int, total: int) -> None:
    pass


def _replace_brain_run(dataset: Any, key: str) -> None:
    if key in dataset.list_brain_runs():
        dataset.delete_brain_run(key)


def map_predictions(
    collection: Any,
    pred_field: str,
    bank_key: str,
    method: str | None = None,
    *,
    version: int | None = None,
    eval_key: str | None = None,
    seed: int = 51,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """One embeddings map of the predictions of ``pred_field``, the bank's references and
    its negatives (``fiftyone.brain.compute_visualization`` over the map field, with our
    vectors), for FiftyOne's Embeddings panel; colour it by ``label`` or by
    :data:`ROLE_ATTRIBUTE`.

    Args:
        collection: dataset or view; ``pred_field``, ``bank_key``, ``version``,
            ``eval_key``: see :func:`build_map_field`.
        method: ``umap``, ``tsne``, ``pca`` or None (:func:`choose_method`).
        seed: the reduction's random seed (the same map for the same data).
        progress: ``progress(done, total)`` after each of the two stages (the map field,
            the reduction).

    Returns:
        ``brain_key`` (= the map field), ``method`` and ``why``, ``points``, ``roles``,
        ``skipped``, ``bank_key``, ``bank_version``, ``eval_key``. A map of the same field
        and bank version replaces the previous one.
    """
    report = progress or _no_progress
    report(0, 2)
    built = build_map_field(collection, pred_field, bank_key, version, eval_key)
    report(1, 2)
    dataset = root_dataset(collection)
    key = built["field"]
    method, why = choose_method(len(built["embeddings"]), method)
    _replace_brain_run(dataset, key)
    kwargs: dict[str, Any] = {"seed": seed}
    if method in ("umap", "tsne"):
        kwargs["verbose"] = False
    if method == "tsne":
        # t-SNE first reduces to 50 dimensions by PCA: only when there are more
        width = len(next(iter(built["embeddings"].values())))
        kwargs["pca_dims"] = 50 if width > 50 else None
    fob.compute_visualization(
        dataset.select(built["sample_ids"]),
        patches_field=key,
        embeddings=built["by_sample"],
        brain_key=key,
        method=method,
        progress=False,
        **kwargs,
    )
    report(2, 2)
    return {
        "brain_key": key,
        "method": method,
        "why": why,
        "points": len(built["embeddings"]),
        **{k: built[k] for k in ("roles", "skipped", "bank_key", "bank_version", "eval_key")},
    }


def similar_predictions(
    collection: Any,
    pred_field: str,
    bank_key: str,
    *,
    version: int | None = None,
    backend: str = "sklearn",
    eval_key: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    **backend_kwargs: Any,
) -> dict[str, Any]:
    """A similarity index (``fiftyone.brain.compute_similarity``, cosine) over the same map
    field and vectors as :func:`map_predictions`, so that the App's "sort by similarity" works
    on a selected prediction, reference or negative. ``backend``: ``sklearn`` (default, in
    memory) or any backend FiftyOne supports (a vector database), with its
    ``backend_kwargs``. ``progress``: as :func:`map_predictions`.

    Returns:
        ``brain_key`` (``ntt_sim_...``), ``field`` (the map field), ``points``, ``roles``.
    """
    report = progress or _no_progress
    report(0, 2)
    built = build_map_field(collection, pred_field, bank_key, version, eval_key)
    report(1, 2)
    dataset = root_dataset(collection)
    key = similarity_key(built["field"])
    _replace_brain_run(dataset, key)
    fob.compute_similarity(
        dataset.select(built["sample_ids"]),
        patches_field=built["field"],
        embeddings=built["by_sample"],
        brain_key=key,
        backend=backend,
        metric="cosine",
        progress=False,
        **backend_kwargs,
    )
    report(2, 2)
    return {
        "brain_key": key,
        "field": built["field"],
        "points": len(built["embeddings"]),
        "roles": built["roles"],
    }


def source_labels(dataset: Any, map_field: str, label_ids: Iterable[str]) -> dict[str, list]:
    """``{source field: [label ids]}`` of the labels that map labels ``label_ids`` copy
    (ids that are not map labels are returned under their own field when found)."""
    wanted = [str(i) for i in label_ids]
    base = f"{map_field}.detections"
    ids, fields, sources = dataset.values(
        [f"{base}.id", f"{base}.{SOURCE_FIELD_ATTRIBUTE}", f"{base}.{SOURCE_ID_ATTRIBUTE}"],
        unwind=True,
    )
    lookup = {i: (f, s) for i, f, s in zip(ids, fields, sources)}
    out: dict[str, list[str]] = {}
    for label_id in wanted:
        if label_id in lookup:
            field, source = lookup[label_id]
            out.setdefault(field, []).append(source)
    return out
