"""Running a protocol end to end (import, references, bank, segment, evaluate) and its
report table."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import fiftyone as fo
from fiftyone import ViewField as F

from fiftyone_ntt.coco import evaluate as coco_evaluate
from fiftyone_ntt.coco import write_json
from fiftyone_ntt.fiftyone.banks.build import bank_config, build_bank
from fiftyone_ntt.fiftyone.banks.index import get_bank_info, load_bank
from fiftyone_ntt.fiftyone.dataset import model_cache
from fiftyone_ntt.fiftyone.dataset.model_cache import model_identity
from fiftyone_ntt.fiftyone.evaluation.evaluate import evaluate as fo_evaluate
from fiftyone_ntt.fiftyone.evaluation.export import export_side_by_side
from fiftyone_ntt.fiftyone.protocols.importing import import_coco, results_from_field
from fiftyone_ntt.fiftyone.protocols.specs import (
    GT_FIELD,
    STATS,
    ProtocolSpec,
    category_names,
    slugify,
)
from fiftyone_ntt.fiftyone.runs.job import segment
from fiftyone_ntt.presets import resolve_config

# ------------------------------------------------------------------------------------------
# running


def _config(
    preset: str, points_per_side: int | None, sam2: str | None = None, dinov2: str | None = None
):

    # Meta's files (checkpoints/sam2_hiera_large.pt, ...), folders or other hub ids; resolved
    # as the command line, Python and the App forms resolve a preset
    changes = {"points_per_side": int(points_per_side)} if points_per_side else {}
    return resolve_config(preset, proposer=sam2 or None, encoder=dinov2 or None, **changes)


def _ensure_bank(refs, key, tag, classes, config, preset, device, log) -> tuple[Any, bool]:
    """The bank ``key`` of ``refs``: reused when it holds exactly the tagged references with
    the same classes, settings and models; built (overwriting) otherwise."""

    tagged = refs.filter_labels(GT_FIELD, fo.ViewField("tags").contains(tag)).values(
        f"{GT_FIELD}.detections.id", unwind=True
    )
    encoder, proposer = model_cache.get_models(config.models, device)
    wanted_config = bank_config(config, encoder, proposer)
    try:
        info = get_bank_info(refs, key)
    except KeyError:
        info = None
    if info is not None and info.get("exists"):
        bank = load_bank(refs, key)
        if (
            set(bank.reference_ids) == set(tagged)
            and list(bank.class_names) == list(classes)
            and bank.metadata.get("config") == wanted_config
            and bank.metadata.get("models") == model_identity(encoder, proposer)
        ):
            log(f"reusing memory bank {key!r} ({bank.num_references} references)")
            return bank, True
    log(f"building memory bank {key!r} from {len(tagged)} references")
    build_bank(
        refs,
        GT_FIELD,
        key,
        tag=tag,
        classes=list(classes),
        preset=preset,
        config=config,
        device=device,
        encoder=encoder,
        proposer=proposer,
        overwrite=True,
    )
    return load_bank(refs, key), False


def run_protocol(
    spec: ProtocolSpec,
    *,
    prefix: str | None = None,
    max_samples: int | None = None,
    preset: str = "paper",
    points_per_side: int | None = None,
    device: str | None = None,
    output_dir: str | os.PathLike | None = None,
    export_pngs: int = 0,
    vis_threshold: float = 0.5,
    fiftyone_eval: bool = False,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
    sam2: str | None = None,
    dinov2: str | None = None,
) -> dict[str, Any]:
    """Run a protocol end to end (import, references, bank, segment, evaluate); resumable.

    Args:
        spec: from :func:`coco_fsod_spec`, :func:`voc_spec`, :func:`cd_fsod_spec` or
            :func:`custom_spec`.
        prefix: dataset name prefix (default ``ntt-<kind>``): ``<prefix>-refs`` and
            ``<prefix>-targets``.
        max_samples: only the first N target images (annotation-file order): a smoke run;
            the evaluation then covers those images only.
        preset: configuration preset (default ``paper``: the published numbers' models,
            SAM 2.0 Hiera-L + DINOv2 ViT-L/14); ``points_per_side`` overrides its grid.
        device: compute device.
        output_dir: where ``<run>_results.json`` and ``<run>_report.json`` are written
            (default ``./ntt_protocols``), and ``<run>_vis/`` with ``export_pngs`` side-by-side
            PNGs (0: none) drawn at ``vis_threshold``.
        fiftyone_eval: also run FiftyOne's COCO evaluator (eval key ``eval_<run>``, mask
            IoU when the ground truth has masks) for the App's Model Evaluation panel and
            TP/FP/FN browsing.
        overwrite: re-segment every target (needed when the settings or models changed
            since the predictions in ``ntt_<run>`` were made; otherwise ``segment`` refuses).
        log: called with progress lines (default: print to stderr).
        sam2, dinov2: weights instead of the preset's: hub id, local folder or Meta's
            original file (``checkpoints/sam2_hiera_large.pt``,
            ``checkpoints/dinov2/dinov2_vitl14_pretrain.pth``).

    Returns:
        The report: ``name``, ``kind``, ``description``, ``datasets``, ``bank`` (key,
        fingerprint, ``reused``), ``reference_ids`` (COCO annotation ids), ``classes``,
        ``segment`` (the segment summary), ``evaluation`` (:func:`fiftyone_ntt.coco.evaluate`
        output), ``table`` (text), file paths.
    """

    started = time.perf_counter()
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    prefix = prefix or f"ntt-{spec.kind}"
    output_dir = Path(output_dir or "ntt_protocols")
    slug = slugify(spec.name)
    tag = f"ntt:ref:{spec.name}"
    config = _config(preset, points_per_side, sam2, dinov2)

    # 1. datasets
    ref_anns = {a["id"]: a for a in spec.ref_coco["annotations"]}
    ref_image_ids = list(dict.fromkeys(ref_anns[a]["image_id"] for a in spec.reference_ann_ids))
    refs = import_coco(f"{prefix}-refs", spec.ref_coco, spec.ref_image_dir, ref_image_ids, log=log)
    target_ids = [r["id"] for r in spec.target_coco["images"]]
    if max_samples is not None:
        target_ids = target_ids[: int(max_samples)]
    targets = import_coco(
        f"{prefix}-targets", spec.target_coco, spec.target_image_dir, target_ids, log=log
    )

    # 2. references
    label_ids, coco_ids = refs.values(
        [f"{GT_FIELD}.detections.id", f"{GT_FIELD}.detections.coco_id"], unwind=True
    )
    by_coco = dict(zip(coco_ids, label_ids))
    wanted = set(spec.reference_ann_ids)
    selected = [by_coco[a] for a in spec.reference_ann_ids if a in by_coco]
    if len(selected) != len(wanted):
        raise RuntimeError(f"{len(wanted) - len(selected)} reference annotation(s) not imported")
    refs.untag_labels(tag, label_fields=[GT_FIELD])
    refs.select_labels(ids=selected, fields=GT_FIELD).tag_labels(tag, label_fields=[GT_FIELD])

    # 3. bank (classes in category-id order, as the research code's label indices)
    ref_names = category_names(spec.ref_coco)
    classes = [ref_names[c] for c in sorted(spec.class_ids)]
    bank, reused = _ensure_bank(refs, slug, tag, classes, config, preset, device, log)

    # 4. segment (resumable)

    view = targets.match(F("coco_id").is_in(target_ids))
    out_field = f"ntt_{slug}"
    log(f"segmenting {len(view)} target image(s) into {targets.name!r}.{out_field}")
    summary = segment(
        view, bank, out_field, skip_references=False, device=device, overwrite=overwrite
    )
    if summary["failed"]:
        log(f"warning: {summary['failed']} image(s) could not be read (see the report)")

    # 5. results with the paper's box convention, evaluated on the original ground truth
    target_by_name = {v: k for k, v in category_names(spec.target_coco).items()}
    results = results_from_field(view, out_field, target_by_name, box_convention="paper")
    evaluation = coco_evaluate(
        spec.target_coco,
        results,
        category_ids=spec.eval_category_ids,
        image_ids=None if max_samples is None else target_ids,
    )

    report: dict[str, Any] = {
        "name": spec.name,
        "kind": spec.kind,
        "description": spec.description,
        "datasets": {"references": refs.name, "targets": targets.name},
        "pred_field": out_field,
        "reference_tag": tag,
        "bank": {"key": slug, "fingerprint": bank.fingerprint, "reused": reused},
        "reference_ids": list(spec.reference_ann_ids),
        "sampled": spec.extra.get("sampled"),
        "classes": classes,
        "eval_category_ids": list(spec.eval_category_ids),
        "num_target_images": len(target_ids),
        "smoke": max_samples is not None,
        "segment": {k: v for k, v in summary.items() if k != "failures"},
        "failures": summary["failures"],
        "evaluation": evaluation,
        "published": {f"{k[0]} {k[1]}": v for k, v in spec.published.items()},
    }
    if fiftyone_eval:
        eval_key = f"eval_{slug}"
        has_masks = "segm" in evaluation["iou_types"]
        log(f"FiftyOne evaluation {eval_key!r} ({'mask' if has_masks else 'box'} IoU)")
        eval_names = category_names(spec.target_coco)
        fo_summary = fo_evaluate(
            view,
            out_field,
            eval_key,
            gt_field=GT_FIELD,
            classes=[eval_names[c] for c in spec.eval_category_ids],
            use_masks=has_masks,
        )
        report["fiftyone_eval"] = {
            k: fo_summary[k] for k in ("eval_key", "mAP", "tp", "fp", "fn", "num_samples")
        }
    report["table"] = format_report(report, spec.published, metric=spec.metric)
    output_dir.mkdir(parents=True, exist_ok=True)
    report["results_file"] = str(write_json(output_dir / f"{slug}_results.json", results))
    if export_pngs:
        files = export_side_by_side(
            view, output_dir / f"{slug}_vis", GT_FIELD, out_field,
            threshold=vis_threshold, labels=classes, limit=export_pngs,
        )  # fmt: skip
        report["png_files"] = [str(p) for p in files]
    report["seconds"] = round(time.perf_counter() - started, 3)
    report["report_file"] = str(output_dir / f"{slug}_report.json")
    write_json(report["report_file"], report, indent=1)

    stored = dict(targets.info.get("ntt_protocols") or {})
    stored[spec.name] = {
        "pred_field": out_field,
        "references_dataset": refs.name,
        "bank": report["bank"],
        "stats": {t: evaluation[t]["stats"] for t in evaluation["iou_types"]},
        "num_target_images": len(target_ids),
        "report_file": report["report_file"],
    }
    targets.info["ntt_protocols"] = stored
    targets.save()
    return report


def _pct(value: float | None) -> str:
    if value is None or value < 0:
        return "-"
    return f"{100 * value:.1f}"


def format_report(
    report: Mapping[str, Any], published: Mapping[tuple[str, str], str], *, metric: str = "AP"
) -> str:
    """The report's table: bbox/segm nAP, nAP50, nAP75 (ours, in %) and the published values."""
    evaluation = report["evaluation"]
    prefix = "n" if report.get("kind") in ("coco-fsod", "voc") else ""
    lines = [
        f"{report['description']}: {report['num_target_images']} target image(s), "
        f"{len(report['classes'])} class(es), {len(report['reference_ids'])} reference(s)"
        + (" [smoke run: --max-samples]" if report.get("smoke") else ""),
        f"{'metric':<14}{'ours':>8}   published (docs/method.md §7)",
    ]
    for iou_type in ("bbox", "segm"):
        for stat, _ in STATS:
            label = f"{iou_type} {prefix}{stat}"
            if iou_type not in evaluation:
                ours = "n/a"
            else:
                ours = _pct(evaluation[iou_type]["stats"][stat])
            mark = " *" if stat == metric else ""
            lines.append(f"{label:<14}{ours:>8}   {published.get((iou_type, stat), '-')}{mark}")
    for note in evaluation.get("notes", ()):
        lines.append(f"note: {note}")
    lines.append(f"* headline metric ({prefix}{metric}); GPU time was not measured")
    return "\n".join(lines)
