"""The ``fiftyone-ntt`` command: the whole method on COCO-format files, without FiftyOne.

Four subcommands replace the research code's three Lightning stages and their dotted flags
(method §9, users.md)::

    fiftyone-ntt sample-references train.json --shots 10 --seed 33 --out refs.json
    fiftyone-ntt build-bank refs.json --images train/ --out bank.safetensors
    fiftyone-ntt predict bank.safetensors --images val/ --targets val.json --out results.json
    fiftyone-ntt evaluate results.json --gt val.json --category-ids 1,2,3

Exit codes: 0 success; 1 ``predict`` finished but some images could not be read (their
results are missing; ``--ignore-errors`` turns this into 0); 2 user error (missing file,
malformed JSON, unknown class, mismatched bank...), reported as ``fiftyone-ntt: error: ...``
without a traceback (``--debug`` shows it).

The model options accept a hub id, a local folder or one of Meta's checkpoint files. The
special value ``tiny`` (for ``--dinov2`` and ``--sam2``) builds tiny random-weight models, so
the whole command line can be exercised in tests without downloading weights; it produces
meaningless predictions.
"""

from __future__ import annotations

import argparse
import copy
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "main"]

PROG = "fiftyone-ntt"
#: Model option value that selects the tiny random-weight test models.
TINY = "tiny"
#: Files considered images when predicting on a folder.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class UserError(Exception):
    """A problem with the user's input: printed without a traceback, exit code 2."""


# ------------------------------------------------------------------------------------------
# argument helpers


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} must lie in [0, 1]")
    return value


def _name_list(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one class name, e.g. 'cat,dog'")
    return names


def _id_list(text: str) -> list[int]:
    ids = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            ids.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{part!r} is not a category id; give integers such as '1,2,3'"
            ) from None
    if not ids:
        raise argparse.ArgumentTypeError("give at least one category id, e.g. '1,2'")
    return ids


def _add_class_options(parser: argparse.ArgumentParser, what: str) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--classes",
        type=_name_list,
        metavar="NAME,NAME",
        help=f"{what}: comma-separated category names",
    )
    group.add_argument(
        "--category-ids",
        type=_id_list,
        metavar="ID,ID",
        help=f"{what}: comma-separated COCO category ids",
    )


def _add_model_options(parser: argparse.ArgumentParser, *, sam2: bool = True) -> None:
    parser.add_argument(
        "--preset",
        default="default",
        help="settings preset: 'default' (SAM 2.1) or 'paper' (SAM 2.0, 1-px-short boxes, "
        "exactly the published setup); default: %(default)s",
    )
    parser.add_argument(
        "--dinov2",
        metavar="ID_OR_PATH",
        help="DINOv2 weights: hub id, local folder or dinov2_vit*14*_pretrain.pth "
        "(default: the preset's)",
    )
    if sam2:
        parser.add_argument(
            "--sam2",
            metavar="ID_OR_PATH",
            help="SAM2 weights: hub id, local folder or sam2*_hiera_*.pt (default: the preset's)",
        )
    parser.add_argument(
        "--device",
        metavar="NAME",
        help="'auto' (default: CUDA when available), 'cpu', 'cuda', 'cuda:N', 'mps'",
    )
    parser.add_argument(
        "--precision",
        choices=("float32", "bfloat16", "float16"),
        help="float32 is what the paper ran; half precisions apply on GPU only",
    )


