"""Lazy re-exports for the family packages (:mod:`.sam2`, :mod:`.edgetam`, :mod:`.dinov2`,
:mod:`.dinov3`): ``from fiftyone_ntt.models.sam2 import Sam2Proposer`` imports the submodule
that defines the name when it is first asked for, so importing a package is cheap and the
families' loaders, which need each other's format detection, never import in a circle."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module ``__getattr__`` and ``__dir__`` for ``package``.

    Args:
        package: the package's ``__name__``.
        exports: ``{public name: submodule of the package that defines it}``, or the
            module's full name (``fiftyone_ntt.models.families``) for a name the package
            offers from a shared module.
    """

    def __getattr__(name: str) -> Any:
        submodule = exports.get(name)
        if submodule is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = submodule if "." in submodule else f"{package}.{submodule}"
        return getattr(importlib.import_module(module), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
