"""Argument types and option groups shared by the subcommands."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = [
    "add_class_options",
    "add_common_options",
    "add_model_options",
    "fraction",
    "id_list",
    "name_list",
    "positive_int",
]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} must lie in [0, 1]")
    return value


def name_list(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one class name, e.g. 'cat,dog'")
    return names


def id_list(text: str) -> list[int]:
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


def add_class_options(parser: argparse.ArgumentParser, what: str) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--classes",
        type=name_list,
        metavar="NAME,NAME",
        help=f"{what}: comma-separated category names",
    )
    group.add_argument(
        "--category-ids",
        type=id_list,
        metavar="ID,ID",
        help=f"{what}: comma-separated COCO category ids",
    )


def add_model_options(
    parser: argparse.ArgumentParser, *, sam2: bool = True, preset_default: str = "default"
) -> None:
    parser.add_argument(
        "--preset",
        default=preset_default,
        help="settings preset: 'paper' (SAM 2.0-L + DINOv2-L, 1-px-short boxes, exactly the "
        "published setup), 'default' (SAM 2.1-L + DINOv2-L), 'fast' (SAM 2.1-T + DINOv2-S, for "
        "CPUs), 'accurate' (SAM 2.1-L + DINOv3-L/16, a gated download); default: %(default)s",
    )
    parser.add_argument(
        "--dinov2",
        metavar="ID_OR_PATH",
        help="semantic encoder: DINOv2 or DINOv3 ViT hub id, local folder, or Meta's "
        "dinov2_vit*14*_pretrain.pth / dinov3_vit*16*_pretrain_*.pth (default: the preset's)",
    )
    if sam2:
        parser.add_argument(
            "--sam2",
            metavar="ID_OR_PATH",
            help="mask proposer: SAM 2/2.1 hub id, local folder or sam2*_hiera_*.pt, or EdgeTAM "
            "hub id/folder (default: the preset's)",
        )
    parser.add_argument(
        "--device",
        metavar="NAME",
        help="'auto' (default: CUDA when available), 'cpu', 'cuda', 'cuda:N', 'mps'",
    )
    parser.add_argument(
        "--precision",
        choices=("float32", "tf32", "bfloat16", "float16"),
        help="float32 is what the paper ran; bfloat16/float16 autocast on GPU (bfloat16 also "
        "on CPUs with native bf16: AVX512-BF16 or AMX), tf32 matmuls on GPU",
    )


def add_common_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--debug",
        action="store_true",
        default=default,
        help="show full tracebacks for user errors",
    )
    parser.add_argument(
        "--quiet", action="store_true", default=default, help="no progress bars or summaries"
    )