def _add_common_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--debug",
        action="store_true",
        default=default,
        help="show full tracebacks for user errors",
    )
    parser.add_argument("--quiet", action="store_true", default=default, help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``fiftyone-ntt`` (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="No Time to Train: training-free reference-based instance segmentation "
        "(SAM2 + DINOv2) on COCO-format data.",
    )
    _add_common_options(parser, default=False)
    # The same options after the subcommand (``fiftyone-ntt predict ... --quiet``); SUPPRESS
    # keeps a subcommand from resetting a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    _add_common_options(common, default=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        parents=[common],
        name="sample-references",
        help="pick K reference instances per class from a COCO file (seeded)",
        description="Pick K reference instances per class, as the paper's sampler does "
        "(method §2.2): one seeded shuffle per class, skipping crowd regions, boxes under "
        "32 px or within 10 px of a border (--paper-rules, on by default) and images already "
        "used for the class. Writes a COCO file with the chosen images, annotations and "
        "categories, in sampled order.",
    )
    p.add_argument("annotations", metavar="ANN_JSON", help="COCO annotation file to sample from")
    p.add_argument("--shots", type=_positive_int, required=True, help="references per class (K)")
    p.add_argument("--seed", type=int, required=True, help="random seed (the paper used 33)")
    _add_class_options(p, "classes to sample (default: every category with annotations)")
    p.add_argument(
        "--paper-rules",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="apply the paper's size (>= 32 px) and border (>= 10 px) rules; default: on",
    )
    p.add_argument(
        "--allow-fewer",
        action="store_true",
        help="take all usable instances of a class that has fewer than K instead of failing",
    )
    p.add_argument(
        "--images",
        metavar="DIR",
        help="image folder, used only to read the size of records with width/height 0",
    )
    p.add_argument("--out", required=True, metavar="REF_JSON", help="output COCO file")
    p.set_defaults(func=cmd_sample_references)

    p = sub.add_parser(
        parents=[common],
        name="build-bank",
        help="embed reference instances into a memory bank file",
        description="Embed the annotated instances of a COCO file into a memory bank "
        "(method §3-§4). Instances with polygons or RLE use their mask; box-only instances "
        "are segmented by SAM2 box prompting. Class order = sorted category id (method §2.1); "
        "the category ids are stored in the bank.",
    )
    p.add_argument("references", metavar="REF_JSON", help="COCO file of the reference instances")
    p.add_argument("--images", required=True, metavar="DIR", help="folder of the reference images")
    p.add_argument("--out", required=True, metavar="BANK", help="output .safetensors file")
    _add_class_options(p, "use only these classes (default: all with annotations)")
    _add_model_options(p)
    p.set_defaults(func=cmd_build_bank)

    p = sub.add_parser(
        parents=[common],
        name="predict",
        help="segment the bank's classes in target images; write COCO results",
        description="Run the segmenter on target images and write COCO results (method §6): "
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
    _add_model_options(p)
    p.add_argument(
        "--score-threshold",
        type=_fraction,
        metavar="F",
        help="drop detections scoring below this (default: keep all, as the paper)",
    )
    p.add_argument(
        "--max-detections",
        type=_positive_int,
        metavar="N",
        help="detections per image (default: 100)",
    )
    p.add_argument(
        "--points-per-side",
        type=_positive_int,
        metavar="N",
        help="side of the SAM2 point-prompt grid (default 32, i.e. 1024 prompts, as the "
        "paper); smaller is faster and proposes fewer masks",
    )
    p.add_argument(
        "--box-convention",
        choices=("exact", "paper"),
        help="'paper' writes boxes 1 px short as the reference code (default: the preset's)",
    )
    p.add_argument(
        "--ignore-errors",
        action="store_true",
        help="exit with 0 even when some images could not be read",
    )
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        parents=[common],
        name="evaluate",
        help="COCO bbox/segm AP of a results file",
        description="pycocotools COCOeval on every ground-truth image (method §6). With "
        "--classes/--category-ids the ground truth keeps only those classes' annotations "
        "(method §2.4). Box-only ground truth is evaluated for bbox only.",
    )
    p.add_argument("results", metavar="RESULTS_JSON", help="COCO results file")
    p.add_argument("--gt", required=True, metavar="GT_JSON", help="COCO ground-truth file")
    _add_class_options(p, "evaluate only these classes")
    p.add_argument(
        "--images", metavar="DIR", help="image folder, to repair records with width/height 0"
    )
    p.add_argument("--json", metavar="OUT", help="also write the metrics to this JSON file")
    p.add_argument("--verbose", action="store_true", help="show pycocotools' own output")
    p.set_defaults(func=cmd_evaluate)
    return parser


