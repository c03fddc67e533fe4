"""``fiftyone-ntt sample-references``: K seeded reference instances per class of a COCO file."""

from __future__ import annotations

import argparse
import copy
import warnings
from pathlib import Path

from fiftyone_ntt.cli._common import UserError, existing_dir, info, select_categories
from fiftyone_ntt.cli._options import add_class_options, positive_int
from fiftyone_ntt.cli._outputs import Output, add_overwrite_option, check_outputs

__all__ = ["cmd_sample_references", "register"]


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the ``sample-references`` subcommand to ``sub``."""
    p = sub.add_parser(
        parents=[common],
        name="sample-references",
        help="pick K reference instances per class from a COCO file (seeded)",
        description="Pick K reference instances per class, as the paper's sampler does "
        "(docs/method.md §2.2): one seeded shuffle per class, skipping crowd regions, boxes under "
        "32 px or within 10 px of a border (--paper-rules, on by default) and images already "
        "used for the class. Writes a COCO file with the chosen images, annotations and "
        "categories, in sampled order.",
    )
    p.add_argument("annotations", metavar="ANN_JSON", help="COCO annotation file to sample from")
    p.add_argument("--shots", type=positive_int, required=True, help="references per class (K)")
    p.add_argument("--seed", type=int, required=True, help="random seed (the paper used 33)")
    add_class_options(p, "classes to sample (default: every category with annotations)")
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
    add_overwrite_option(p)
    p.set_defaults(func=cmd_sample_references)


def cmd_sample_references(args: argparse.Namespace) -> int:
    """``sample-references``: write a COCO file of K sampled references per class."""
    from fiftyone_ntt.coco import load_coco, write_json
    from fiftyone_ntt.sampling import (
        SamplingShortfallWarning,
        candidates_from_coco,
        sample_references,
    )

    check_outputs(args, [Output("--out", args.out, "references")], [("ANN_JSON", args.annotations)])
    image_dir = existing_dir(args.images, "--images") if args.images else None
    coco = load_coco(args.annotations, image_dir=image_dir)
    category_ids = select_categories(coco, args, args.annotations)
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
    out_images: dict = {}
    out_annotations = []
    for candidate in chosen:
        ann = annotations[candidate.ref_id]
        out_annotations.append(copy.deepcopy(ann))
        out_images.setdefault(ann["image_id"], copy.deepcopy(images[ann["image_id"]]))
    used = {int(a["category_id"]) for a in out_annotations}
    meta = dict(coco.get("info") or {}) if isinstance(coco.get("info"), dict) else {}
    meta["fiftyone_ntt"] = {
        "sampled_from": Path(args.annotations).name,
        "shots": args.shots,
        "seed": args.seed,
        "paper_rules": bool(args.paper_rules),
        "category_ids": category_ids,
    }
    output = {
        "info": meta,
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
        info(args, f"{names[cid]} ({cid}): {got} of {args.shots}, {available} usable{flag}")
    info(
        args,
        f"wrote {len(out_annotations)} references on {len(out_images)} images to {args.out}",
    )
    return 0
