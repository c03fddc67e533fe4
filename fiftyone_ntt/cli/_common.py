"""Shared pieces of the ``fiftyone-ntt`` subcommands: the user-error type, messages,
progress bars, folder checks, class selection and the settings of a run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = [
    "IMAGE_EXTENSIONS",
    "PROG",
    "TINY",
    "UserError",
    "config_from_args",
    "existing_dir",
    "info",
    "progress_bar",
    "select_categories",
    "warn",
]

PROG = "fiftyone-ntt"
#: Model option value that selects the tiny random-weight test models.
TINY = "tiny"
#: Files considered images when predicting on a folder.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class UserError(Exception):
    """A problem with the user's input: printed without a traceback, exit code 2."""


def progress_bar(args: argparse.Namespace, total: int, desc: str, unit: str = "img") -> Any:
    """A tqdm bar on stderr, hidden with ``--quiet``."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=args.quiet, file=sys.stderr)


def info(args: argparse.Namespace, message: str) -> None:
    """A progress or summary line on stderr; ``--quiet`` hides it (problems use
    :func:`warn`)."""
    if getattr(args, "quiet", False):
        return
    print(message, file=sys.stderr)


def warn(message: str) -> None:
    """A warning on stderr, shown even with ``--quiet``."""
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def existing_dir(path: str | None, option: str) -> Path:
    """``path`` as a folder that exists, else a :class:`UserError` naming ``option``."""
    if path is None:
        raise UserError(f"{option} DIR is required here; give the image folder")
    folder = Path(path)
    if not folder.is_dir():
        raise UserError(f"image folder {path!r} ({option}) does not exist; check the path")
    return folder


def select_categories(coco: dict[str, Any], args: argparse.Namespace, source: str) -> list[int]:
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


def config_from_args(args: argparse.Namespace) -> Any:
    """The preset of ``--preset`` with the model and inference options applied (through
    :func:`fiftyone_ntt.presets.resolve_config`, as Python and the App forms resolve it)."""
    from fiftyone_ntt.presets import resolve_config

    models: dict[str, Any] = {}
    names = {"dinov2": "encoder", "sam2": "proposer", "device": "device", "precision": "precision"}
    for key, name in names.items():
        value = getattr(args, key, None)
        if value is not None and value != TINY:
            models[name] = value
    changes: dict[str, Any] = {}
    keys = ("score_threshold", "max_detections", "box_convention", "points_per_side")
    for key in (*keys, "negative_margin"):
        value = getattr(args, key, None)
        if value is not None:
            changes[key] = value
    try:
        return resolve_config(args.preset, **models, **changes)
    except ValueError as error:  # unknown preset, an encoder that does not fit, a bad value
        raise UserError(str(error)) from None