# ------------------------------------------------------------------------------------------
# shared helpers


def _progress(args: argparse.Namespace, total: int, desc: str, unit: str = "img") -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=args.quiet, file=sys.stderr)


def _info(args: argparse.Namespace, message: str) -> None:
    print(message, file=sys.stderr)


def _existing_dir(path: str | None, option: str) -> Path:
    if path is None:
        raise UserError(f"{option} DIR is required here; give the image folder")
    folder = Path(path)
    if not folder.is_dir():
        raise UserError(f"image folder {path!r} ({option}) does not exist; check the path")
    return folder


def _select_categories(coco: dict[str, Any], args: argparse.Namespace, source: str) -> list[int]:
    """Category ids chosen by --classes / --category-ids, else those with annotations.

    Returned in the file's category order.
    """
    categories = coco.get("categories", [])
    by_name: dict[str, list[int]] = {}
    for category in categories:
        by_name.setdefault(str(category["name"]), []).append(int(category["id"]))
    ids_in_file = [int(c["id"]) for c in categories]
    if getattr(args, "classes", None):
        chosen = []
        for name in args.classes:
            if name not in by_name:
                raise UserError(
                    f"unknown class {name!r}: {source} has no category of that name; known "
                    f"classes: {', '.join(sorted(by_name))}"
                )
            if len(by_name[name]) > 1:
                raise UserError(
                    f"class name {name!r} is used by categories {by_name[name]} in {source}; "
                    "select them with --category-ids instead"
                )
            chosen.append(by_name[name][0])
        return [c for c in ids_in_file if c in set(chosen)]
    if getattr(args, "category_ids", None):
        unknown = [c for c in args.category_ids if c not in set(ids_in_file)]
        if unknown:
            raise UserError(
                f"unknown category id(s) {unknown}: not in {source}; known ids: {ids_in_file}"
            )
        return [c for c in ids_in_file if c in set(args.category_ids)]
    used = {int(a["category_id"]) for a in coco.get("annotations", ())}
    chosen = [c for c in ids_in_file if c in used]
    if not chosen:
        raise UserError(f"{source} has no annotations of any listed category; nothing to use")
    return chosen


def _config(args: argparse.Namespace) -> Any:
    from fiftyone_ntt.config import get_preset

    try:
        config = get_preset(args.preset)
    except ValueError as error:
        raise UserError(str(error)) from None
    models: dict[str, Any] = {}
    for key in ("dinov2", "sam2", "device", "precision"):
        value = getattr(args, key, None)
        if value is not None and value != TINY:
            models[key] = value
    changes: dict[str, Any] = {"models": models} if models else {}
    for key in ("score_threshold", "max_detections", "box_convention", "points_per_side"):
        value = getattr(args, key, None)
        if value is not None:
            changes[key] = value
    return config.replace(**changes) if changes else config


def _load_encoder(args: argparse.Namespace, config: Any) -> Any:
    return _load_model(args.dinov2, config, "DINOv2", encoder=True)


def _load_proposer(args: argparse.Namespace, config: Any) -> Any:
    return _load_model(args.sam2, config, "SAM2", encoder=False)


def _load_model(requested: str | None, config: Any, what: str, *, encoder: bool) -> Any:
    """The DINOv2 encoder or SAM2 proposer of ``config``, or a tiny random one for ``tiny``."""
    from fiftyone_ntt import models

    cfg = config.models
    if requested == TINY:
        tiny = models.tiny_encoder if encoder else models.tiny_proposer
        return _model_call(lambda: tiny(device=models.resolve_device(cfg.device)), what, TINY)
    source = cfg.dinov2 if encoder else cfg.sam2
    load = models.load_encoder if encoder else models.load_proposer
    return _model_call(
        lambda: load(source, device=cfg.device, precision=cfg.precision), what, source
    )


