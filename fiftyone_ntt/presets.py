"""The named presets as a user chooses them: which models each runs, how large their download
is, how long an image takes on a CPU, and a configuration from a preset plus free model
choices (the command line, Python and the App forms all resolve through here).

Example:
    >>> config = resolve_config("fast", encoder="facebook/dinov3-vits16-pretrain-lvd1689m")
    >>> preset_summary("accurate")["encoder"]
    'facebook/dinov3-vitl16-pretrain-lvd1689m'
"""

from __future__ import annotations

from typing import Any

from fiftyone_ntt.config import PRESETS, NTTConfig, get_preset

__all__ = [
    "PRESET_BENCHMARKS",
    "check_encoder_sizes",
    "download_mb",
    "model_label",
    "preset_choice_label",
    "preset_summary",
    "preset_table_markdown",
    "resolve_config",
]

#: CPU seconds per 640×480 image and peak RSS (GB) of each preset, random weights, measured by
#: ``scripts/bench_presets.py`` (docs/benchmarks.md, section "Presets": machine, load and
#: command). Shown in the App forms; a preset missing here shows "not measured".
PRESET_BENCHMARKS: dict[str, tuple[float, float]] = {
    # 2026-11-26 17:17-17:20 UTC, the project's 2-vCPU development box, nothing else running
    # (load average 1.8 -> 1.9: the benchmark's own two threads), low-rank CPU decoder.
    "fast": (6.5, 1.62),
    "accurate": (33.9, 3.68),
    "default": (32.1, 3.7),
    "paper": (32.3, 3.71),
}

_LABELS = {
    "facebook/sam2-hiera-large": "SAM 2.0 Hiera-L",
    "facebook/sam2.1-hiera-large": "SAM 2.1 Hiera-L",
    "facebook/sam2.1-hiera-base-plus": "SAM 2.1 Hiera-B+",
    "facebook/sam2.1-hiera-small": "SAM 2.1 Hiera-S",
    "facebook/sam2.1-hiera-tiny": "SAM 2.1 Hiera-T",
    "facebook/dinov2-large": "DINOv2 ViT-L/14",
    "facebook/dinov2-base": "DINOv2 ViT-B/14",
    "facebook/dinov2-small": "DINOv2 ViT-S/14",
    "facebook/dinov3-vitl16-pretrain-lvd1689m": "DINOv3 ViT-L/16",
    "facebook/dinov3-vitb16-pretrain-lvd1689m": "DINOv3 ViT-B/16",
    "facebook/dinov3-vits16-pretrain-lvd1689m": "DINOv3 ViT-S/16",
    "yonigozlan/EdgeTAM-hf": "EdgeTAM",
}


def model_label(source: str) -> str:
    """A short readable name of a model source (the source itself when unknown)."""
    return _LABELS.get(source, source)


def download_mb(source: str) -> int | None:
    """Approximate download size in MB of a hub model we know, else ``None``."""
    from fiftyone_ntt.models.hub import KNOWN_REPOS

    known = KNOWN_REPOS.get(source)
    return round(known.size / 1_000_000) if known else None


def preset_summary(name: str) -> dict[str, Any]:
    """What a preset runs and costs.

    Returns:
        ``{"name", "proposer", "encoder", "proposer_label", "encoder_label",
        "download_mb" (None when unknown), "cpu_seconds" and "peak_rss_gb" (None when not
        measured), "gated" (a download needs an accepted licence), "points_per_side" (the
        prompt grid's side)}``.
    """
    from fiftyone_ntt.models.hub import KNOWN_REPOS

    config = get_preset(name)
    sources = (config.models.sam2, config.models.dinov2)
    sizes = [download_mb(s) for s in sources]
    cpu, rss = PRESET_BENCHMARKS.get(name, (None, None))
    return {
        "name": name,
        "proposer": sources[0],
        "encoder": sources[1],
        "proposer_label": model_label(sources[0]),
        "encoder_label": model_label(sources[1]),
        "download_mb": None if None in sizes else sum(sizes),
        "cpu_seconds": cpu,
        "peak_rss_gb": rss,
        "gated": any(getattr(KNOWN_REPOS.get(s), "gated", False) for s in sources),
        "points_per_side": config.points_per_side,
    }


