"""The argument parser of ``fiftyone-ntt``: common options plus one module per subcommand."""

from __future__ import annotations

import argparse

from fiftyone_ntt.cli import bank, evaluate, predict, protocol, references, weights
from fiftyone_ntt.cli._common import PROG
from fiftyone_ntt.cli._options import add_common_options

__all__ = ["SUBCOMMANDS", "build_parser"]

#: Modules that each add one or more subcommands with ``register(sub, common)``, in the
#: order ``--help`` lists them.
SUBCOMMANDS = (references, bank, predict, evaluate, weights, protocol)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``fiftyone-ntt`` (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="No Time to Train: training-free reference-based instance segmentation "
        "(SAM2 + DINOv2) on COCO-format data.",
    )
    add_common_options(parser, default=False)
    # The same options after the subcommand (``fiftyone-ntt predict ... --quiet``); SUPPRESS
    # keeps a subcommand from resetting a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    add_common_options(common, default=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in SUBCOMMANDS:
        module.register(sub, common)
    return parser