def _model_call(load: Callable[[], Any], what: str, source: str) -> Any:
    try:
        return load()
    except (OSError, ValueError) as error:  # missing/unusable weights, unknown device
        raise UserError(f"cannot load the {what} model {source!r}: {error}") from None


# ------------------------------------------------------------------------------------------
# sample-references


def cmd_sample_references(args: argparse.Namespace) -> int:
    """``sample-references``: write a COCO file of K sampled references per class."""
    from fiftyone_ntt.coco import load_coco, write_json
    from fiftyone_ntt.sampling import (
        SamplingShortfallWarning,
        candidates_from_coco,
        sample_references,
    )

    image_dir = _existing_dir(args.images, "--images") if args.images else None
    coco = load_coco(args.annotations, image_dir=image_dir)
    category_ids = _select_categories(coco, args, args.annotations)
    names = {int(c["id"]): str(c["name"]) for c in coco["categories"]}
    try:
        candidates = candidates_from_coco(coco, category_ids)
    except ValueError as error:
        raise UserError(f"{args.annotations}: {error}") from None
    classes = [str(c) for c in category_ids]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingShortfallWarning)
        try:
            chosen = sample_references(
                candidates,
                args.shots,
                args.seed,
                classes=classes,
                paper_rules=args.paper_rules,
                one_per_image=True,
                strict=not args.allow_fewer,
            )
        except ValueError as error:
            message = str(error)
            if "image size is unknown" in message:
                message += "; pass --images DIR to read the sizes from the image files"
            # The sampler names classes by category id; add the name for the user.
            for cid in category_ids:
                message = message.replace(f"class '{cid}'", f"class {names[cid]!r} (id {cid})")
            raise UserError(message.replace("strict=False", "--allow-fewer")) from None

    annotations = {str(a["id"]): a for a in coco["annotations"]}
    images = {r["id"]: r for r in coco["images"]}
    out_images: dict[Any, dict[str, Any]] = {}
    out_annotations = []
    for candidate in chosen:
        ann = annotations[candidate.ref_id]
        out_annotations.append(copy.deepcopy(ann))
        out_images.setdefault(ann["image_id"], copy.deepcopy(images[ann["image_id"]]))
    used = {int(a["category_id"]) for a in out_annotations}
    info = dict(coco.get("info") or {}) if isinstance(coco.get("info"), dict) else {}
    info["fiftyone_ntt"] = {
        "sampled_from": Path(args.annotations).name,
        "shots": args.shots,
        "seed": args.seed,
        "paper_rules": bool(args.paper_rules),
        "category_ids": category_ids,
    }
    output = {
        "info": info,
        "images": list(out_images.values()),
        "annotations": out_annotations,
        "categories": [c for c in coco["categories"] if int(c["id"]) in used],
    }
    if "licenses" in coco:
        output["licenses"] = coco["licenses"]
    write_json(args.out, output)
    for cid in category_ids:
        got = sum(1 for c in chosen if c.class_name == str(cid))
        available = chosen.available.get(str(cid), 0)
        flag = "" if got >= args.shots else "  (fewer than requested)"
        _info(args, f"{names[cid]} ({cid}): {got} of {args.shots}, {available} usable{flag}")
    _info(
        args,
        f"wrote {len(out_annotations)} references on {len(out_images)} images to {args.out}",
    )
    return 0


# ------------------------------------------------------------------------------------------
# build-bank


