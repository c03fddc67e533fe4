"""The weights each preset needs: where they come from, whether they are here, how big.

:func:`weights_table` backs ``fiftyone-ntt models`` and the App's *about* operator;
:func:`download_weights` backs ``fiftyone-ntt download``. Cache status is read from the
hub cache folder (``HF_HUB_CACHE`` / ``$HF_HOME/hub``, the layout ``huggingface_hub``
writes) without the network. Download sizes come from the static table
:data:`fiftyone_ntt.models.hub.KNOWN_REPOS` (rounded, from the public repo listings);
repos not in it show an unknown size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = [
    "FAMILY_NAMES",
    "download_weights",
    "format_size",
    "format_weights_table",
    "preset_sources",
    "weights_table",
]

#: How a model family is named to users (a weights table's role, a model's description).
FAMILY_NAMES = {"sam2": "SAM 2", "edgetam": "EdgeTAM", "dinov2": "DINOv2", "dinov3": "DINOv3"}


def _role(key: str, source: str) -> str:
    """The family name of the model configured as ``key`` (``sam2``: the mask proposer,
    ``dinov2``: the semantic encoder), as the loaders decide it (without loading it)."""
    if key == "sam2":
        from fiftyone_ntt.models.families import proposer_family

        return FAMILY_NAMES[proposer_family(source)]
    from fiftyone_ntt.models.families import encoder_family

    return FAMILY_NAMES[encoder_family(source)]


def format_size(size: int | None) -> str:
    """``898 MB`` / ``1.2 GB``; ``?`` when unknown."""
    if size is None:
        return "?"
    if size >= 1_000_000_000:
        return f"{size / 1e9:.1f} GB"
    return f"{max(1, round(size / 1e6))} MB"


def preset_sources(presets: list[str] | None = None) -> list[tuple[str, str, str]]:
    """``(preset, role, source)`` for the models of the named presets (default: all)."""
    from fiftyone_ntt.config import PRESETS, get_preset

    names = presets or list(PRESETS)
    rows = []
    for name in names:
        config = get_preset(name).models
        for key in ("sam2", "dinov2"):
            source = str(getattr(config, key))
            rows.append((name, _role(key, source), source))
    return rows


def _status(source: str) -> dict[str, Any]:
    """Where ``source`` is and whether it is available without the network."""
    from fiftyone_ntt.models.checkpoints import classify_source
    from fiftyone_ntt.models.hub import KNOWN_REPOS, cached_hub_weights

    try:
        kind = classify_source(source, "model")
    except (OSError, ValueError):
        return {"kind": "path", "cached": False, "files": "missing", "download_size": None}
    if kind != "hub":
        path = Path(source).expanduser()
        size = (
            path.stat().st_size
            if path.is_file()
            else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        )
        return {"kind": kind, "cached": True, "files": kind, "download_size": size}
    known = KNOWN_REPOS.get(source)
    cached = cached_hub_weights(source)
    if cached is not None:
        files = "transformers" if cached.layout == "transformers" else cached.path.name
    elif known is not None:
        files = "transformers" if known.layout == "transformers" else str(known.original)
    else:
        files = "?"
    return {
        "kind": "hub",
        "cached": cached is not None,
        "files": files,
        "download_size": known.size if known else None,
        "gated": bool(known and known.gated),
    }


def weights_table(presets: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per (preset, model): what ``fiftyone-ntt models`` prints.

    Returns:
        Dicts with ``preset``, ``role`` (the model's family: ``"SAM 2"``, ``"EdgeTAM"``,
        ``"DINOv2"`` or ``"DINOv3"``), ``model`` (hub id or
        path), ``kind`` (``hub``/``file``/``folder``/``path`` for a missing path),
        ``cached`` (bool: usable without the network), ``files`` (``transformers`` or the
        original checkpoint's name), ``download_size`` (bytes, ``None`` if unknown) and
        ``size`` (text).
    """
    rows = []
    for preset, role, source in preset_sources(presets):
        status = _status(source)
        rows.append(
            {
                "preset": preset,
                "role": role,
                "model": source,
                "kind": status["kind"],
                "cached": status["cached"],
                "files": status["files"],
                "download_size": status["download_size"],
                "size": format_size(status["download_size"]),
            }
        )
    return rows


def format_weights_table(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`weights_table` as an aligned text (or markdown) table."""
    header = ("preset", "model", "role", "files", "download", "cached")
    lines = [header] + [
        (
            r["preset"],
            r["model"],
            r["role"],
            r["files"],
            r["size"],
            "yes" if r["cached"] else "no",
        )
        for r in rows
    ]
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(str(cell).ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def download_weights(sources: list[tuple[str, str]], *, progress: bool = True) -> list[Any]:
    """Fetch hub ids ahead into the shared cache (``HF_HOME``), with progress bars.

    Args:
        sources: ``(role, hub id)`` pairs; role is the family's name (for messages).
        progress: show ``huggingface_hub``'s progress bars.

    Returns:
        The :class:`~fiftyone_ntt.models.hub.HubWeights` of each, in order (cached ones are
        not downloaded again).

    Raises:
        ModelNotAvailableError: gated, missing, offline or network failure (explained).
        CheckpointError: a repo with neither usable format.
    """
    from fiftyone_ntt.models.hub import resolve_hub_weights

    return [resolve_hub_weights(repo, role, progress=progress) for role, repo in sources]
