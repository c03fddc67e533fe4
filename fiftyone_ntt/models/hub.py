"""Hugging Face hub ids → local weight files, whatever the repo's layout.

The repos the presets name are not all alike (as published on the hub; :data:`KNOWN_REPOS`
lists their files and sizes):

* ``facebook/sam2-hiera-{tiny,small,base-plus,large}`` (SAM 2.0) hold only Meta's original
  checkpoint (``sam2_hiera_large.pt``) and its YAML config — no ``config.json``;
* ``facebook/sam2.1-hiera-*`` hold ``transformers`` files (``config.json`` +
  ``model.safetensors``) *and* Meta's ``sam2.1_hiera_*.pt``;
* ``facebook/dinov2-*`` hold ``transformers`` files; DINOv3 repos are gated.

:func:`resolve_hub_weights` picks, for one repo id, the ``transformers`` files when the repo
has them, else Meta's original checkpoint (converted by
:mod:`fiftyone_ntt.models.sam2.conversion`), and reports which (:class:`HubWeights`). The local
cache is read first, so a cached model never needs the network (even without
``HF_HUB_OFFLINE``); offline, only the cache is read. Network, gated-repo and missing-repo
failures become :class:`ModelNotAvailableError` messages that say what happened and what to
do. Sizes for ``fiftyone-ntt models`` come from :data:`KNOWN_REPOS`, a static table.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "KNOWN_REPOS",
    "HubWeights",
    "KnownRepo",
    "ModelNotAvailableError",
    "cached_hub_weights",
    "cached_repo_files",
    "choose_layout",
    "hub_cache_dir",
    "hub_config_file",
    "hub_offline",
    "resolve_hub_weights",
]

Layout = Literal["transformers", "original"]

#: Files that make a repo loadable by ``from_pretrained`` (besides ``config.json``).
TRANSFORMERS_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
#: Suffixes of Meta's original checkpoints.
ORIGINAL_SUFFIXES = (".pt", ".pth")

_MB = 1_000_000


@dataclass(frozen=True)
class KnownRepo:
    """What one hub repo holds, as its public file listing shows (a static table).

    Attributes:
        layout: what :func:`resolve_hub_weights` takes from it.
        files: the files that are downloaded, in order.
        size: their total size in bytes (approximate: rounded to 1 MB from the listing).
        original: Meta's original checkpoint in the repo, if any.
        gated: the repo needs an accepted licence and a token.
    """

    layout: Layout
    files: tuple[str, ...]
    size: int
    original: str | None = None
    gated: bool = False


def _sam2_0(size: str, mb: int) -> KnownRepo:
    name = f"sam2_hiera_{size}.pt"
    return KnownRepo("original", (name,), mb * _MB, original=name)


def _sam2_1(size: str, mb: int) -> KnownRepo:
    files = ("config.json", "model.safetensors")
    return KnownRepo("transformers", files, mb * _MB, original=f"sam2.1_hiera_{size}.pt")


def _dinov2(mb: int) -> KnownRepo:
    return KnownRepo("transformers", ("config.json", "model.safetensors"), mb * _MB)


#: Known repos: layout, the files fetched and their approximate size. Repos not listed
#: here work as well (their listing is read); their size shows as unknown.
KNOWN_REPOS: dict[str, KnownRepo] = {
    "facebook/sam2-hiera-tiny": _sam2_0("tiny", 156),
    "facebook/sam2-hiera-small": _sam2_0("small", 185),
    "facebook/sam2-hiera-base-plus": _sam2_0("base_plus", 324),
    "facebook/sam2-hiera-large": _sam2_0("large", 898),
    "facebook/sam2.1-hiera-tiny": _sam2_1("tiny", 156),
    "facebook/sam2.1-hiera-small": _sam2_1("small", 185),
    "facebook/sam2.1-hiera-base-plus": _sam2_1("base_plus", 324),
    "facebook/sam2.1-hiera-large": _sam2_1("large", 898),
    "facebook/dinov2-small": _dinov2(88),
    "facebook/dinov2-base": _dinov2(346),
    "facebook/dinov2-large": _dinov2(1218),
    "facebook/dinov2-giant": _dinov2(4546),
    "facebook/dinov2-with-registers-large": _dinov2(1218),
    # DINOv3 (gated; sizes = float32 parameters of the architecture, not read from a listing)
    "facebook/dinov3-vits16-pretrain-lvd1689m": replace(_dinov2(86), gated=True),
    "facebook/dinov3-vitb16-pretrain-lvd1689m": replace(_dinov2(343), gated=True),
    "facebook/dinov3-vitl16-pretrain-lvd1689m": replace(_dinov2(1213), gated=True),
}


class ModelNotAvailableError(OSError):
    """Hub weights that are neither in the local cache nor downloadable right now."""


@dataclass(frozen=True)
class HubWeights:
    """Where the weights of one hub repo are on disk, and which layout was taken.

    Attributes:
        repo_id: the hub id, as given.
        layout: ``"transformers"`` (``path`` is a snapshot folder with ``config.json``) or
            ``"original"`` (``path`` is Meta's checkpoint file, to be converted).
        path: the local folder or file.
        revision: the snapshot's commit hash, when known.
    """

    repo_id: str
    layout: Layout
    path: Path
    revision: str | None = None

    @property
    def tag(self) -> str:
        """A short record for a model identity: ``hub:transformers`` or
        ``hub:original:<file name>``."""
        if self.layout == "original":
            return f"hub:original:{self.path.name}"
        return "hub:transformers"


def hub_offline() -> bool:
    """Whether the Hugging Face hub must not be contacted (``HF_HUB_OFFLINE`` /
    ``TRANSFORMERS_OFFLINE`` truthy), read from the environment at call time: a late
    ``export`` is honoured (``huggingface_hub`` itself reads it once, at import)."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
            return True
    return False


def hub_cache_dir() -> Path:
    """The hub cache folder: ``HF_HUB_CACHE``, else ``$HF_HOME/hub``, else the default.

    Read from the environment at call time (``huggingface_hub`` reads it once at import),
    so that a worker's ``HF_HOME`` set after start-up, and tests, are honoured.
    """
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _repo_folder(repo_id: str, cache_dir: Path) -> Path:
    return cache_dir / ("models--" + repo_id.replace("/", "--"))


def cached_repo_files(
    repo_id: str, cache_dir: str | os.PathLike[str] | None = None
) -> tuple[Path, str, list[str]] | None:
    """The cached snapshot of ``repo_id`` (``refs/main``), or ``None`` when none is cached.

    Returns:
        ``(snapshot folder, commit hash, relative file names)``; only files that exist
        (a dangling symlink to a blob that was never completed is not counted).
    """
    root = _repo_folder(repo_id, Path(cache_dir) if cache_dir else hub_cache_dir())
    ref = root / "refs" / "main"
    snapshots = root / "snapshots"
    if ref.is_file():
        revision = ref.read_text().strip()
    elif snapshots.is_dir() and len(list(snapshots.iterdir())) == 1:
        revision = next(snapshots.iterdir()).name  # a copied cache without refs
    else:
        return None
    folder = snapshots / revision
    if not folder.is_dir():
        return None
    files = sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.exists()
    )
    return folder, revision, files


