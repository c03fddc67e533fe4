"""``fiftyone-ntt predict``: segment a bank's classes in target images, write COCO results."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fiftyone_ntt.cli._common import (
    UserError,
    config_from_args,
    existing_dir,
    info,
    progress_bar,
    warn,
)
from fiftyone_ntt.cli._models import check_bank_encoder_first, load_encoder, load_proposer
from fiftyone_ntt.cli._options import add_model_options, fraction, positive_int
from fiftyone_ntt.cli._outputs import Output, add_overwrite_option, check_outputs

__all__ = ["cmd_predict", "register"]


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the ``predict`` subcommand to ``sub``."""
    p = sub.add_parser(
        parents=[common],
        name="predict",
        help="segment the bank's classes in target images; write COCO results",
        description="Run the segmenter on target images, write COCO results (docs/method.md §6): "
        "image_id, category_id, bbox [x, y, w, h], score and an RLE segmentation per "
        "detection, each image's detections in descending score. Targets are the images of "
        "--targets (their ids are used), or image files/folders (sequential ids from 1; the "
        "id -> file mapping is written next to the results as <out>.images.json). Unreadable "
        "images are skipped and listed at the end; the exit code is then 1 unless "
        "--ignore-errors. Images listed in --targets are read as stored (no EXIF rotation: COCO "
        "annotations refer to stored pixels); bare image files are EXIF-rotated as a viewer "
        "shows them.",
    )
    p.add_argument("bank", metavar="BANK", help="memory bank file from build-bank")
    p.add_argument(
        "paths",
        nargs="*",
        metavar="IMAGE",
        help="image files or folders (instead of --targets; default: every image in --images)",
    )
    p.add_argument("--images", metavar="DIR", help="folder the --targets file names refer to")
    p.add_argument("--targets", metavar="TARGET_JSON", help="COCO file listing the target images")
    p.add_argument("--out", required=True, metavar="RESULTS_JSON", help="output results file")
    add_model_options(p)
    p.add_argument(
        "--score-threshold",
        type=fraction,
        metavar="F",
        help="drop detections scoring below this (default: keep all, as the paper)",
    )
    p.add_argument(
        "--max-detections",
        type=positive_int,
        metavar="N",
        help="detections per image (default: 100)",
    )
    p.add_argument(
        "--points-per-side",
        type=positive_int,
        metavar="N",
        help="side of the SAM2 point-prompt grid (default 32, i.e. 1024 prompts, as the "
        "paper); smaller is faster and proposes fewer masks",
    )
    p.add_argument(
        "--negative-margin",
        type=float,
        metavar="F",
        help="with a bank holding negatives (build-bank --negatives): a proposal is dropped "
        "when its best cosine to the negatives of its class and the global ones is >= its "
        "class score + F (default 0; in [-1, 1]); no effect without negatives",
    )
    p.add_argument(
        "--box-convention",
        choices=("exact", "paper"),
        help="'paper' writes boxes 1 px short as the reference code (default: the preset's)",
    )
    p.add_argument(
        "--batch-images",
        type=positive_int,
        metavar="B",
        help="images per model call (default: 1 on CPU, 4 on a CUDA GPU); results do not "
        "depend on it beyond float rounding, memory grows with it",
    )
    p.add_argument(
        "--embeddings",
        action="store_true",
        help="also write <out>.embeddings.npy: float16 (detections, D), row i the semantic "
        "feature result i was matched with (docs/method.md §15), for maps and similarity "
        "search; predictions are the same with or without it",
    )
    p.add_argument(
        "--allow-empty",
        action="store_true",
        help="with a --targets file that lists no images, write an empty results file and "
        "exit 0 (default: refuse with exit code 2, before loading any model)",
    )
    p.add_argument(
        "--ignore-errors",
        action="store_true",
        help="exit with 0 even when some images could not be read",
    )
    add_overwrite_option(p)
    p.set_defaults(func=cmd_predict)


def _folder_images(folder: Path) -> list[Path]:
    """The images of ``folder``; files of other formats PIL reads are named, not dropped."""
    from fiftyone_ntt.images import folder_images

    images, left_out = folder_images(folder)
    if left_out:
        warn(f"{len(left_out)} file(s) of {folder} left out:")
        for path, why in left_out:
            print(f"  {path}: {why}", file=sys.stderr)
    return images