def cmd_build_bank(args: argparse.Namespace) -> int:
    """``build-bank``: embed the references of a COCO file into a bank file."""
    from fiftyone_ntt.coco import iter_references, load_coco
    from fiftyone_ntt.memory_bank import build_memory_bank

    image_dir = _existing_dir(args.images, "--images")
    coco = load_coco(args.references, image_dir=image_dir)
    selected = _select_categories(coco, args, args.references)
    # Internal label = rank of the sorted category id (method §2.1).
    category_ids = sorted(selected)
    names = {int(c["id"]): str(c["name"]) for c in coco["categories"]}
    usable = {int(a["category_id"]) for a in coco["annotations"] if not a.get("iscrowd", 0)}
    empty = [c for c in category_ids if c not in usable]
    if empty:
        raise UserError(
            f"class(es) {[f'{names[c]} ({c})' for c in empty]} have no non-crowd annotation in "
            f"{args.references}; add references or leave them out with --classes/--category-ids"
        )
    class_names = [names[c] for c in category_ids]
    config = _config(args)

    references = list(iter_references(coco, image_dir, category_ids=category_ids))
    encoder = _load_encoder(args, config)
    proposer = None
    box_only = sum(r.mask is None for r in references)
    if box_only:
        _info(args, f"{box_only} reference(s) have no mask: segmenting their boxes with SAM2")
        proposer = _load_proposer(args, config)

    bar = _progress(args, len(references), "embedding references", unit="ref")

    def progress(done: int, total: int) -> None:
        bar.update(done - bar.n)

    metadata = {
        "category_ids": category_ids,
        "categories": [{"id": c, "name": names[c]} for c in category_ids],
        "references_file": Path(args.references).name,
    }
    sampling = (
        (coco.get("info") or {}).get("fiftyone_ntt") if isinstance(coco.get("info"), dict) else None
    )
    if sampling:
        metadata["sampling"] = sampling
    try:
        bank = build_memory_bank(
            references,
            encoder,
            proposer,
            config=config,
            class_names=class_names,
            metadata=metadata,
            progress=progress,
        )
    except ValueError as error:  # bad references (e.g. a mask that misses its box)
        raise UserError(f"{args.references}: {error}") from None
    finally:
        bar.close()
    bank.save(args.out)
    shots = ", ".join(f"{name}: {k}" for name, k in bank.shots_per_class().items())
    _info(args, f"classes (label order): {shots}")
    _info(args, f"wrote memory bank {args.out} (fingerprint {bank.fingerprint[:12]})")
    return 0


# ------------------------------------------------------------------------------------------
# predict


def _folder_images(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )


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
        paths = _folder_images(_existing_dir(args.images, "--images"))
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
    from fiftyone_ntt.coco import (
        CocoFormatError,
        load_coco,
        load_record_image,
        predictions_to_coco,
        write_json,
    )
    from fiftyone_ntt.images import ImageLoadError, load_image
    from fiftyone_ntt.memory_bank import MemoryBank
    from fiftyone_ntt.segmenter import Segmenter

    if args.targets and args.paths:
        raise UserError("give either --targets or image paths, not both")
    bank = MemoryBank.load(args.bank)
    targets_coco = None
    jobs: list[tuple[Any, Path | None, dict[str, Any] | None, str]] = []
    mapping: list[dict[str, Any]] | None = None
    if args.targets:
        image_dir = _existing_dir(args.images, "--images")
        targets_coco = load_coco(args.targets, require=("images",))
        for record in targets_coco["images"]:
            name = str(record.get("file_name") or "")
            jobs.append((record["id"], image_dir, record, name))
    else:
        mapping = []
        for i, path in enumerate(_bare_targets(args), start=1):
            jobs.append((i, None, None, str(path)))
    category_ids = _category_ids_for(bank, targets_coco)
    if targets_coco is not None and "categories" in targets_coco:
        known = {int(c["id"]) for c in targets_coco["categories"]}
        absent = [c for c in category_ids if c not in known]
        if absent:
            _info(
                args,
                f"warning: category ids {absent} of the bank are not in {args.targets}; "
                "their detections will not be evaluated against it",
            )

    config = _config(args)
    encoder = _load_encoder(args, config)
    try:
        bank.check_encoder(encoder.identity)
    except ValueError as error:
        raise UserError(str(error)) from None
    proposer = _load_proposer(args, config)
    try:
        segmenter = Segmenter(encoder, proposer, bank, config)
    except ValueError as error:  # settings that do not fit the bank
        raise UserError(str(error)) from None

    results: list[dict[str, Any]] = []
    failures: list[tuple[Any, str, str]] = []
    bar = _progress(args, len(jobs), "predicting")
    try:
        for image_id, image_dir, record, name in jobs:
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
                failures.append((image_id, name, str(error)))
                bar.update(1)
                continue
            if mapping is not None:
                mapping.append(
                    {
                        "id": image_id,
                        "file_name": name,
                        "width": int(image.shape[1]),
                        "height": int(image.shape[0]),
                    }
                )
            predictions = segmenter.predict(image)
            results.extend(
                predictions_to_coco(predictions, image_id, category_ids, config.box_convention)
            )
            bar.update(1)
    finally:
        bar.close()

    write_json(args.out, results)
    if mapping is not None:
        mapping_path = _mapping_path(args.out)
        categories = [
            {"id": c, "name": n} for c, n in zip(category_ids, bank.class_names, strict=True)
        ]
        write_json(mapping_path, {"images": mapping, "categories": categories}, indent=1)
        _info(args, f"wrote the image id mapping to {mapping_path}")
    done = len(jobs) - len(failures)
    _info(args, f"wrote {len(results)} detections on {done} images to {args.out}")
    if failures:
        _info(args, f"{len(failures)} of {len(jobs)} images could not be read and were skipped:")
        for image_id, name, reason in failures:
            _info(args, f"  image {image_id} ({name}): {reason}")
        return 0 if args.ignore_errors else 1
    return 0


