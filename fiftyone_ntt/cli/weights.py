"""``fiftyone-ntt models`` and ``fiftyone-ntt download``: the presets' weights, listed and
fetched ahead into the shared Hugging Face cache (``HF_HOME``) for offline workers."""

from __future__ import annotations

import argparse
import json
import sys

from fiftyone_ntt.cli._common import UserError, info

__all__ = ["cmd_download", "cmd_models", "register"]


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the ``models`` and ``download`` subcommands to ``sub``."""
    p = sub.add_parser(
        parents=[common],
        name="models",
        help="list the presets' models, whether they are cached, their download size",
        description="For each preset: its SAM 2 and DINOv2 models (hub id or path), the files "
        "used (transformers format, or Meta's original checkpoint converted on load), the "
        "download size (approximate, from a static table of the public repos) and whether "
        "they are in the local Hugging Face cache (HF_HUB_CACHE, or HF_HOME/hub). Reads no "
        "network.",
    )
    p.add_argument("--preset", action="append", metavar="NAME", help="only this preset")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser(
        parents=[common],
        name="download",
        help="fetch the models of presets (or hub ids) ahead into the Hugging Face cache",
        description="Download the weights a preset needs (or the given hub ids) into the "
        "Hugging Face cache, with progress bars, so that machines without internet that "
        "share the cache (HF_HOME on a shared disk) run with HF_HUB_OFFLINE=1. Models already "
        "cached are not downloaded again. Gated repos need `huggingface-cli login` or HF_TOKEN.",
    )
    p.add_argument(
        "models", nargs="*", metavar="HUB_ID", help="hub ids to fetch (besides --preset)"
    )
    p.add_argument(
        "--preset", action="append", metavar="NAME", help="fetch this preset's models (repeat)"
    )
    p.add_argument("--all", action="store_true", help="fetch the models of every preset")
    p.set_defaults(func=cmd_download)


def _check_presets(names: list[str] | None) -> list[str] | None:
    from fiftyone_ntt.config import PRESETS

    for name in names or ():
        if name not in PRESETS:
            raise UserError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return names


def cmd_models(args: argparse.Namespace) -> int:
    """``models``: print the weights table."""
    from fiftyone_ntt.models.catalog import format_weights_table, weights_table
    from fiftyone_ntt.models.hub import hub_cache_dir

    rows = weights_table(_check_presets(args.preset))
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(format_weights_table(rows))
    info(args, f"cache: {hub_cache_dir()} (set HF_HOME to share one)")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    """``download``: fetch preset models / hub ids into the cache."""
    from fiftyone_ntt.config import PRESETS
    from fiftyone_ntt.models.catalog import download_weights, preset_sources
    from fiftyone_ntt.models.checkpoints import classify_source
    from fiftyone_ntt.models.hub import hub_cache_dir, hub_offline

    presets = list(PRESETS) if args.all else _check_presets(args.preset) or []
    if not presets and not args.models:
        raise UserError(
            "nothing to download: give --preset NAME (e.g. --preset paper), --all, or hub ids"
        )
    if hub_offline():
        raise UserError(
            "offline mode is on (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE); unset it to download"
        )
    wanted: list[tuple[str, str]] = []
    for _, role, source in preset_sources(presets) if presets else []:
        if classify_source(source, role) == "hub" and (role, source) not in wanted:
            wanted.append((role, source))
    for repo in args.models:
        try:
            kind = classify_source(repo, "model")
        except (OSError, ValueError) as error:
            raise UserError(str(error)) from None
        if kind != "hub":
            raise UserError(f"{repo!r} is a local path, not a hub id; nothing to download")
        wanted.append(("model", repo))
    done = download_weights(wanted, progress=not args.quiet)
    for weights in done:
        what = "transformers files" if weights.layout == "transformers" else weights.path.name
        info(args, f"{weights.repo_id}: {what} in {weights.path}")
    print(
        f"{len(done)} model(s) in {hub_cache_dir()}; on machines that share it, set "
        "HF_HOME (or HF_HUB_CACHE) to the same folder and HF_HUB_OFFLINE=1",
        file=sys.stderr,
    )
    return 0
