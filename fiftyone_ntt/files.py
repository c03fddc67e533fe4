"""Writing output files: atomically, with the permissions ``open()`` would give, and
checked for writability before any long work.

- :func:`atomic_write` is the one way the library writes a file (memory banks, COCO results,
  JSON): a temporary file in the same folder, then a rename, so a reader never sees a
  half-written file and an interrupted write leaves the previous file intact. The new file
  gets the mode ``open()`` would give it: ``0o666 & ~umask`` (and the folder's default ACL)
  for a new file, the existing file's mode when it replaces one. (``tempfile.mkstemp``
  creates ``0o600`` files, which others on a shared cluster cannot read.)
- :func:`check_writable` says, before any work, whether a path can be written: not a folder,
  no file where a parent folder should be, not read-only, a folder that lets us create the
  file. The message names the path and the fix.

Nothing here imports FiftyOne.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

__all__ = ["OutputPathError", "atomic_write", "check_writable"]


class OutputPathError(OSError):
    """An output path that cannot be written; the message names the path and the fix."""


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (as anything, even a dangling link)."""
    current = path
    while not os.path.lexists(current) and current != current.parent:
        current = current.parent
    return current


def check_writable(
    path: str | os.PathLike, *, what: str = "output file", folder: bool = False
) -> Path:
    """Raise :class:`OutputPathError` unless ``path`` can be written as a file, by
    :func:`atomic_write` or ``open(path, "w")`` (with ``folder``: as a folder to write files
    in); returns ``path`` with symlinks resolved.

    Missing parent folders are fine when they can be created. Refused: a folder at
    ``path`` (a file, with ``folder``); a file where a parent folder should be; a read-only
    existing file (the rename of an atomic write would bypass its protection); a folder we
    may not create files in. ``what`` names the path in the message (e.g. ``"--out"``).
    """
    target = Path(os.path.realpath(os.path.abspath(path)))
    shown = f"{what} {str(path)!r}"
    if folder:
        # Files are written inside it: the folder itself is the "parent" to check.
        target = target / "_"
    elif target.is_dir():
        raise OutputPathError(
            errno.EISDIR, f"{shown} is a folder; give the path of a file (inside it, or elsewhere)"
        )
    elif target.exists():
        if not os.access(target, os.W_OK):
            raise OutputPathError(
                errno.EACCES,
                f"{shown} is read-only; make it writable (chmod u+w {str(path)!r}) or choose "
                "another path",
            )
    existing = _nearest_existing(target.parent)
    if not existing.is_dir():
        raise OutputPathError(
            errno.ENOTDIR,
            f"{shown}: {str(existing)!r} is a file, not a folder, so nothing can be written "
            "below it; choose another path",
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        missing = "" if existing == target.parent else " (to create the missing folders in)"
        raise OutputPathError(
            errno.EACCES,
            f"{shown}: the folder {str(existing)!r}{missing} is not writable; choose a path in "
            "a folder you can write to, or change its permissions",
        )
    return target.parent if folder else target


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Write ``path`` atomically: yields a temporary file path in the same folder to write
    to (by name, e.g. ``open(tmp, "w")`` or ``safetensors.save_file(..., tmp)``); when the
    block ends without an error the file is flushed to disk and renamed over ``path``,
    otherwise it is removed and ``path`` is untouched.

    Missing parent folders are created. A symlink at ``path`` is followed (its target is
    replaced), as ``open()`` does. Permissions: see the module docstring; the writer must
    write into the given file, not replace it (``safetensors.save_file`` >= 0.8 recreates
    it with mode ``0o600``: write ``safetensors.numpy.save(...)`` bytes instead).

    Raises:
        OutputPathError: ``path`` cannot be written (:func:`check_writable`).
    """
    target = check_writable(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        keep_mode: int | None = os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        keep_mode = None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            # 0o666: the kernel applies the umask (and a default ACL), as for open().
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue
    os.close(fd)
    try:
        yield tmp
        if keep_mode is not None:
            os.chmod(tmp, keep_mode)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