def choose_layout(repo_id: str, files: Iterable[str]) -> tuple[Layout, list[str]] | None:
    """Which files of a repo listing to use: the ``transformers`` ones when complete, else
    Meta's original checkpoint. ``None`` when the listing holds neither.

    Returns:
        ``(layout, files to fetch)``.
    """
    names = list(files)
    present = set(names)
    if "config.json" in present:
        for weights in TRANSFORMERS_WEIGHTS:
            if weights in present:
                wanted = ["config.json", weights]
                if weights.endswith(".index.json"):
                    shards = [
                        n for n in names if n.startswith("model-") and n.endswith(".safetensors")
                    ]
                    if not shards:
                        continue
                    wanted += sorted(shards)
                return "transformers", wanted
    known = KNOWN_REPOS.get(repo_id)
    if known and known.original in present:
        return "original", [known.original]
    originals = sorted(n for n in names if n.lower().endswith(ORIGINAL_SUFFIXES) and "/" not in n)
    if len(originals) == 1:
        return "original", originals
    # Several checkpoints (e.g. a full and a distilled one): the repo name decides.
    stem = repo_id.rsplit("/", 1)[-1].replace("-", "_").lower()
    matching = [n for n in originals if Path(n).stem.replace("-", "_").lower() == stem]
    if len(matching) == 1:
        return "original", matching
    return None


