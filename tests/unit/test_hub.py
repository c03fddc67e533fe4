"""Hub ids load for every repo layout, offline, from fake caches that mirror the real repos.

SAM 2.0 repos hold only Meta's ``.pt`` (converted on load), SAM 2.1 repos both formats (the
``transformers`` files are taken), DINOv2 repos ``transformers`` files. Each load is compared
with loading the same weights from a local file: identical outputs. Downloads are exercised
with a stub ``hf_hub_download`` that copies from a fake "remote" snapshot, and the failure
messages with stubs raising the exceptions ``huggingface_hub`` raises.
"""

from __future__ import annotations

import dataclasses
import json

import httpx2
import pytest
import torch
from fake_hub import MIRRORED, add_dinov2_repo, add_sam2_repo, snapshot, write_meta_dinov2
from meta_format import sam2_hf_to_meta

from fiftyone_ntt.config import PRESETS
from fiftyone_ntt.models import load_encoder, load_models, load_proposer
from fiftyone_ntt.models.checkpoints import CheckpointError, ModelNotAvailableError
from fiftyone_ntt.models.dinov2 import DINOV2_SPECS
from fiftyone_ntt.models.hub import choose_layout, resolve_hub_weights
from fiftyone_ntt.models.sam2 import HIERA_SPECS
from fiftyone_ntt.models.tiny import (
    TINY_DINOV2_SPEC,
    TINY_HIERA_SPEC,
    tiny_dinov2_model,
    tiny_sam2_model,
)

pytestmark = pytest.mark.unit


@pytest.fixture
def tiny_specs(monkeypatch):
    monkeypatch.setitem(HIERA_SPECS, TINY_HIERA_SPEC.key, TINY_HIERA_SPEC)
    monkeypatch.setitem(DINOV2_SPECS, TINY_DINOV2_SPEC.key, TINY_DINOV2_SPEC)


@pytest.fixture
def cache(tmp_path, monkeypatch, tiny_specs):
    """An empty hub cache, offline."""
    folder = tmp_path / "hf" / "hub"
    folder.mkdir(parents=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(folder))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return folder


@pytest.fixture(scope="module")
def sam2_model():
    return tiny_sam2_model(seed=3)


@pytest.fixture(scope="module")
def dinov2_model():
    return tiny_dinov2_model(seed=2)


@pytest.fixture(scope="module")
def image():
    return torch.rand((3, 1024, 1024), generator=torch.Generator().manual_seed(5))


def _same_proposals(a, b, image):
    ea, eb = a.embed(image), b.embed(image)
    assert torch.equal(ea.image, eb.image)
    points = torch.tensor([[100.5, 200.5], [700.5, 300.5], [512.0, 900.0]])
    got, want = a.propose(ea, points, 0.0), b.propose(eb, points, 0.0)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def _local_sam2_file(tmp_path, model, version):
    path = tmp_path / f"local_{version}.pt"
    torch.save({"model": sam2_hf_to_meta(model.state_dict(), version)}, path)
    return path


def test_sam2_0_repo_with_only_the_original_file_loads(cache, tmp_path, sam2_model, image):
    folder = add_sam2_repo(cache, "facebook/sam2-hiera-large", sam2_model)
    assert sorted(p.name for p in folder.iterdir()) == [
        ".gitattributes",
        "README.md",
        "sam2_hiera_l.yaml",
        "sam2_hiera_large.pt",
    ]
    proposer = load_proposer("facebook/sam2-hiera-large", device="cpu")
    assert proposer.identity["source"] == "facebook/sam2-hiera-large"
    assert proposer.identity["weights"].startswith("hub:original:sam2_hiera_large.pt@")
    assert proposer.identity["version"] == "2.0"
    local = load_proposer(str(_local_sam2_file(tmp_path, sam2_model, "2.0")), device="cpu")
    assert local.identity["weights"] == "file"
    _same_proposals(proposer, local, image)


def test_sam2_1_repo_with_both_formats_takes_the_transformers_files(
    cache, tmp_path, sam2_model, image
):
    folder = add_sam2_repo(cache, "facebook/sam2.1-hiera-large", sam2_model)
    assert {"config.json", "model.safetensors", "sam2.1_hiera_large.pt"} <= {
        p.name for p in folder.iterdir()
    }
    proposer = load_proposer("facebook/sam2.1-hiera-large", device="cpu")
    assert proposer.identity["weights"].startswith("hub:transformers@")
    assert proposer.identity["version"] == "2.1"  # from the hub id: the config cannot tell
    local = load_proposer(str(_local_sam2_file(tmp_path, sam2_model, "2.1")), device="cpu")
    _same_proposals(proposer, local, image)


