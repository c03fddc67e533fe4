"""The one rule for the files a subcommand writes, checked before any model loads.

:func:`check_outputs` refuses, with exit code 2 and a message naming the path and the fix:

1. an output that is one of the command's inputs: the same path, or the same file through a
   symlink, ``..`` or a hard link (``--overwrite`` does not change this);
2. an output that cannot be written (:func:`fiftyone_ntt.files.check_writable`: a folder, a
   file where a parent folder should be, a read-only file, a folder we may not write in);
3. an existing output that is not ours, unless ``--overwrite``. Ours = a file of the kind the
   option writes, as fiftyone-ntt writes it, recognised by its content: a memory bank
   (safetensors with the fiftyone-ntt format marker), a COCO results list, a references file
   of ``sample-references`` (``info.fiftyone_ntt``), an ``evaluate --json`` metrics file, a
   ``predict`` image-id mapping, a ``predict --embeddings`` float16 ``.npy``. Such a file is replaced without asking (rerunning a command
   replaces its own output); anything else needs ``--overwrite``.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fiftyone_ntt.cli._common import UserError
from fiftyone_ntt.files import OutputPathError, check_writable

__all__ = ["OVERWRITE_HELP", "Output", "add_overwrite_option", "check_outputs"]

OVERWRITE_HELP = (
    "replace an existing output file of another kind (by default only a file of the same "
    "kind that fiftyone-ntt wrote, e.g. a previous run's output, is replaced; anything else is "
    "refused). An output that is one of the inputs, or read-only, is refused even so"
)

#: JSON files larger than this are not parsed to recognise them (ours are far smaller).
_MAX_PARSED = 64 * 1024 * 1024


@dataclass(frozen=True)
class Output:
    """A file a subcommand writes: the option that names it, the path, its kind (a key of
    :data:`KINDS`)."""

    option: str
    path: str | os.PathLike
    kind: str


def add_overwrite_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--overwrite`` (see :data:`OVERWRITE_HELP`) to a subcommand that writes files."""
    parser.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)


def check_outputs(
    args: argparse.Namespace,
    outputs: Iterable[Output],
    inputs: Iterable[tuple[str, str | os.PathLike | None]],
) -> None:
    """Refuse outputs that are inputs, cannot be written, or are existing files not ours
    (unless ``--overwrite``); see the module docstring. ``inputs`` are ``(label, path)``
    pairs; ``None`` paths are skipped. Raises :class:`UserError`."""
    outputs = list(outputs)
    named = [(label, path) for label, path in inputs if path is not None]
    for output in outputs:
        _refuse_input(output, named)
        try:
            check_writable(output.path, what=output.option)
        except OutputPathError as error:
            raise UserError(error.strerror) from None
        _refuse_foreign(output, overwrite=bool(getattr(args, "overwrite", False)))


def _refuse_input(output: Output, inputs: list[tuple[str, str | os.PathLike]]) -> None:
    real = os.path.realpath(output.path)
    try:
        out_stat: os.stat_result | None = os.stat(real)
    except OSError:
        out_stat = None
    for label, path in inputs:
        same = os.path.realpath(path) == real
        if not same and out_stat is not None:
            try:
                same = os.path.samestat(out_stat, os.stat(path))
            except OSError:
                same = False
        if same:
            raise UserError(
                f"{output.option} {str(output.path)!r} is the same file as the input {label} "
                f"{str(path)!r}; writing it would destroy the input: choose another output "
                "path (--overwrite does not apply to inputs)"
            )


def _refuse_foreign(output: Output, *, overwrite: bool) -> None:
    path = Path(output.path)
    if overwrite or not path.exists():
        return
    kind = KINDS[output.kind]
    if kind.is_ours(path):
        return
    raise UserError(
        f"{output.option} {str(path)!r} exists and is not a {kind.name} written by "
        "fiftyone-ntt; choose another path, or pass --overwrite to replace it"
    )


# ------------------------------------------------------------------------------------------
# what our files look like


def _json(path: Path) -> Any:
    """The parsed JSON of a small file, else ``None``."""
    try:
        if path.stat().st_size > _MAX_PARSED:
            return None
        with path.open("rb") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _marker(data: Any) -> dict[str, Any]:
    info = data.get("info") if isinstance(data, dict) else None
    marker = info.get("fiftyone_ntt") if isinstance(info, dict) else None
    return marker if isinstance(marker, dict) else {}


def _is_bank(path: Path) -> bool:
    """A safetensors file whose metadata names the fiftyone-ntt bank format (header only)."""
    # deferred: torch (the bank file module) loads only when this runs
    from fiftyone_ntt.bank_file import FORMAT_NAME

    try:
        with path.open("rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            if size > _MAX_PARSED:
                return False
            header = json.loads(f.read(size))
    except (OSError, ValueError, struct.error):
        return False
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return isinstance(meta, dict) and meta.get("format") == FORMAT_NAME


def _is_results(path: Path) -> bool:
    """A COCO results list: ``[]`` or ``[{"image_id": ...``. Results can be hundreds of MB,
    so only the start is read."""
    try:
        with path.open("rb") as f:
            head = f.read(4096).lstrip()
    except OSError:
        return False
    if not head.startswith(b"["):
        return False
    rest = head[1:].lstrip()
    return rest.startswith(b"]") or (rest.startswith(b"{") and b'"image_id"' in rest)


def _is_references(path: Path) -> bool:
    return "sampled_from" in _marker(_json(path))


def _is_metrics(path: Path) -> bool:
    data = _json(path)
    return isinstance(data, dict) and "iou_types" in data and "num_results" in data


def _is_mapping(path: Path) -> bool:
    data = _json(path)
    if "image_mapping_for" in _marker(data):
        return True
    # Mapping files written before the marker: exactly these keys and records.
    return (
        isinstance(data, dict)
        and set(data) == {"images", "categories"}
        and isinstance(data["images"], list)
        and isinstance(data["categories"], list)
        and all(_keys(r) == {"id", "file_name", "width", "height"} for r in data["images"])
        and all(_keys(c) == {"id", "name"} for c in data["categories"])
    )


def _is_embeddings(path: Path) -> bool:
    """A ``predict --embeddings`` file: a 2-D float16 ``.npy`` array."""
    import numpy as np

    try:
        with path.open("rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_2_0 if major >= 2 else None
            shape, _, dtype = (read or np.lib.format.read_array_header_1_0)(f)
    except (OSError, ValueError):
        return False
    return len(shape) == 2 and np.dtype(dtype) == np.float16


def _keys(record: Any) -> set[str]:
    return set(record) if isinstance(record, dict) else set()


@dataclass(frozen=True)
class _Kind:
    name: str
    is_ours: Callable[[Path], bool]


#: The kinds of files the subcommands write, and how each is recognised.
KINDS = {
    "bank": _Kind("memory bank", _is_bank),
    "results": _Kind("COCO results file", _is_results),
    "references": _Kind("references file (sample-references)", _is_references),
    "metrics": _Kind("metrics file (evaluate --json)", _is_metrics),
    "mapping": _Kind("image id mapping (predict)", _is_mapping),
    "embeddings": _Kind("embeddings file (predict --embeddings)", _is_embeddings),
}