def _mapping_path(out: str) -> Path:
    path = Path(out)
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    return path.with_name(f"{stem}.images.json")


# ------------------------------------------------------------------------------------------
# evaluate


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``evaluate``: print (and optionally save) the COCO AP table."""
    from fiftyone_ntt.coco import evaluate, format_table, load_coco, load_results, write_json

    image_dir = _existing_dir(args.images, "--images") if args.images else None
    gt = load_coco(args.gt, image_dir=image_dir)
    results = load_results(args.results)
    category_ids = None
    if args.classes or args.category_ids:
        category_ids = _select_categories(gt, args, args.gt)
    metrics = evaluate(gt, results, category_ids=category_ids, verbose=args.verbose)
    print(format_table(metrics))
    if args.json:
        write_json(args.json, metrics, indent=2)
        _info(args, f"wrote {args.json}")
    return 0


# ------------------------------------------------------------------------------------------
# entry point


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that are the user's input problems, not bugs."""
    from fiftyone_ntt.coco import CocoFormatError
    from fiftyone_ntt.images import ImageLoadError
    from fiftyone_ntt.sampling import SamplingError

    errors: list[type[BaseException]] = [
        UserError,
        CocoFormatError,
        ImageLoadError,
        SamplingError,
        FileNotFoundError,
        IsADirectoryError,
        PermissionError,
    ]
    try:
        from fiftyone_ntt.memory_bank import BankFormatError, EncoderMismatchError

        errors += [BankFormatError, EncoderMismatchError]
    except ImportError:  # pragma: no cover - the core is always there in a release
        pass
    return tuple(errors)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``fiftyone-ntt`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _show_model_recognition(quiet=args.quiet)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug or not isinstance(error, _user_errors()):
            raise
        print(f"{PROG}: error: {_message(error)}", file=sys.stderr)
        return 2


def _show_model_recognition(*, quiet: bool) -> None:
    """Print what the model loaders recognised (e.g. "SAM 2.0 hiera_large in <file>"): users
    rename checkpoint files, so they should see what their file was taken for."""
    import logging

    log = logging.getLogger("fiftyone_ntt.models")
    if quiet or log.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)


def _message(error: BaseException) -> str:
    if isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError)) and (
        error.filename is not None
    ):
        return f"{error.strerror}: {error.filename!r}"
    return str(error)


if __name__ == "__main__":
    sys.exit(main())
