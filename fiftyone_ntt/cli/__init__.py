"""The ``fiftyone-ntt`` command: the whole method on COCO-format files, without FiftyOne.

Four subcommands replace the research code's three Lightning stages and their dotted flags
(docs/method.md §9.4)::

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

Layout: :mod:`.parser` builds the parser from one module per subcommand group
(:mod:`.references`, :mod:`.bank`, :mod:`.predict`, :mod:`.evaluate`), which share
:mod:`._options` (argument types), :mod:`._common` (errors, messages, settings) and
:mod:`._models` (model loading).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from fiftyone_ntt.cli._common import PROG, UserError
from fiftyone_ntt.cli.parser import build_parser
from fiftyone_ntt.files import OutputPathError

__all__ = ["UserError", "build_parser", "main"]


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that are the user's input problems, not bugs."""
    from fiftyone_ntt.coco import CocoFormatError
    from fiftyone_ntt.images import ImageLoadError
    from fiftyone_ntt.sampling import SamplingError

    errors: list[type[BaseException]] = [
        UserError,
        OutputPathError,
        CocoFormatError,
        ImageLoadError,
        SamplingError,
        FileNotFoundError,
        IsADirectoryError,
        PermissionError,
    ]
    try:
        # deferred: torch (the bank file module) loads only when this runs
        from fiftyone_ntt.bank_file import BankFormatError, EncoderMismatchError

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
    if isinstance(error, OutputPathError):  # its message names the path and the fix
        return str(error.strerror)
    if isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError)) and (
        error.filename is not None
    ):
        return f"{error.strerror}: {error.filename!r}"
    return str(error)