def _bare_targets(args: argparse.Namespace) -> list[Path]:
    paths: list[Path] = []
    if args.paths:
        for text in args.paths:
            path = Path(text)
            if not path.is_absolute() and args.images and not path.exists():
                path = Path(args.images) / path
            if path.is_dir():
                paths.extend(_folder_images(path))
            else:
                # Missing files are kept: they are reported as failed images at the end.
                paths.append(path)
    else:
        paths = _folder_images(existing_dir(args.images, "--images"))
    if not paths:
        raise UserError("no target images found; give image files, a folder or --targets")
    return paths


def _category_ids_for(bank: Any, targets: dict[str, Any] | None) -> list[int]:
    stored = bank.metadata.get("category_ids")
    if stored is not None:
        stored = [int(c) for c in stored]
        if len(stored) != len(bank.class_names):
            raise UserError(
                f"the bank stores {len(stored)} category ids for {len(bank.class_names)} "
                "classes; rebuild it"
            )
        return stored
    if targets is not None:
        by_name = {str(c["name"]): int(c["id"]) for c in targets.get("categories", ())}
        missing = [n for n in bank.class_names if n not in by_name]
        if missing:
            raise UserError(
                f"the bank has no category ids and classes {missing} are not among the target "
                "file's categories; rebuild the bank with build-bank or add the categories"
            )
        return [by_name[n] for n in bank.class_names]
    # A bank built elsewhere (Python, FiftyOne) on bare images: number the classes 1..C.
    return list(range(1, len(bank.class_names) + 1))


def cmd_predict(args: argparse.Namespace) -> int:
    """``predict``: COCO results of the bank's classes on target images."""
    from fiftyone_ntt.bank_file import MemoryBank
    from fiftyone_ntt.coco import (
        CocoFormatError,
        load_coco,
        load_record_image,
        predictions_to_coco,
        write_json,
    )
    from fiftyone_ntt.images import ImageLoadError, load_image, max_image_pixels
    from fiftyone_ntt.loader import batched, prefetched
    from fiftyone_ntt.segmenter import Segmenter, default_batch_images

    if args.targets and args.paths:
        raise UserError("give either --targets or image paths, not both")
    try:
        max_image_pixels()  # a bad setting stops here, not at every image
    except ValueError as error:
        raise UserError(str(error)) from None
    bank = MemoryBank.load(args.bank)
    targets_coco = None
    jobs: list[tuple[Any, Path | None, dict[str, Any] | None, str]] = []
    mapping: list[dict[str, Any]] | None = None
    if args.targets:
        image_dir = existing_dir(args.images, "--images")
        targets_coco = load_coco(args.targets, require=("images",))
        for record in targets_coco["images"]:
            name = str(record.get("file_name") or "")
            jobs.append((record["id"], image_dir, record, name))
    else:
        mapping = []
        for i, path in enumerate(_bare_targets(args), start=1):
            jobs.append((i, None, None, str(path)))
    _check_outputs(args, jobs, mapping is not None, bool(getattr(args, "embeddings", False)))
    category_ids = _category_ids_for(bank, targets_coco)
    if targets_coco is not None and "categories" in targets_coco:
        known = {int(c["id"]) for c in targets_coco["categories"]}
        absent = [c for c in category_ids if c not in known]
        if absent:
            warn(
                f"category ids {absent} of the bank are not in {args.targets}; "
                "their detections will not be evaluated against it",
            )
    if not jobs:
        # Nothing to do: say so before loading ~1 GB of models (issue 9 §2).
        if not args.allow_empty:
            raise UserError(
                f"no target images: {args.targets} lists no images, so there is nothing to "
                "predict; check the file, or pass --allow-empty to write an empty results file"
            )
        write_json(args.out, [])
        warn(f"{args.targets} lists no images; wrote an empty results file {args.out}")
        return 0

    config = config_from_args(args)
    if getattr(args, "embeddings", False):
        config = config.replace(keep_features=True)
    check_bank_encoder_first(bank, args, config)
    encoder = load_encoder(args, config)
    try:
        bank.check_encoder(encoder.identity)
    except ValueError as error:
        raise UserError(str(error)) from None
    proposer = load_proposer(args, config)
    try:
        segmenter = Segmenter(encoder, proposer, bank, config)
    except ValueError as error:  # settings that do not fit the bank
        raise UserError(str(error)) from None

    results: list[dict[str, Any]] = []
    features: list[Any] = []
    failures: list[tuple[Any, str, str]] = []
    bar = progress_bar(args, len(jobs), "predicting")

    def read(job: tuple[Any, Any, Any, str]) -> tuple[Any, str | None]:
        """``(image, None)`` or ``(None, why)``; runs in the loader thread."""
        image_id, image_dir, record, name = job
        try:
            if record is not None:
                if not record.get("file_name"):
                    raise CocoFormatError(f"image record {image_id!r} has no 'file_name'")
                if not (record.get("width") and record.get("height")):
                    # Sizes are optional for targets: read them from the file (§11).
                    image = load_record_image({**record, "width": 0, "height": 0}, image_dir)
                    record["width"], record["height"] = image.shape[1], image.shape[0]
                else:
                    image = load_record_image(record, image_dir)
            else:
                image = load_image(name)
        except (ImageLoadError, CocoFormatError, OSError) as error:
            return None, str(error)
        return image, None

    batch_images = args.batch_images or default_batch_images(proposer.device)
    try:
        # images are read one batch ahead in a thread while the models compute
        stream = prefetched(jobs, read, depth=batch_images + 1)
        for batch in batched(stream, batch_images):
            ready = []
            for (image_id, _, _, name), (image, error) in batch:
                if error is not None:
                    failures.append((image_id, name, error))
                    bar.update(1)
                    continue
                ready.append((image_id, name, image))
                if mapping is not None:
                    mapping.append(
                        {
                            "id": image_id,
                            "file_name": name,
                            "width": int(image.shape[1]),
                            "height": int(image.shape[0]),
                        }
                    )
            if len(ready) == 1:
                predicted = [segmenter.predict(ready[0][2])]  # the paper path exactly
            else:
                predicted = segmenter.predict_batch([image for _, _, image in ready])
            for (image_id, _, _), predictions in zip(ready, predicted, strict=True):
                results.extend(
                    predictions_to_coco(predictions, image_id, category_ids, config.box_convention)
                )
                if predictions.features is not None:
                    features.append(predictions.features)
                bar.update(1)
    finally:
        bar.close()

    write_json(args.out, results)
    if getattr(args, "embeddings", False):
        _write_embeddings(args, features, bank.feature_dim, len(results))
    if mapping is not None:
        mapping_path = _mapping_path(args.out)
        categories = [
            {"id": c, "name": n} for c, n in zip(category_ids, bank.class_names, strict=True)
        ]
        marker = {"fiftyone_ntt": {"image_mapping_for": Path(args.out).name}}
        write_json(
            mapping_path,
            {"info": marker, "images": mapping, "categories": categories},
            indent=1,
        )
        info(args, f"wrote the image id mapping to {mapping_path}")
    done = len(jobs) - len(failures)
    info(args, f"wrote {len(results)} detections on {done} images to {args.out}")
    if failures:
        # Problems are reported even with --quiet.
        warn(f"{len(failures)} of {len(jobs)} images could not be read and were skipped:")
        for image_id, name, reason in failures:
            print(f"  image {image_id} ({name}): {reason}", file=sys.stderr)
        return 0 if args.ignore_errors else 1
    return 0