def _seconds(value: float) -> str:
    """Seconds as a reader compares them: ``6.5`` under 10 s, whole seconds above."""
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def _cost(summary: dict[str, Any]) -> tuple[str, str]:
    cpu = summary["cpu_seconds"]
    size = summary["download_mb"]
    seconds = f"{_seconds(cpu)} s/image (2-CPU box)" if cpu is not None else "CPU time not measured"
    download = f"{size / 1000:.1f} GB" if size is not None else "size unknown"
    if summary["gated"]:
        download += ", gated"
    return seconds, download


def preset_choice_label(name: str) -> str:
    """One line for a dropdown: ``fast: SAM 2.1 Hiera-T + DINOv2 ViT-S/14 · 9 s/image ...``."""
    summary = preset_summary(name)
    seconds, download = _cost(summary)
    side = summary["points_per_side"]
    # The paper's 32×32 grid goes unsaid; a coarser one changes what is found, so it shows.
    grid = f" · {side}×{side} prompts" if side != 32 else ""
    return (
        f"{name}: {summary['proposer_label']} + {summary['encoder_label']}{grid} · {seconds} · "
        f"{download}"
    )


def preset_table_markdown() -> str:
    """A Markdown table of every preset: models, CPU time per image, download size."""
    lines = [
        "| preset | mask proposer | semantic encoder | prompts | CPU s / image | download |",
        "|---|---|---|---|---|---|",
    ]
    for name in PRESETS:
        s = preset_summary(name)
        cpu = _seconds(s["cpu_seconds"]) if s["cpu_seconds"] is not None else "—"
        size = f"{s['download_mb'] / 1000:.1f} GB" if s["download_mb"] is not None else "?"
        if s["gated"]:
            size += " (gated)"
        grid = f"{s['points_per_side']}×{s['points_per_side']}"
        lines.append(
            f"| {name} | {s['proposer_label']} | {s['encoder_label']} | {grid} | {cpu} | {size} |"
        )
    return "\n".join(lines)


def resolve_config(
    preset: str = "default",
    *,
    proposer: str | None = None,
    encoder: str | None = None,
    device: str | None = None,
    precision: str | None = None,
    **changes: Any,
) -> NTTConfig:
    """A preset with free model choices and other settings applied on top.

    Args:
        preset: a name of :data:`fiftyone_ntt.config.PRESETS`.
        proposer: a mask proposer source (hub id, folder, file) instead of the preset's.
        encoder: a semantic encoder source instead of the preset's. Input sizes follow the
            encoder unless the preset pins them (``paper`` pins 518 px, a DINOv2 size: a
            DINOv3 encoder on the ``paper`` preset is refused when the bank is built, with
            the fix).
        device, precision: see :class:`~fiftyone_ntt.config.ModelConfig`.
        **changes: other :class:`~fiftyone_ntt.config.NTTConfig` fields.

    Raises:
        ValueError: unknown preset, or an empty model source.
    """
    config = get_preset(preset)
    models: dict[str, Any] = {}
    for key, value in (
        ("sam2", proposer),
        ("dinov2", encoder),
        ("device", device),
        ("precision", precision),
    ):
        if value is None:
            continue
        if isinstance(value, str) and not value.strip():
            raise ValueError(f"{key}={value!r} is empty; give a hub id or path, or None")
        models[key] = value.strip() if isinstance(value, str) else value
    if models:
        changes["models"] = models
    config = config.replace(**changes) if changes else config
    if encoder is not None:
        check_encoder_sizes(config, preset)
    return config


def check_encoder_sizes(config: NTTConfig, preset: str = "custom") -> None:
    """Refuse pinned input sizes that the configured encoder's patch does not divide, before
    any weights load (the family is read cheaply: :func:`~fiftyone_ntt.models.dinov3.encoder_family`).

    Raises:
        ValueError: e.g. the ``paper`` preset's 518 px with a DINOv3 (16-px patch) encoder.
    """
    from fiftyone_ntt.config import encoder_input_size
    from fiftyone_ntt.models.families import encoder_family

    family = encoder_family(config.models.dinov2)
    patch = 16 if family == "dinov3" else 14
    for name in ("reference_size", "semantic_size"):
        try:
            encoder_input_size(getattr(config, name), patch, name)
        except ValueError as error:
            raise ValueError(
                f"encoder {config.models.dinov2!r} ({family}, {patch}-px patches) does not fit "
                f"preset {preset!r}: {error}; or pick a preset whose sizes follow the encoder "
                "('default', 'fast', 'accurate')"
            ) from None
