"""Evaluating prediction fields: FiftyOne's COCO evaluator (so the Model Evaluation panel
and TP/FP/FN patches work), optionally the exact pycocotools protocol (docs/method.md §6)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from fiftyone import ViewField as F

from fiftyone_ntt.coco import evaluate as coco_evaluate
from fiftyone_ntt.fiftyone.curation.references import reference_sample_ids
from fiftyone_ntt.fiftyone.dataset.fields import DEFAULT_REFERENCE_TAG
from fiftyone_ntt.fiftyone.dataset.labels import detection_box_xyxy, detection_full_mask
from fiftyone_ntt.fiftyone.dataset.media import (
    check_video_collection,
    ensure_video_metadata,
    frame_field_name,
)

__all__ = ["coco_protocol", "evaluate", "evaluation_message", "evaluation_view"]

#: How many left-out samples a message names (the summary's ``left_out`` lists them all).
NAMED_LEFT_OUT = 10


def evaluation_view(
    collection: Any,
    gt_field: str,
    *,
    exclude_references: bool = False,
    reference_tag: str = DEFAULT_REFERENCE_TAG,
) -> Any:
    """``collection`` without its reference samples (when asked): those whose ground-truth
    field ``gt_field`` holds a label tagged ``reference_tag``
    (:func:`~fiftyone_ntt.fiftyone.curation.references.reference_sample_ids`, the rule segment uses
    too). A prediction accepted as a reference leaves its sample in: its ground truth is
    still complete."""
    return _left_out(collection, gt_field, exclude_references, reference_tag)[0]


def _left_out(
    collection: Any, gt_field: str, exclude: bool, reference_tag: str
) -> tuple[Any, list[dict[str, str]]]:
    """The view to evaluate and the reference samples left out of it (``id``, ``name``: the
    file name, ``reason``)."""

    if not exclude:
        return collection, []
    ids = reference_sample_ids(collection, gt_field, reference_tag)
    if not ids:
        return collection, []
    reason = f"its {gt_field!r} holds a reference (a label tagged {reference_tag!r})"
    found = dict(zip(*collection.select(ids).values(["id", "filepath"])))
    left_out = [
        {"id": i, "name": os.path.basename(found.get(i) or ""), "reason": reason} for i in ids
    ]
    return collection.exclude(ids), left_out


def _named(samples: Sequence[dict[str, str]]) -> str:
    names = [f"{s['name']} ({s['id']})" for s in samples[:NAMED_LEFT_OUT]]
    more = len(samples) - len(names)
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


def evaluation_message(summary: dict[str, Any]) -> str:
    """One line about an evaluation (:func:`evaluate`'s summary): where, the mAP ("no ground
    truth in the evaluated samples" where there is none: FiftyOne's mAP is then -1), TP, FP,
    FN, and the reference samples left out, named, with the reason."""
    where = f"{summary['num_samples']} sample(s)"
    if summary.get("num_frames") is not None:
        where = f"{summary['num_frames']} frame(s) of {summary['num_samples']} video(s)"
    if summary.get("mAP") is None:
        score = "no ground truth in the evaluated samples (mAP undefined)"
    else:
        score = f"mAP {summary['mAP']:.3f}"
    text = (
        f"Evaluated {summary['pred_field']!r} on {where}: {score}, TP {summary['tp']}, "
        f"FP {summary['fp']}, FN {summary['fn']}"
    )
    left_out = summary.get("left_out") or []
    if left_out:
        text += (
            f"; left out {len(left_out)} reference sample(s) (their "
            f"{summary['gt_field']!r} holds references, tagged {summary['reference_tag']!r}): "
            f"{_named(left_out)}"
        )
    return text


def _gt_field_of_run(collection: Any, pred_field: str) -> str | None:
    dataset = collection._root_dataset
    key = pred_field.removeprefix("frames.")  # a run over video frames is keyed by the name
    if key in dataset.list_runs():
        return getattr(dataset.get_run_info(key).config, "gt_field", None)
    return None


def _frame_paths(
    collection: Any, pred_field: str, gt_field: str | None, exact_coco: bool
) -> tuple[str, str | None]:
    """On a video collection: the ``frames.`` paths of frame-level fields named without it."""
    if exact_coco:
        raise ValueError(
            "exact_coco=True (pycocotools' protocol) works on images; on a video dataset "
            "leave it off, or evaluate dataset.to_frames(sample_frames=True)"
        )
    frame_fields = collection.get_frame_field_schema() or {}

    def path(name: str | None) -> str | None:
        if not name or name.startswith("frames.") or name not in frame_fields:
            return name
        return "frames." + name

    return path(pred_field), path(gt_field)


def _frames_without_references(
    collection: Any, gt_field: str, exclude: bool, reference_tag: str
) -> Any:
    """A video collection without the frames holding a reference (when asked)."""
    if not exclude or not gt_field.startswith("frames."):
        return collection

    labels = F(gt_field.removeprefix("frames.") + ".detections")
    return collection.match_frames(labels.filter(F("tags").contains(reference_tag)).length() == 0)


def coco_protocol(
    collection: Any, pred_field: str, gt_field: str, classes: Sequence[str] | None = None
) -> dict[str, Any]:
    """pycocotools' bbox and segm AP of ``pred_field`` against ``gt_field`` over the
    collection, via :func:`fiftyone_ntt.coco.evaluate` (the research code's protocol: every
    image counts, crowd regions ignored, ``classes`` restricts the ground truth).

    Category ids are 1..C in sorted class-name order (``category_names`` in the output).
    """
    # deferred: pycocotools (optional) loads only when this runs
    from pycocotools import mask as mask_utils

    collection.compute_metadata()
    names: set[str] = set()
    for field in (gt_field, pred_field):
        names.update(str(v) for v in collection.distinct(f"{field}.detections.label"))
    categories = sorted(names)
    cat_id = {name: i + 1 for i, name in enumerate(categories)}

    def rle(mask: np.ndarray) -> dict[str, Any]:
        encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode()}

    images, annotations, results = [], [], []
    for image_id, sample in enumerate(collection.select_fields([gt_field, pred_field]), 1):
        width, height = sample.metadata.width, sample.metadata.height
        images.append({"id": image_id, "width": width, "height": height})
        for det in sample[gt_field].detections if sample[gt_field] else []:
            x1, y1, x2, y2 = detection_box_xyxy(det, width, height)
            ann = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": cat_id[str(det.label)],
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "iscrowd": int(bool(det.get_field("iscrowd") if det.has_field("iscrowd") else 0)),
            }
            mask = detection_full_mask(det, width, height)
            if mask is not None:
                ann["segmentation"] = rle(mask)
                ann["area"] = float(mask.sum())
            annotations.append(ann)
        for det in sample[pred_field].detections if sample[pred_field] else []:
            x1, y1, x2, y2 = detection_box_xyxy(det, width, height)
            entry = {
                "image_id": image_id,
                "category_id": cat_id[str(det.label)],
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "score": float(det.confidence if det.confidence is not None else 1.0),
            }
            mask = detection_full_mask(det, width, height)
            if mask is not None:
                entry["segmentation"] = rle(mask)
            results.append(entry)
    gt = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": n} for n, i in cat_id.items()],
    }
    category_ids = None if not classes else [cat_id[c] for c in classes if c in cat_id]
    output = coco_evaluate(gt, results, category_ids=category_ids)
    output["category_names"] = {str(i): n for n, i in cat_id.items()}
    return output


def _per_sample(progress: Callable[[int, int], None] | None) -> Any:
    """FiftyOne's progress callback (it receives its progress bar) as ``(done, total)``."""
    if progress is None:
        return None

    def callback(bar: Any) -> None:
        total = bar.total if bar.has_total else 0
        progress(int(bar.iteration), int(total or 0))

    return callback


def evaluate(
    collection: Any,
    pred_field: str,
    eval_key: str,
    *,
    gt_field: str | None = None,
    exclude_references: bool = False,
    reference_tag: str = DEFAULT_REFERENCE_TAG,
    classes: Sequence[str] | None = None,
    use_masks: bool = True,
    exact_coco: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Evaluate ``pred_field`` with FiftyOne's COCO evaluator (``evaluate_detections(...,
    method="coco", use_masks=True, compute_mAP=True)``), registered under ``eval_key``.

    Args:
        collection: dataset or view to evaluate on.
        pred_field: the predictions.
        eval_key: evaluation key (FiftyOne adds ``<eval_key>_tp/fp/fn`` fields).
        gt_field: ground truth; default the one the predictions' bank was built from.
        exclude_references: leave out the reference samples: those whose ``gt_field``
            holds a label tagged ``reference_tag`` (:func:`evaluation_view`; an accepted
            prediction elsewhere leaves its sample in). They are listed in ``left_out``
            and named in ``message``.
        reference_tag: the reference tag.
        classes: evaluate only these classes.
        use_masks: mask IoU (True) or box IoU.
        exact_coco: also compute pycocotools' AP (:func:`coco_protocol`); stored as a custom
            run ``<eval_key>_coco`` (``dataset.load_run_results(...)``).
        progress: ``progress(done, total)`` after each sample FiftyOne matches.

    Returns:
        ``eval_key``, ``gt_field``, ``num_samples``, ``mAP`` (None where the evaluated
        samples hold no ground truth), ``tp``/``fp``/``fn``, ``per_class`` (precision,
        recall, f1-score, support), ``left_out`` (the reference samples left out: ``id``,
        ``name``, ``reason``), ``message`` (one line saying all that), and ``coco`` when
        asked.

    Raises:
        ValueError: the collection is empty, or holds only reference samples (the message
            names them and the fix).
    """
    video = getattr(collection, "media_type", None) == "video"
    if video:
        pred_field, gt_field = _frame_paths(collection, pred_field, gt_field, exact_coco)
    gt_field = gt_field or _gt_field_of_run(collection, pred_field)
    if not gt_field:
        raise ValueError(
            f"no ground-truth field given and {pred_field!r} has no No Time to Train run "
            "naming one; pass gt_field"
        )
    if gt_field == pred_field:
        raise ValueError("the prediction and ground-truth fields must differ")
    if not len(collection):
        raise ValueError(
            f"nothing to evaluate: the view is empty (0 samples); choose a view whose samples "
            f"hold {pred_field!r} and {gt_field!r}, e.g. the whole dataset"
        )
    if video:
        view = _frames_without_references(collection, gt_field, exclude_references, reference_tag)
        left_out: list[dict[str, str]] = []
    else:
        view, left_out = _left_out(collection, gt_field, exclude_references, reference_tag)
    if not len(view):
        raise ValueError(
            f"nothing to evaluate: all {len(left_out)} sample(s) of the view are reference "
            f"samples (their {gt_field!r} holds references tagged {reference_tag!r}): "
            f"{_named(left_out)}; evaluate a view with other samples, or pass "
            "exclude_references=False (untick 'Exclude reference samples')"
        )
    notes = []
    predicted = {str(v) for v in view.distinct(f"{pred_field}.detections.label")}
    truth = {str(v) for v in view.distinct(f"{gt_field}.detections.label")}
    absent = sorted(predicted - truth - set(classes or []))
    if absent:
        notes.append(
            f"classes {absent} of {pred_field!r} do not occur in {gt_field!r}: all their "
            "predictions count as false positives; evaluate against the field the bank was "
            "built from, or pass classes=[...]"
        )
    results = view.evaluate_detections(
        pred_field,
        gt_field=gt_field,
        eval_key=eval_key,
        method="coco",
        use_masks=use_masks,
        compute_mAP=True,
        classes=list(classes) if classes else None,
        progress=_per_sample(progress),
    )
    report = results.report()
    m_ap = float(results.mAP())
    summary: dict[str, Any] = {
        "eval_key": eval_key,
        "pred_field": pred_field,
        "gt_field": gt_field,
        "num_samples": len(view),
        "num_frames": view.count("frames") if video else None,
        "excluded_references": bool(exclude_references),
        "reference_tag": reference_tag,
        "left_out": left_out,
        # FiftyOne's mAP is -1 where no class has ground truth: undefined, not a score
        "mAP": m_ap if m_ap >= 0 else None,
        "tp": int(view.sum(f"{eval_key}_tp")),
        "fp": int(view.sum(f"{eval_key}_fp")),
        "fn": int(view.sum(f"{eval_key}_fn")),
        "per_class": {
            k: {m: float(v) for m, v in d.items()} for k, d in report.items() if isinstance(d, dict)
        },
        "notes": notes,
    }
    summary["message"] = evaluation_message(summary)
    if exact_coco:
        coco = coco_protocol(view, pred_field, gt_field, classes)
        summary["coco"] = coco
        dataset = view._root_dataset
        key = f"{eval_key}_coco"
        config = dataset.init_run(
            method="fiftyone_ntt.coco_eval",
            pred_field=pred_field,
            gt_field=gt_field,
            eval_key=eval_key,
            classes=list(classes) if classes else None,
            exclude_references=bool(exclude_references),
        )
        dataset.register_run(key, config, overwrite=True)
        dataset.save_run_results(key, dataset.init_run_results(key, coco=coco), overwrite=True)
    return summary


def evaluate_frames(
    collection: Any, pred_field: str, gt_field: str, eval_key: str = "ntt_eval", **kwargs: Any
) -> Any:
    """COCO-style evaluation of frame-level predictions against frame-level ground truth
    (FiftyOne's ``evaluate_detections`` on ``frames.<pred>`` / ``frames.<gt>``, instance masks).

    Video metadata is filled from the files first (frame sizes, without ffprobe).

    Returns:
        FiftyOne's ``DetectionResults``; per-frame ``<eval_key>_tp/fp/fn`` are stored on the
        frames, as FiftyOne does.
    """
    check_video_collection(collection)
    for sample in collection:
        ensure_video_metadata(sample)
    pred = frame_field_name(pred_field)
    gt = frame_field_name(gt_field)
    kwargs.setdefault("use_masks", True)
    kwargs.setdefault("compute_mAP", True)
    return collection.evaluate_detections(
        f"frames.{pred}", gt_field=f"frames.{gt}", eval_key=eval_key, **kwargs
    )