def _network_errors() -> tuple[type[BaseException], ...]:
    """The exception types that mean "could not reach the hub" in this installation
    (``huggingface_hub`` 1.x uses ``requests``, 2.x ``httpx``)."""
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module, names in (
        ("httpx", ("TransportError",)),
        ("httpx2", ("TransportError",)),
        ("requests", ("ConnectionError", "Timeout")),
    ):
        try:
            imported = __import__(module)
        except ImportError:
            continue
        errors += [getattr(imported, n) for n in names if hasattr(imported, n)]
    return tuple(errors)


def _hub_errors() -> dict[str, type[BaseException]]:
    from huggingface_hub import errors

    names = (
        "GatedRepoError",
        "RepositoryNotFoundError",
        "RevisionNotFoundError",
        "LocalEntryNotFoundError",
        "OfflineModeIsEnabled",
        "HfHubHTTPError",
    )
    return {n: getattr(errors, n) for n in names if hasattr(errors, n)}


def _local_hint(what: str) -> str:
    return (
        f"The {what} weights are downloaded from the Hugging Face hub on first use and cached "
        "(HF_HOME); `fiftyone-ntt download` fetches them ahead, for machines without internet "
        "that share that cache. Alternatively pass a local folder (save_pretrained) or Meta's "
        "original checkpoint file path instead (e.g. --sam2 checkpoints/sam2_hiera_large.pt, "
        "--dinov2 checkpoints/dinov2_vitl14_pretrain.pth)."
    )


def explain_hub_error(repo_id: str, what: str, error: BaseException) -> ModelNotAvailableError:
    """A :class:`ModelNotAvailableError` that says what went wrong with ``repo_id`` and what
    to do: gated repo (licence + login), missing repo, network failure, offline mode."""
    known = _hub_errors()
    gated = known.get("GatedRepoError")
    missing = known.get("RepositoryNotFoundError")
    local_missing = known.get("LocalEntryNotFoundError")
    offline = known.get("OfflineModeIsEnabled")
    if gated is not None and isinstance(error, gated):
        return ModelNotAvailableError(
            f"{what} model {repo_id!r} is a gated repository: accept its licence on "
            f"https://huggingface.co/{repo_id} with your account, then log in on this machine "
            "(`huggingface-cli login`, or set HF_TOKEN to an access token) and retry "
            f"({type(error).__name__})."
        )
    if missing is not None and isinstance(error, missing):
        return ModelNotAvailableError(
            f"{what} model {repo_id!r} does not exist on the Hugging Face hub, or is private "
            f"and needs a login (`huggingface-cli login` / HF_TOKEN); check the id "
            f"({type(error).__name__}). {_local_hint(what)}"
        )
    if (offline is not None and isinstance(error, offline)) or hub_offline():
        return ModelNotAvailableError(
            f"{what} model {repo_id!r} is not in the local Hugging Face cache "
            f"({hub_cache_dir()}) and offline mode is on (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE). "
            "Unset offline mode on a machine with internet access to download it once, or "
            f"point HF_HOME at a cache that has it. {_local_hint(what)}"
        )
    if isinstance(error, _network_errors()) or (
        local_missing is not None and isinstance(error, local_missing)
    ):
        return ModelNotAvailableError(
            f"{what} model {repo_id!r} could not be downloaded: the Hugging Face hub could not "
            f"be reached (network error: {type(error).__name__}: {error}), and it is not in "
            f"the local cache ({hub_cache_dir()}). Check the connection or proxy "
            f"(HTTPS_PROXY), or set HF_ENDPOINT for a mirror. {_local_hint(what)}"
        )
    return ModelNotAvailableError(
        f"{what} model {repo_id!r} could not be downloaded ({type(error).__name__}: {error}). "
        f"{_local_hint(what)}"
    )


