"""``python -m fiftyone_ntt.fiftyone.protocols`` and ``fiftyone-ntt protocol``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from fiftyone_ntt.fiftyone.protocols.run import run_protocol
from fiftyone_ntt.fiftyone.protocols.specs import (
    cd_fsod_spec,
    coco_fsod_spec,
    custom_spec,
    voc_spec,
)


def _parser() -> argparse.ArgumentParser:
    from fiftyone_ntt.cli.protocol import add_protocol_parsers

    parser = argparse.ArgumentParser(
        prog="python -m fiftyone_ntt.fiftyone.protocols",
        description="Run a paper protocol or a custom COCO dataset through FiftyOne "
        "(import, references, bank, segment, evaluate); rerunning resumes. The same as "
        "`fiftyone-ntt protocol`.",
    )
    sub = parser.add_subparsers(dest="protocol", required=True)
    add_protocol_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m fiftyone_ntt.fiftyone.protocols`` with ``argv``; the exit code."""
    return run_from_args(_parser().parse_args(argv), prog="error")


def _spec(args: argparse.Namespace) -> Any:
    if args.protocol == "coco-fsod":
        return coco_fsod_spec(args.coco_root, args.shots, args.seed)
    if args.protocol == "voc":
        return voc_spec(
            args.voc_root, args.split, args.shots, args.seed,
            train_json=args.train_json, test_json=args.test_json,
            train_images=args.train_images, test_images=args.test_images,
        )  # fmt: skip
    if args.protocol == "cd-fsod":
        return cd_fsod_spec(args.root, args.shots, name=args.name)
    return custom_spec(
        args.refs_json, args.targets_json, args.images,
        target_images=args.target_images, name=args.name,
    )  # fmt: skip


def run_from_args(args: argparse.Namespace, *, prog: str) -> int:
    """Run the protocol the parsed ``args`` name; errors print as ``<prog>: ...`` (exit 2).

    ``prog`` is ``"error"`` for ``python -m`` (``error: ...``) and ``"fiftyone-ntt"`` for
    the main command (``fiftyone-ntt: error: ...``).
    """
    from fiftyone_ntt.models.checkpoints import ModelNotAvailableError

    label = "error" if prog == "error" else f"{prog}: error"
    try:
        report = run_protocol(
            _spec(args),
            prefix=args.prefix,
            max_samples=args.max_samples,
            preset=args.preset,
            points_per_side=args.points_per_side,
            device=args.device,
            output_dir=args.output_dir,
            export_pngs=args.export_pngs,
            vis_threshold=args.vis_threshold,
            fiftyone_eval=args.fiftyone_eval,
            overwrite=args.overwrite,
            sam2=args.sam2,
            dinov2=args.dinov2,
        )
    except (ValueError, FileNotFoundError, KeyError, ModelNotAvailableError) as error:
        print(f"{label}: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k != "evaluation"}, indent=1))
    else:
        print(report["table"])
        print(f"report: {report['report_file']}")
    return 0
