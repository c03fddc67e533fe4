"""The checkpoint error type and the state-dict helpers every family's conversion from Meta's
original files uses (:mod:`.sam2.conversion`, :mod:`.edgetam.conversion`,
:mod:`.dinov2.conversion`, :mod:`.dinov3.conversion`). Nothing here touches the disk."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import torch

__all__ = [
    "VIT_BLOCK_RENAMES",
    "CheckpointError",
    "StateDict",
    "as_float32",
    "key_indices",
    "rename_vit_state_dict",
    "split_qkv",
    "tensor_shape",
    "unwrap_state_dict",
]

#: The names of a ViT block's tensors that DINOv2 and DINOv3 share, Meta's → transformers'.
VIT_BLOCK_RENAMES = {
    "norm1.weight": "norm1.weight",
    "norm1.bias": "norm1.bias",
    "norm2.weight": "norm2.weight",
    "norm2.bias": "norm2.bias",
    "attn.proj.weight": "attention.o_proj.weight",
    "attn.proj.bias": "attention.o_proj.bias",
    "ls1.gamma": "layer_scale1.lambda1",
    "ls2.gamma": "layer_scale2.lambda1",
}

_VIT_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")


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


def split_qkv(
    rest: str, value: torch.Tensor, key_bias: bool = True
) -> dict[str, torch.Tensor] | None:
    """A ViT block's fused ``attn.qkv.{weight,bias}`` split into ``attention.{q,k,v}_proj``
    (``key_bias=False``: no key bias, as in DINOv3 where Meta masks it to zero); None for
    another tensor."""
    if rest not in ("attn.qkv.weight", "attn.qkv.bias"):
        return None
    kind = rest.rsplit(".", 1)[1]
    parts = {}
    for name, part in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
        if kind == "bias" and name == "k_proj" and not key_bias:
            continue
        parts[f"attention.{name}.{kind}"] = part.contiguous()
    return parts


def rename_vit_state_dict(
    sd: StateDict,
    *,
    top: Mapping[str, str | tuple[str, tuple[int, ...]]],
    skip: Callable[[str], bool],
    layer: str,
    block: Callable[[str, torch.Tensor], dict[str, torch.Tensor] | None],
    what: str,
    model: str,
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Meta's ViT checkpoint (DINOv2, DINOv3) renamed for ``transformers``, the walk both
    families share: floats become contiguous float32; ``top`` renames the tensors outside
    the blocks (a ``(name, shape)`` value also reshapes); ``skip`` names the tensors left
    out (heads, ...); ``blocks.<i>.<rest>`` goes to ``<layer>.<i>.<name>`` for each
    ``name`` of ``block(rest, tensor)``.

    Returns:
        ``(state_dict, skipped keys)``.

    Raises:
        CheckpointError: tensors with no place (``what`` tensor(s) ... in ``model``).
    """
    out: dict[str, torch.Tensor] = {}
    skipped: list[str] = []
    unknown: list[str] = []
    for key, value in sd.items():
        value = as_float32(value)
        if key in top:
            target = top[key]
            if isinstance(target, tuple):
                out[target[0]] = value.reshape(*target[1])
            else:
                out[target] = value
            continue
        if skip(key):
            skipped.append(key)
            continue
        m = _VIT_BLOCK.match(key)
        renamed = block(m[2], value) if m else None
        if renamed is None:
            unknown.append(key)
            continue
        out.update({f"{layer}.{m[1]}.{name}": tensor for name, tensor in renamed.items()})
    if unknown:
        raise CheckpointError(
            f"{len(unknown)} {what} tensor(s) have no place in the recognised {model}: "
            f"{unknown[:8]}"
        )
    return out, skipped
