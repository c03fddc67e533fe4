"""Loading the two models for a subcommand, with load failures turned into user errors."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from fiftyone_ntt.cli._common import TINY, UserError

__all__ = ["check_bank_encoder_first", "load_encoder", "load_proposer"]


def load_encoder(args: argparse.Namespace, config: Any) -> Any:
    """The DINOv2 encoder of ``config`` (or a tiny one for ``--dinov2 tiny``)."""
    return _load_model(args.dinov2, config, "DINOv2", encoder=True)


def load_proposer(args: argparse.Namespace, config: Any) -> Any:
    """The SAM 2 proposer of ``config`` (or a tiny one for ``--sam2 tiny``)."""
    return _load_model(args.sam2, config, "SAM2", encoder=False)


def _load_model(requested: str | None, config: Any, what: str, *, encoder: bool) -> Any:
    """The DINOv2 encoder or SAM2 proposer of ``config``, or a tiny random one for ``tiny``."""
    from fiftyone_ntt import models

    cfg = config.models
    if requested == TINY:
        tiny = models.tiny_encoder if encoder else models.tiny_proposer
        return _model_call(lambda: tiny(device=models.resolve_device(cfg.device)), what, TINY)
    source = cfg.dinov2 if encoder else cfg.sam2
    load = models.load_encoder if encoder else models.load_proposer
    return _model_call(
        lambda: load(source, device=cfg.device, precision=cfg.precision), what, source
    )


def _model_call(load: Callable[[], Any], what: str, source: str) -> Any:
    try:
        return load()
    # missing/unusable weights, unknown device, a package a checkpoint needs (EdgeTAM + timm)
    except (OSError, ValueError, ImportError) as error:
        raise UserError(f"cannot load the {what} model {source!r}: {error}") from None


def check_bank_encoder_first(bank: Any, args: argparse.Namespace, config: Any) -> None:
    """Refuse a bank built with another encoder before the encoder's weights load.

    The identity comes from the source's ``config.json`` or checkpoint shapes
    (:func:`fiftyone_ntt.models.identity.peek_encoder_identity`); when it cannot be read
    cheaply, the check after loading still applies.
    """
    import warnings

    from fiftyone_ntt.models.identity import peek_encoder_identity

    if args.dinov2 == TINY:
        return
    identity = peek_encoder_identity(config.models.dinov2)
    if identity is None:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the source-only warning comes after loading
        try:
            bank.check_encoder(identity)
        except ValueError as error:
            raise UserError(f"{error} (read from {config.models.dinov2!r}, not loaded)") from None
