"""The checkpoint error type and the state-dict helpers every family's conversion from Meta's
original files uses (:mod:`.sam2.conversion`, :mod:`.edgetam.conversion`,
:mod:`.dinov2.conversion`, :mod:`.dinov3.conversion`). Nothing here touches the disk."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

__all__ = [
    "CheckpointError",
    "StateDict",
    "as_float32",
    "key_indices",
    "tensor_shape",
    "unwrap_state_dict",
]


class CheckpointError(ValueError):
    """A checkpoint file or folder that cannot be used (wrong model, unknown layout, bad
    shapes). The message names the file and what was expected."""


StateDict = Mapping[str, torch.Tensor]


def unwrap_state_dict(obj: Any, wrappers: tuple[str, ...], what: str) -> dict[str, torch.Tensor]:
    """The flat ``name -> tensor`` dict inside a checkpoint (``{"model": ...}`` etc.).

    Args:
        obj: what ``torch.load`` returned.
        wrappers: keys that may hold the state dict, tried in order (up to 3 levels deep).
        what: the model family, for messages.
    """
    for _ in range(3):
        if isinstance(obj, Mapping):
            for name in wrappers:
                inner = obj.get(name)
                if isinstance(inner, Mapping):
                    obj = inner
                    break
            else:
                break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"expected a {what} state dict, got {type(obj).__name__}")
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and torch.is_tensor(v)}
    if not tensors:
        raise CheckpointError(f"expected a {what} state dict of tensors; it holds none")
    return tensors


def tensor_shape(
    sd: StateDict, key: str, what: str, needed_by: str = "the image path"
) -> tuple[int, ...]:
    """The shape of ``sd[key]``; a :class:`CheckpointError` naming the key when it is absent."""
    try:
        return tuple(sd[key].shape)
    except KeyError:
        raise CheckpointError(
            f"the {what} checkpoint lacks {key!r}, which {needed_by} needs"
        ) from None


def key_indices(sd: StateDict, pattern: str) -> list[int]:
    """Sorted distinct integers captured by group 1 of ``pattern`` over the keys."""
    regex = re.compile(pattern)
    found = {int(m.group(1)) for k in sd if (m := regex.match(k))}
    return sorted(found)


def as_float32(t: torch.Tensor) -> torch.Tensor:
    """A floating tensor as contiguous float32 (others unchanged)."""
    return t.to(torch.float32).contiguous() if t.is_floating_point() else t