def cached_hub_weights(repo_id: str) -> HubWeights | None:
    """The weights of ``repo_id`` in the local cache (no network), or ``None``."""
    cached = cached_repo_files(repo_id)
    if cached is None:
        return None
    folder, revision, files = cached
    chosen = choose_layout(repo_id, files)
    if chosen is None:
        return None
    layout, wanted = chosen
    path = folder if layout == "transformers" else folder / wanted[0]
    return HubWeights(repo_id, layout, path, revision)


def list_repo_files(repo_id: str, what: str) -> list[str]:
    """The file names of a hub repo (network), with failures explained."""
    from huggingface_hub import HfApi

    try:
        return list(HfApi().list_repo_files(repo_id))
    except Exception as error:
        raise explain_hub_error(repo_id, what, error) from error


def download_files(
    repo_id: str, files: list[str], what: str, *, progress: bool = True
) -> tuple[Path, str | None]:
    """Download ``files`` of ``repo_id`` into the shared cache (huggingface_hub's progress
    bars unless ``progress=False``); returns the snapshot folder and its revision."""
    from huggingface_hub import hf_hub_download

    folder: Path | None = None
    kwargs: dict[str, Any] = {"cache_dir": hub_cache_dir()}
    if not progress:
        kwargs["tqdm_class"] = _silent_tqdm()
    for name in files:
        try:
            path = Path(hf_hub_download(repo_id, name, **kwargs))
        except TypeError:  # an old huggingface_hub without tqdm_class
            kwargs.pop("tqdm_class", None)
            path = Path(hf_hub_download(repo_id, name, **kwargs))
        except Exception as error:
            raise explain_hub_error(repo_id, what, error) from error
        folder = path.parent
        for _ in Path(name).parts[1:]:
            folder = folder.parent
    assert folder is not None
    return folder, folder.name


def _silent_tqdm() -> Any:
    from tqdm.auto import tqdm

    class Silent(tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return Silent


def resolve_hub_weights(repo_id: str, what: str, *, progress: bool = True) -> HubWeights:
    """The local weights of hub repo ``repo_id``, downloading them if needed and allowed.

    Order: the cached snapshot (``transformers`` files, else Meta's original file); offline,
    nothing else; otherwise the repo's listing decides (``transformers`` files when
    complete, else the original checkpoint) and those files are downloaded.

    Args:
        repo_id: e.g. ``"facebook/sam2-hiera-large"``.
        what: ``"SAM 2"`` or ``"DINOv2"``, for messages.
        progress: show download progress bars.

    Raises:
        ModelNotAvailableError: not cached and offline, gated, missing, or the network
            failed; the message says which and what to do.
        CheckpointError: the repo holds neither ``transformers`` files nor an original
            checkpoint.
    """
    from fiftyone_ntt.models.state_dict import CheckpointError

    cached = cached_hub_weights(repo_id)
    if cached is not None:
        return cached
    if hub_offline():
        raise explain_hub_error(repo_id, what, OSError("offline"))
    files = list_repo_files(repo_id, what)
    chosen = choose_layout(repo_id, files)
    if chosen is None:
        raise CheckpointError(
            f"hub repo {repo_id!r} holds neither transformers weights (config.json + "
            f"model.safetensors/pytorch_model.bin) nor one of Meta's original .pt/.pth "
            f"checkpoints (its files: {files[:12]}{' ...' if len(files) > 12 else ''}); "
            f"is it a {what} model? Download the checkpoint yourself and pass its path"
        )
    layout, wanted = chosen
    folder, revision = download_files(repo_id, wanted, what, progress=progress)
    path = folder if layout == "transformers" else folder / wanted[0]
    return HubWeights(repo_id, layout, path, revision)


def hub_config_file(repo_id: str, what: str) -> Path | None:
    """``config.json`` of a hub repo without its weights (cache first, then a small
    download), or ``None`` when the repo has none (original-only repos) or it cannot be
    fetched. Used to read a model's identity before loading it."""
    cached = cached_repo_files(repo_id)
    if cached is not None and "config.json" in cached[2]:
        return cached[0] / "config.json"
    known = KNOWN_REPOS.get(repo_id)
    if hub_offline() or (known is not None and known.layout == "original"):
        return None
    try:
        folder, _ = download_files(repo_id, ["config.json"], what, progress=False)
    except (ModelNotAvailableError, OSError):
        return None
    return folder / "config.json"