def _check_outputs(
    args: argparse.Namespace, jobs: list[Any], with_mapping: bool, with_embeddings: bool = False
) -> None:
    """The results file (and the image id mapping of bare images, the embeddings file) may
    be written, and are none of the inputs: the bank, the targets file, the images."""
    outputs = [Output("--out", args.out, "results")]
    if with_mapping:
        outputs.append(Output("the image id mapping", _mapping_path(args.out), "mapping"))
    if with_embeddings:
        outputs.append(Output("the embeddings file", _embeddings_path(args.out), "embeddings"))
    images = [
        ("image", Path(image_dir) / name if image_dir is not None else name)
        for _, image_dir, _, name in jobs
        if name
    ]
    check_outputs(args, outputs, [("BANK", args.bank), ("--targets", args.targets), *images])


def _embeddings_path(out: str) -> Path:
    path = Path(out)
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    return path.with_name(f"{stem}.embeddings.npy")


def _write_embeddings(args: argparse.Namespace, features: list[Any], dim: int, rows: int) -> None:
    """``<out>.embeddings.npy``: float16, one row per result, in the results' order."""
    import numpy as np

    from fiftyone_ntt.embeddings import compact

    stacked = np.concatenate(features) if features else np.zeros((0, dim), np.float32)
    path = _embeddings_path(args.out)
    np.save(path, compact(stacked))
    info(args, f"wrote {rows} embeddings ({stacked.shape[1]}-wide, float16) to {path}")


def _mapping_path(out: str) -> Path:
    path = Path(out)
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    return path.with_name(f"{stem}.images.json")
