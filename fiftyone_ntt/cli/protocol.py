"""``fiftyone-ntt protocol {coco-fsod,voc,cd-fsod,custom} ...``: the paper's benchmarks and
custom COCO data through FiftyOne (:mod:`fiftyone_ntt.fiftyone.protocols`).

The arguments are defined here, in the FiftyOne-free core, so that ``fiftyone-ntt --help``
and ``fiftyone-ntt protocol --help`` work without FiftyOne; FiftyOne is imported only when a
protocol runs. ``python -m fiftyone_ntt.fiftyone.protocols`` uses the same definitions.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["PROTOCOLS", "add_protocol_parsers", "cmd_protocol", "main", "register", "run_from_args"]

#: The protocols, with their one-line help.
PROTOCOLS = {
    "coco-fsod": "COCO-FSOD, 20 novel classes (docs/method.md §2)",
    "voc": "PASCAL VOC few-shot split (nAP50)",
    "cd-fsod": "a CD-FSOD dataset ({K}_shot.json / test.json)",
    "custom": "custom COCO references + targets",
}


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prefix", help="dataset name prefix (default ntt-<protocol>)")
    p.add_argument("--max-samples", type=int, help="only the first N target images")
    p.add_argument(
        "--preset",
        default="paper",
        help="configuration preset (default: paper, the published models: SAM 2.0 Hiera-L "
        "from facebook/sam2-hiera-large, DINOv2 ViT-L/14 from facebook/dinov2-large)",
    )
    p.add_argument(
        "--sam2",
        metavar="ID_OR_PATH",
        help="SAM 2 weights instead of the preset's: hub id, local folder, or Meta's "
        "original file (e.g. checkpoints/sam2_hiera_large.pt)",
    )
    p.add_argument(
        "--dinov2",
        metavar="ID_OR_PATH",
        help="DINOv2 weights instead of the preset's: hub id, local folder, or Meta's "
        "original file (e.g. checkpoints/dinov2/dinov2_vitl14_pretrain.pth)",
    )
    p.add_argument("--points-per-side", type=int, help="SAM 2 prompt grid (default 32)")
    p.add_argument("--device", help="cpu, cuda, cuda:1, ... (default auto)")
    p.add_argument("--output-dir", default="ntt_protocols", help="results and report")
    p.add_argument("--export-pngs", type=int, default=0, help="side-by-side PNGs of N images")
    p.add_argument("--vis-threshold", type=float, default=0.5, help="PNG score threshold")
    p.add_argument(
        "--fiftyone-eval",
        action="store_true",
        help="also run FiftyOne's evaluator (Model Evaluation panel in the App)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="re-segment everything (after changing the preset, models or settings)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def add_protocol_parsers(
    sub: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser] = ()
) -> None:
    """Add one subparser per protocol to ``sub`` (``dest`` must be ``protocol``)."""
    parents = list(parents)
    p = sub.add_parser("coco-fsod", help=PROTOCOLS["coco-fsod"], parents=parents)
    p.add_argument("coco_root", help="folder with train2017/, val2017/, annotations/")
    p.add_argument("--shots", type=int, default=10, choices=(1, 2, 3, 5, 10, 30))
    p.add_argument("--seed", type=int, default=33)
    _common(p)

    p = sub.add_parser("voc", help=PROTOCOLS["voc"], parents=parents)
    p.add_argument("voc_root")
    p.add_argument("--split", type=int, default=1, choices=(1, 2, 3))
    p.add_argument("--shots", type=int, default=1)
    p.add_argument("--seed", type=int, default=33)
    p.add_argument("--train-json", help="default annotations/voc0712_trainval_with_segm.json")
    p.add_argument("--test-json", help="default annotations/voc07_test_with_segm.json")
    p.add_argument("--train-images", help="default JPEGImages/")
    p.add_argument("--test-images", help="default JPEGImages/")
    _common(p)

    p = sub.add_parser("cd-fsod", help=PROTOCOLS["cd-fsod"], parents=parents)
    p.add_argument("root", help="folder with train/, test/, annotations/")
    p.add_argument("--shots", type=int, default=1)
    p.add_argument("--name", help="dataset name (default: the folder's name)")
    _common(p)

    p = sub.add_parser("custom", help=PROTOCOLS["custom"], parents=parents)
    p.add_argument("refs_json", help="references: every annotation is one")
    p.add_argument("targets_json", help="targets and their ground truth")
    p.add_argument("images", help="image folder (of the references, and targets by default)")
    p.add_argument("--target-images", help="image folder of the targets")
    p.add_argument("--name", default="custom")
    _common(p)


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the ``protocol`` subcommand (with one sub-subcommand per protocol) to ``sub``."""
    p = sub.add_parser(
        parents=[common],
        name="protocol",
        help="run a paper protocol or custom COCO data through FiftyOne (needs fiftyone)",
        description="Run a paper protocol (COCO-FSOD, PASCAL VOC, CD-FSOD) or custom COCO "
        "data through FiftyOne: import, references, bank, segment, evaluate; rerunning "
        "resumes. Same as `python -m fiftyone_ntt.fiftyone.protocols`. The default preset "
        "'paper' downloads SAM 2.0 Hiera-L (facebook/sam2-hiera-large: Meta's "
        "sam2_hiera_large.pt, ~898 MB) and DINOv2 ViT-L/14 (facebook/dinov2-large, ~1.2 GB) "
        "on first use; --sam2/--dinov2 take local files instead.",
    )
    protocols = p.add_subparsers(dest="protocol", metavar="PROTOCOL")
    protocols.required = True
    add_protocol_parsers(protocols, parents=[common])
    p.set_defaults(func=cmd_protocol)


def cmd_protocol(args: argparse.Namespace) -> int:
    """``protocol``: import FiftyOne now, then run (:func:`run_from_args`)."""
    from fiftyone_ntt.cli._common import UserError
    from fiftyone_ntt.files import OutputPathError, check_writable

    try:  # before FiftyOne and the models load
        check_writable(args.output_dir, what="--output-dir", folder=True)
    except OutputPathError as error:
        raise UserError(error.strerror) from None
    try:  # deferred: FiftyOne is imported only when a protocol runs
        import fiftyone_ntt.fiftyone.protocols.run  # noqa: F401
    except ImportError as error:
        raise UserError(
            f"`fiftyone-ntt protocol` needs FiftyOne ({error}); install it with "
            "`pip install fiftyone`"
        ) from None
    return run_from_args(args, prog="fiftyone-ntt")


def _parser() -> argparse.ArgumentParser:
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
    # deferred: the specs load with the FiftyOne adapter (see run_from_args)
    from fiftyone_ntt.fiftyone.protocols.specs import (
        cd_fsod_spec,
        coco_fsod_spec,
        custom_spec,
        voc_spec,
    )

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
    # deferred: the protocols import FiftyOne, which `--help` and the checks before a run
    # must not need
    from fiftyone_ntt.fiftyone.protocols.run import run_protocol
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