def test_dinov2_repo_loads_like_the_original_file(cache, tmp_path, dinov2_model):
    add_dinov2_repo(cache, "facebook/dinov2-large", dinov2_model)
    encoder = load_encoder("facebook/dinov2-large", device="cpu")
    assert encoder.identity["weights"].startswith("hub:transformers@")
    local = load_encoder(str(write_meta_dinov2(tmp_path / "d.pth", dinov2_model)), device="cpu")
    pixels = torch.rand((1, 3, 518, 518), generator=torch.Generator().manual_seed(1))
    assert torch.equal(encoder.encode(pixels), local.encode(pixels))


def _preset_ids():
    ids = set()
    for preset in PRESETS.values():
        ids |= {preset.models.sam2, preset.models.dinov2}
    return ids


def test_every_sam2_and_dinov2_id_of_the_presets_is_mirrored():
    ours = {i for i in _preset_ids() if i.startswith(("facebook/sam2", "facebook/dinov2"))}
    assert {"facebook/sam2-hiera-large", "facebook/sam2.1-hiera-large"} <= ours
    assert ours <= set(MIRRORED), f"add {sorted(ours - set(MIRRORED))} to fake_hub.MIRRORED"


@pytest.mark.parametrize("name", ["paper", "default"])
def test_every_preset_loads_offline_from_the_cache(cache, sam2_model, dinov2_model, name):
    config = PRESETS[name].models
    for repo in (config.sam2, config.dinov2):
        if MIRRORED[repo][0] == "dinov2":
            add_dinov2_repo(cache, repo, dinov2_model)
        else:
            add_sam2_repo(cache, repo, sam2_model)
    encoder, proposer = load_models(dataclasses.replace(config, device="cpu"))
    assert encoder.identity["source"] == config.dinov2
    assert proposer.identity["source"] == config.sam2
    expected = "2.0" if name == "paper" else "2.1"
    assert proposer.identity["version"] == expected


# --------------------------------------------------------------------------------------------
# Downloads (stubbed transport) and failures
# --------------------------------------------------------------------------------------------


