"""Model loading: DINOv2 patch encoders and SAM 2 mask proposers behind two small protocols.

Public API::

    encoder = load_encoder("facebook/dinov2-large")            # hub id, folder or .pth
    proposer = load_proposer("checkpoints/sam2_hiera_large.pt")  # hub id, folder or .pt
    encoder, proposer = load_models(ModelConfig(...))

Sources may be a Hugging Face hub id (downloaded once into the standard HF cache), a local
folder written by ``save_pretrained``, or one of Meta's original checkpoint files; the
architecture of an original file is read from its tensors, never from its name
(the ``conversion`` module of each family: :mod:`fiftyone_ntt.models.sam2`,
:mod:`~fiftyone_ntt.models.edgetam`, :mod:`~fiftyone_ntt.models.dinov2`,
:mod:`~fiftyone_ntt.models.dinov3`; shared: hub, checkpoints, families, protocols).

Heavy imports (``transformers``) happen inside the functions, so importing this package is
cheap. Section numbers (§) refer to ``docs/method.md``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from fiftyone_ntt.models.protocols import MaskProposer, PatchEncoder

if TYPE_CHECKING:
    from fiftyone_ntt.config import ModelConfig
    from fiftyone_ntt.models.dinov2.encoder import Dinov2Encoder
    from fiftyone_ntt.models.sam2.proposer import Sam2Proposer

__all__ = [
    "PRECISIONS",
    "MaskProposer",
    "PatchEncoder",
    "load_adapter",
    "load_encoder",
    "load_models",
    "load_proposer",
    "resolve_device",
    "resolve_precision",
    "tiny_encoder",
    "tiny_proposer",
]

#: Precision names accepted everywhere (``ModelConfig.precision``).
PRECISIONS: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "tf32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}

#: Precision warnings already given in this process (each is given once).
_warned_precision: set[str] = set()


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Turn a device name into a usable :class:`torch.device`.

    Args:
        name: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``,
            ``"cuda:N"``, ``"mps"``, or a :class:`torch.device`.

    Returns:
        The device.

    Raises:
        ValueError: the name is unknown, or names an accelerator this machine does not have.
    """
    if isinstance(name, torch.device):
        name = str(name)
    if not isinstance(name, str):
        raise ValueError(f"device={name!r} must be a string such as 'auto', 'cpu' or 'cuda'")
    text = name.strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise ValueError(
            f"device={name!r} is not a device name; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={name!r} was requested but CUDA is not available on this machine "
                "(no GPU, or a CPU-only torch build); use device='cpu' or device='auto'"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(
                f"device={name!r} does not exist: this machine has {count} CUDA device(s) "
                f"(cuda:0 .. cuda:{count - 1})"
            )
        return device
    if device.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError(
                f"device={name!r} was requested but Apple MPS is not available here; "
                "use device='cpu' or device='auto'"
            )
        return device
    raise ValueError(f"device={name!r} is not supported; use 'auto', 'cpu', 'cuda[:N]' or 'mps'")


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype to use for ``precision`` on ``device``.

    The paper ran float32 (§1.3); the others are opt-in speed-ups:

    * ``"bfloat16"`` / ``"float16"``: autocast on CUDA. ``"bfloat16"`` also on CPUs with
      native bfloat16 (AVX512-BF16 or AMX, :mod:`fiftyone_ntt.models.precision`); on a CPU
      without it, float32 with a warning that says why.
    * ``"tf32"``: float32 tensors, TF32 matrix products on CUDA (a process-wide PyTorch
      switch, set here); no effect elsewhere.

    Other requests that cannot apply on ``device`` fall back to float32 with a warning
    (once per process and message).

    Args:
        precision: ``"float32"``, ``"tf32"``, ``"bfloat16"`` or ``"float16"``.
        device: where the model runs.

    Returns:
        ``None`` for float32 (no autocast), else the autocast dtype.

    Raises:
        ValueError: unknown precision name.
    """
    from fiftyone_ntt.models import precision as machine

    if precision not in PRECISIONS:
        raise ValueError(
            f"precision={precision!r} is not supported; use one of {sorted(PRECISIONS)}"
        )
    if precision == "float32":
        return None
    if precision == "tf32":
        if device.type == "cuda":
            machine.enable_tf32()
        else:
            _warn_precision_once(
                f"precision='tf32' only applies on CUDA; running float32 on {device.type!r}"
            )
        return None
    if device.type == "cpu" and precision == "bfloat16":
        if machine.cpu_has_native_bf16():
            return torch.bfloat16
        _warn_precision_once(machine.cpu_bf16_missing_message(precision))
        return None
    if device.type != "cuda":
        _warn_precision_once(
            f"precision={precision!r} only applies on CUDA (and 'bfloat16' on CPUs with "
            f"native bfloat16); running float32 on {device.type!r} instead"
        )
        return None
    return PRECISIONS[precision]


def _warn_precision_once(message: str) -> None:
    if message not in _warned_precision:
        _warned_precision.add(message)
        warnings.warn(message, stacklevel=4)


def load_encoder(
    source: str, *, device: str | torch.device = "auto", precision: str = "float32"
) -> Dinov2Encoder:
    """Load a DINOv2 (with or without registers) or DINOv3 ViT patch encoder.

    Args:
        source: a hub id (``"facebook/dinov2-large"``,
            ``"facebook/dinov3-vitl16-pretrain-lvd1689m"``), a local ``save_pretrained``
            folder, or Meta's ``dinov2_vit{s,b,l,g}14[_reg4]_pretrain.pth`` /
            ``dinov3_vit*16*_pretrain_*.pth`` (the family is read from the folder's config
            or the file's tensors; see :func:`fiftyone_ntt.models.families.encoder_family`).
        device: see :func:`resolve_device`.
        precision: ``"float32"`` (paper), or ``"bfloat16"``/``"float16"`` autocast on CUDA.

    Returns:
        A :class:`~fiftyone_ntt.models.dinov2.Dinov2Encoder` (a :class:`PatchEncoder`).
    """
    from fiftyone_ntt.models.dinov2.encoder import Dinov2Encoder
    from fiftyone_ntt.models.dinov2.loader import load_dinov2
    from fiftyone_ntt.models.dinov3.loader import load_dinov3_encoder
    from fiftyone_ntt.models.families import encoder_family

    if encoder_family(source) == "dinov3":
        return load_dinov3_encoder(source, device=device, precision=precision)
    return load_adapter(
        load_dinov2,
        lambda model, info, resolved: Dinov2Encoder(
            model, source=info["source"], device=resolved, precision=precision
        ),
        source,
        device,
        precision,
    )


def load_proposer(
    source: str, *, device: str | torch.device = "auto", precision: str = "float32"
) -> Sam2Proposer:
    """Load a SAM 2 / SAM 2.1 (any Hiera size) or EdgeTAM mask proposer.

    Args:
        source: a hub id (``"facebook/sam2-hiera-large"``, ``"yonigozlan/EdgeTAM-hf"``), a
            local ``save_pretrained`` folder, or Meta's ``sam2_hiera_*.pt`` /
            ``sam2.1_hiera_*.pt`` / ``edgetam.pt`` (a file's family is read from its
            tensor names, whatever it is called; see :func:`fiftyone_ntt.models.families.proposer_family`).
        device: see :func:`resolve_device`.
        precision: ``"float32"`` (paper), or ``"bfloat16"``/``"float16"`` autocast on CUDA.

    Returns:
        A :class:`~fiftyone_ntt.models.sam2.Sam2Proposer` (a :class:`MaskProposer`).
    """
    from fiftyone_ntt.models.edgetam.loader import load_edgetam_proposer
    from fiftyone_ntt.models.families import proposer_family
    from fiftyone_ntt.models.sam2.loader import load_sam2
    from fiftyone_ntt.models.sam2.proposer import Sam2Proposer

    if proposer_family(source) == "edgetam":
        return load_edgetam_proposer(source, device=device, precision=precision)
    return load_adapter(
        load_sam2,
        lambda model, info, resolved: Sam2Proposer(
            model,
            source=info["source"],
            version=info["version"],
            device=resolved,
            precision=precision,
        ),
        source,
        device,
        precision,
    )


def load_adapter(
    load: Callable[[str], tuple[Any, dict[str, Any]]],
    wrap: Callable[[Any, dict[str, Any], torch.device], Any],
    source: str,
    device: str | torch.device = "auto",
    precision: str = "float32",
) -> Any:
    """A family's adapter (encoder or proposer) around the model ``load(source)`` returns:
    the device and precision are checked before the (slow) load, ``wrap(model, info,
    device)`` builds the adapter, and its identity records which weights were read (a
    folder, a file, the hub's transformers files or Meta's original checkpoint in a hub
    repo; not among the keys a bank must match). Every family's ``load_*`` goes through
    this."""
    resolved = resolve_device(device)
    resolve_precision(precision, resolved)  # validate before the (slow) load
    model, info = load(source)
    adapter = wrap(model, info, resolved)
    adapter.identity["weights"] = info["weights"]
    return adapter


def load_models(model_config: ModelConfig) -> tuple[Dinov2Encoder, Sam2Proposer]:
    """Load both models named by a :class:`~fiftyone_ntt.config.ModelConfig`.

    Returns:
        ``(encoder, proposer)``.
    """
    encoder = load_encoder(
        model_config.dinov2, device=model_config.device, precision=model_config.precision
    )
    proposer = load_proposer(
        model_config.sam2, device=model_config.device, precision=model_config.precision
    )
    return encoder, proposer


def tiny_encoder(seed: int = 0, registers: int = 0, **kwargs: Any) -> Dinov2Encoder:
    """A tiny random-weight DINOv2 encoder for tests (37×37 grid at 518², ~ms per call).

    Args:
        seed: weight seed; the same seed gives the same weights.
        registers: number of register tokens (0 = plain DINOv2).
        **kwargs: ``device``, ``precision``, and config overrides for
            :func:`fiftyone_ntt.models.tiny.tiny_dinov2_config`.
    """
    from fiftyone_ntt.models.tiny import tiny_encoder as _tiny_encoder

    return _tiny_encoder(seed=seed, registers=registers, **kwargs)


def tiny_proposer(seed: int = 0, **kwargs: Any) -> Sam2Proposer:
    """A tiny random-weight SAM 2 proposer for tests (takes 1024², returns 256² logits).

    Args:
        seed: weight seed; the same seed gives the same weights.
        **kwargs: ``device``, ``precision``, ``version`` and ``decode_batch_size``.
    """
    from fiftyone_ntt.models.tiny import tiny_proposer as _tiny_proposer

    return _tiny_proposer(seed=seed, **kwargs)
