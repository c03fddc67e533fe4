"""``fiftyone-ntt build-bank``: embed the reference instances of a COCO file into a bank."""

from __future__ import annotations

import argparse
from pathlib import Path

from fiftyone_ntt.cli._common import (
    UserError,
    config_from_args,
    existing_dir,
    info,
    progress_bar,
    select_categories,
    warn,
)
from fiftyone_ntt.cli._models import load_encoder, load_proposer
from fiftyone_ntt.cli._options import add_class_options, add_model_options
from fiftyone_ntt.cli._outputs import Output, add_overwrite_option, check_outputs

__all__ = ["cmd_build_bank", "register"]


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the ``build-bank`` subcommand to ``sub``."""
    p = sub.add_parser(
        parents=[common],
        name="build-bank",
        help="embed reference instances into a memory bank file",
        description="Embed the annotated instances of a COCO file into a memory bank "
        "(docs/method.md §3-§4). Instances with polygons or RLE use their mask; box-only ones "
        "are segmented by SAM2 box prompting. Classes in category id order (docs/method.md §2.1); "
        "the category ids are stored in the bank.",
    )
    p.add_argument("references", metavar="REF_JSON", help="COCO file of the reference instances")
    p.add_argument("--images", required=True, metavar="DIR", help="folder of the reference images")
    p.add_argument("--out", required=True, metavar="BANK", help="output .safetensors file")
    add_class_options(p, "use only these classes (default: all with annotations)")
    p.add_argument(
        "--allow-missing-classes",
        action="store_true",
        help="without --classes/--category-ids every listed category is used, and a category "
        "with no usable (non-crowd) annotation is refused by default, naming it; with this "
        "flag such categories are left out of the bank with a warning that names them",
    )
    p.add_argument(
        "--negatives",
        metavar="NEG_JSON",
        help="COCO file of negative instances: things that look like a class but are not it "
        "(e.g. false positives). An annotation of a category named like a bank class is a "
        "negative of that class; one of a category named 'background' (see "
        "--background-category) is a global negative; others are skipped with a warning. At "
        "prediction, a proposal of class c is dropped when its best cosine to the negatives of "
        "c and the global ones is >= its class score + negative_margin (default 0)",
    )
    p.add_argument(
        "--negatives-images",
        metavar="DIR",
        help="folder of the negatives' images (default: --images)",
    )
    p.add_argument(
        "--background-category",
        action="append",
        metavar="NAME",
        help="category name of global negatives in --negatives (repeatable; default: background)",
    )
    p.add_argument(
        "--skip-invalid-annotations",
        action="store_true",
        help="annotations that cannot be references (a category missing from 'categories', a "
        "polygon with fewer than 3 points or an odd number of coordinates, an empty mask, a "
        "NaN or negative-size box) are refused by default, listing their ids; with this flag "
        "they are left out and listed in a warning",
    )
    add_model_options(p)
    add_overwrite_option(p)
    p.set_defaults(func=cmd_build_bank)


def _negatives(args: argparse.Namespace, class_names: list[str], image_dir: Path):
    """The usable negatives of ``--negatives`` (ids prefixed ``neg:``), and the background
    labels; warns about the skipped ones."""
    import dataclasses

    from fiftyone_ntt.bank_build import split_negatives
    from fiftyone_ntt.coco import load_coco

    background = tuple(args.background_category or ("background",))
    if not args.negatives:
        return [], background
    folder = existing_dir(args.negatives_images or str(image_dir), "--negatives-images")
    coco = load_coco(args.negatives, image_dir=folder)
    found = [
        dataclasses.replace(ref, ref_id=f"neg:{ref.ref_id}")
        for ref in _references(args, args.negatives, coco, folder)
    ]
    if not found:
        raise UserError(
            f"{args.negatives} has no (non-crowd) annotation; add the negative instances, or "
            "leave --negatives out"
        )
    usable, skipped = split_negatives(found, class_names, background)
    if skipped:
        counts = ", ".join(f"{name}: {n}" for name, n in sorted(skipped.items()))
        warn(
            f"skipped negatives of categories that are neither a bank class {class_names} nor "
            f"a background category {list(background)} ({counts}); rename their category, or "
            "pass --background-category"
        )
    return usable, background


def _references(args, source, coco, image_dir, category_ids=None) -> list:
    """The references of a COCO file; annotations that cannot be references are refused,
    or with --skip-invalid-annotations left out with a warning naming them."""
    import warnings

    from fiftyone_ntt.coco import InvalidAnnotationsWarning, iter_references

    skip = bool(getattr(args, "skip_invalid_annotations", False))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InvalidAnnotationsWarning)
        refs = list(iter_references(coco, image_dir, category_ids=category_ids, skip_invalid=skip))
    for item in caught:
        if issubclass(item.category, InvalidAnnotationsWarning):
            warn(f"{source}: {item.message}")
        else:
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
    return refs


def cmd_build_bank(args: argparse.Namespace) -> int:
    """``build-bank``: embed the references of a COCO file into a bank file."""
    from fiftyone_ntt.bank_build import build_memory_bank
    from fiftyone_ntt.coco import image_path, load_coco

    image_dir = existing_dir(args.images, "--images")
    coco = load_coco(args.references, image_dir=image_dir)
    check_outputs(
        args,
        [Output("--out", args.out, "bank")],
        [
            ("REF_JSON", args.references),
            ("--negatives", args.negatives),
            *(("image", image_path(r, image_dir)) for r in coco["images"]),
        ],
    )
    selected = select_categories(coco, args, args.references)
    names = {int(c["id"]): str(c["name"]) for c in coco["categories"]}
    usable = {int(a["category_id"]) for a in coco["annotations"] if not a.get("iscrowd", 0)}
    if not (args.classes or args.category_ids):
        # The default selection is every listed category: one without a usable reference
        # used to vanish from the bank without a word (issue 9 §2).
        listed = [int(c["id"]) for c in coco["categories"]]
        missing = [f"{names[c]} ({c})" for c in listed if c not in usable]
        if missing and not args.allow_missing_classes:
            raise UserError(
                f"class(es) {missing} are listed in {args.references} but have no usable "
                "(non-crowd) reference; add references, choose classes with "
                "--classes/--category-ids, or pass --allow-missing-classes to leave them out"
            )
        if missing:
            warn(f"left out class(es) without a usable reference: {', '.join(missing)}")
        selected = [c for c in selected if c in usable]
        if not selected:
            raise UserError(f"{args.references} has no usable (non-crowd) reference at all")
    # Internal label = rank of the sorted category id (docs/method.md §2.1).
    category_ids = sorted(selected)
    empty = [c for c in category_ids if c not in usable]
    if empty:
        raise UserError(
            f"class(es) {[f'{names[c]} ({c})' for c in empty]} have no non-crowd annotation in "
            f"{args.references}; add references or leave them out with --classes/--category-ids"
        )
    class_names = [names[c] for c in category_ids]
    config = config_from_args(args)

    references = _references(args, args.references, coco, image_dir, category_ids)
    negatives, background = _negatives(args, class_names, image_dir)
    encoder = load_encoder(args, config)
    proposer = None
    box_only = sum(r.mask is None for r in [*references, *negatives])
    if box_only:
        info(args, f"{box_only} reference(s) have no mask: segmenting their boxes with SAM2")
        proposer = load_proposer(args, config)

    total = len(references) + len(negatives)
    bar = progress_bar(args, total, "embedding references", unit="ref")

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
            negatives=negatives,
            background_labels=background,
        )
    except ValueError as error:  # bad references (e.g. a mask that misses its box)
        source = args.references if not negatives else f"{args.references} / {args.negatives}"
        raise UserError(f"{source}: {error}") from None
    finally:
        bar.close()
    bank.save(args.out)
    shots = ", ".join(f"{name}: {k}" for name, k in bank.shots_per_class().items())
    info(args, f"classes (label order): {shots}")
    if bank.num_negatives:
        per_class = ", ".join(f"{n}: {k}" for n, k in bank.negatives_per_class().items())
        info(
            args,
            f"negatives: {per_class or 'none of a class'}; global: {bank.num_global_negatives}",
        )
    info(args, f"wrote memory bank {args.out} (fingerprint {bank.fingerprint[:12]})")
    return 0
