"""``fiftyone-ntt evaluate``: pycocotools bbox/segm AP of a results file."""

from __future__ import annotations

import argparse

from fiftyone_ntt.cli._common import existing_dir, info, select_categories
from fiftyone_ntt.cli._options import add_class_options
from fiftyone_ntt.cli._outputs import Output, add_overwrite_option, check_outputs

__all__ = ["cmd_evaluate", "register"]


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the ``evaluate`` subcommand to ``sub``."""
    p = sub.add_parser(
        parents=[common],
        name="evaluate",
        help="COCO bbox/segm AP of a results file",
        description="pycocotools COCOeval on every ground-truth image (docs/method.md §6). With "
        "--classes/--category-ids the ground truth keeps only those classes' annotations "
        "(docs/method.md §2.4). Box-only ground truth is evaluated for bbox only.",
    )
    p.add_argument("results", metavar="RESULTS_JSON", help="COCO results file")
    p.add_argument("--gt", required=True, metavar="GT_JSON", help="COCO ground-truth file")
    add_class_options(p, "evaluate only these classes")
    p.add_argument(
        "--images", metavar="DIR", help="image folder, to repair records with width/height 0"
    )
    p.add_argument("--json", metavar="OUT", help="also write the metrics to this JSON file")
    p.add_argument("--verbose", action="store_true", help="show pycocotools' own output")
    add_overwrite_option(p)
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``evaluate``: print (and optionally save) the COCO AP table."""
    from fiftyone_ntt.coco import evaluate, format_table, load_coco, load_results, write_json

    if args.json:
        check_outputs(
            args,
            [Output("--json", args.json, "metrics")],
            [("RESULTS_JSON", args.results), ("--gt", args.gt)],
        )
    image_dir = existing_dir(args.images, "--images") if args.images else None
    gt = load_coco(args.gt, image_dir=image_dir)
    results = load_results(args.results)
    category_ids = None
    if args.classes or args.category_ids:
        category_ids = select_categories(gt, args, args.gt)
    metrics = evaluate(gt, results, category_ids=category_ids, verbose=args.verbose)
    print(format_table(metrics))
    if args.json:
        write_json(args.json, metrics, indent=2)
        info(args, f"wrote {args.json}")
    return 0