@pytest.fixture
def online(cache, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    return cache


def _stub_remote(monkeypatch, remote, fetched):
    """``list_repo_files`` / ``hf_hub_download`` served from a local "remote" cache."""
    import huggingface_hub

    def list_repo_files(self, repo_id, **kwargs):
        folder = remote / ("models--" + repo_id.replace("/", "--")) / "snapshots"
        snap = next(folder.iterdir())
        return sorted(str(p.relative_to(snap)) for p in snap.rglob("*") if p.is_file())

    def hf_hub_download(repo_id, filename, *, cache_dir, **kwargs):
        source = next((remote / ("models--" + repo_id.replace("/", "--")) / "snapshots").iterdir())
        target = snapshot(cache_dir, repo_id) / filename
        target.write_bytes((source / filename).read_bytes())
        fetched.append((repo_id, filename))
        return str(target)

    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", list_repo_files)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)


def test_download_fetches_only_the_files_it_needs(
    online, tmp_path, monkeypatch, sam2_model, dinov2_model, image
):
    remote = tmp_path / "remote"
    add_sam2_repo(remote, "facebook/sam2-hiera-large", sam2_model)
    add_sam2_repo(remote, "facebook/sam2.1-hiera-large", sam2_model)
    add_dinov2_repo(remote, "facebook/dinov2-large", dinov2_model)
    fetched: list = []
    _stub_remote(monkeypatch, remote, fetched)
    proposer = load_proposer("facebook/sam2-hiera-large", device="cpu")
    assert fetched == [("facebook/sam2-hiera-large", "sam2_hiera_large.pt")]
    assert proposer.identity["weights"].startswith("hub:original:sam2_hiera_large.pt")
    weights = resolve_hub_weights("facebook/sam2.1-hiera-large", "SAM 2", progress=False)
    assert weights.layout == "transformers"
    assert fetched[1:] == [
        ("facebook/sam2.1-hiera-large", "config.json"),
        ("facebook/sam2.1-hiera-large", "model.safetensors"),
    ]
    load_encoder("facebook/dinov2-large", device="cpu")
    assert fetched[3:] == [
        ("facebook/dinov2-large", "config.json"),
        ("facebook/dinov2-large", "model.safetensors"),
    ]
    # Now cached: no further downloads, even online.
    again = load_proposer("facebook/sam2-hiera-large", device="cpu")
    assert len(fetched) == 5
    _same_proposals(proposer, again, image)


def _response(status):
    return httpx2.Response(status, request=httpx2.Request("GET", "https://huggingface.co/api/x"))


def _raise_on_listing(monkeypatch, error):
    import huggingface_hub

    def list_repo_files(self, repo_id, **kwargs):
        raise error

    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", list_repo_files)


def test_gated_repo_says_accept_the_licence_and_log_in(online, monkeypatch):
    from huggingface_hub.errors import GatedRepoError

    error = GatedRepoError("403 Client Error. Cannot access gated repo", response=_response(403))
    _raise_on_listing(monkeypatch, error)
    with pytest.raises(ModelNotAvailableError) as info:
        load_encoder("facebook/dinov3-vitl16-pretrain-lvd1689m", device="cpu")
    message = str(info.value)
    assert "'facebook/dinov3-vitl16-pretrain-lvd1689m' is a gated repository" in message
    assert "https://huggingface.co/facebook/dinov3-vitl16-pretrain-lvd1689m" in message
    assert "accept its licence" in message
    assert "huggingface-cli login" in message and "HF_TOKEN" in message
    assert "network" not in message


@pytest.mark.parametrize(
    "error",
    [
        httpx2.ConnectError("[Errno 111] Connection refused"),
        httpx2.ConnectTimeout("timed out"),
    ],
    ids=["refused", "timeout"],
)
def test_network_failure_says_network_and_how_to_pass_a_file(online, monkeypatch, error):
    _raise_on_listing(monkeypatch, error)
    with pytest.raises(ModelNotAvailableError) as info:
        load_proposer("facebook/sam2-hiera-large", device="cpu")
    message = str(info.value)
    assert "could not be reached (network error" in message
    assert type(error).__name__ in message and str(error) in message
    assert "--sam2 checkpoints/sam2_hiera_large.pt" in message
    assert "gated" not in message


def test_download_failure_after_listing_is_a_network_error(online, monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def hf_hub_download(*args, **kwargs):
        raise LocalEntryNotFoundError("An error happened while trying to locate the file")

    monkeypatch.setattr(
        huggingface_hub.HfApi, "list_repo_files", lambda self, r, **k: ["sam2_hiera_large.pt"]
    )
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    with pytest.raises(ModelNotAvailableError, match="network error: LocalEntryNotFoundError"):
        load_proposer("facebook/sam2-hiera-large", device="cpu")


def test_missing_repo_says_check_the_id(online, monkeypatch):
    from huggingface_hub.errors import RepositoryNotFoundError

    _raise_on_listing(monkeypatch, RepositoryNotFoundError("404", response=_response(404)))
    with pytest.raises(ModelNotAvailableError, match="does not exist on the Hugging Face hub"):
        load_proposer("facebook/sam3-hiera-huge", device="cpu")


def test_repo_with_neither_format_is_refused_with_its_files(online, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(
        huggingface_hub.HfApi,
        "list_repo_files",
        lambda self, r, **k: ["README.md", "model.onnx", "config.json"],
    )
    with pytest.raises(CheckpointError) as info:
        load_proposer("someone/sam2-onnx", device="cpu")
    message = str(info.value)
    assert "'someone/sam2-onnx' holds neither transformers weights" in message
    assert "model.onnx" in message


def test_choose_layout():
    assert choose_layout("a/b", ["config.json", "model.safetensors", "x.pt"]) == (
        "transformers",
        ["config.json", "model.safetensors"],
    )
    sharded = ["config.json", "model.safetensors.index.json", "model-00002-of-00002.safetensors"]
    sharded.append("model-00001-of-00002.safetensors")
    assert choose_layout("a/b", sharded)[1][-2:] == [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ]
    assert choose_layout("a/b", ["config.json", "b.pt"]) == ("original", ["b.pt"])
    assert choose_layout("a/my-model", ["x.pt", "my_model.pt"]) == ("original", ["my_model.pt"])
    assert choose_layout("a/b", ["x.pt", "y.pt"]) is None
    assert choose_layout("a/b", ["README.md"]) is None


def test_cached_repo_without_weights_is_not_taken_offline(cache):
    folder = snapshot(cache, "facebook/dinov2-large")
    (folder / "config.json").write_text(json.dumps({"model_type": "dinov2"}))
    with pytest.raises(ModelNotAvailableError, match="offline mode is on"):
        load_encoder("facebook/dinov2-large", device="cpu")
