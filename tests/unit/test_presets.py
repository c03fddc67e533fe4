"""Named presets resolve in Python and on the command line; free model choice on top; a
bank built with one encoder is refused with another. The hub is a fake offline cache holding
tiny models under the real repo names."""

from __future__ import annotations

import json

import pytest
from fake_hub import add_dinov2_repo, add_sam2_repo, snapshot
from test_cli import _write_split

from fiftyone_ntt import get_preset
from fiftyone_ntt.cli import main
from fiftyone_ntt.cli._common import UserError, config_from_args
from fiftyone_ntt.cli.parser import build_parser
from fiftyone_ntt.config import PRESETS, ModelConfig, NTTConfig
from fiftyone_ntt.models.dinov2 import DINOV2_SPECS
from fiftyone_ntt.models.sam2 import HIERA_SPECS
from fiftyone_ntt.models.tiny import (
    TINY_DINOV2_SPEC,
    TINY_HIERA_SPEC,
    tiny_dinov2_model,
    tiny_dinov3_model,
    tiny_sam2_model,
)
from fiftyone_ntt.presets import (
    PRESET_BENCHMARKS,
    preset_choice_label,
    preset_summary,
    preset_table_markdown,
    resolve_config,
)

pytestmark = [
    pytest.mark.unit,
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]

DINOV3_L = "facebook/dinov3-vitl16-pretrain-lvd1689m"


def test_the_four_presets():
    assert list(PRESETS) == ["default", "paper", "fast", "accurate"]
    # paper: exactly the published setup, sizes pinned to DINOv2's 518 px.
    assert get_preset("paper") == NTTConfig(
        models=ModelConfig(sam2="facebook/sam2-hiera-large", dinov2="facebook/dinov2-large"),
        reference_size=518,
        semantic_size=518,
        box_convention="paper",
    )
    default = get_preset("default")
    assert (default.models.sam2, default.models.dinov2) == (
        "facebook/sam2.1-hiera-large",
        "facebook/dinov2-large",
    )
    fast, accurate = get_preset("fast"), get_preset("accurate")
    assert (fast.models.sam2, fast.models.dinov2) == (
        "facebook/sam2.1-hiera-tiny",
        "facebook/dinov2-small",
    )
    assert (accurate.models.sam2, accurate.models.dinov2) == (
        "facebook/sam2.1-hiera-large",
        DINOV3_L,
    )
    # fast: a 16x16 grid (the decoder, the same for every Hiera size, dominates on CPUs).
    assert fast.points_per_side == 16
    assert all(PRESETS[n].points_per_side == 32 for n in ("default", "paper", "accurate"))
    for name in ("default", "fast", "accurate"):  # sizes follow the encoder
        assert PRESETS[name].reference_size is None and PRESETS[name].semantic_size is None
    with pytest.raises(ValueError, match=r"unknown preset 'quick'.*accurate"):
        get_preset("quick")


def test_resolve_config_free_choice():
    config = resolve_config("fast", encoder=DINOV3_L, device="cpu", points_per_side=8)
    assert config.models.dinov2 == DINOV3_L
    assert config.models.sam2 == "facebook/sam2.1-hiera-tiny"  # the preset's
    assert config.models.device == "cpu" and config.points_per_side == 8
    assert resolve_config("paper") == get_preset("paper")
    with pytest.raises(ValueError, match="empty"):
        resolve_config("default", proposer="  ")


def test_summaries_for_the_forms():
    fast = preset_summary("fast")
    assert (
        fast["proposer_label"] == "SAM 2.1 Hiera-T" and fast["encoder_label"] == "DINOv2 ViT-S/14"
    )
    assert fast["download_mb"] == 156 + 88 and not fast["gated"]
    accurate = preset_summary("accurate")
    assert accurate["gated"] and accurate["download_mb"] == 898 + 1213
    assert "DINOv3 ViT-L/16" in preset_choice_label("accurate")
    assert "16×16 prompts" in preset_choice_label("fast")
    assert "prompts" not in preset_choice_label("paper")  # the paper's grid goes unsaid
    # Measured times: a decimal under 10 s (6.5 s must not read as 6), whole seconds above.
    for name, (seconds, _) in PRESET_BENCHMARKS.items():
        shown = f"{seconds:.1f}" if seconds < 10 else f"{seconds:.0f}"
        assert f" {shown} s/image" in preset_choice_label(name), name
    table = preset_table_markdown()
    assert table.count("\n") == 1 + len(PRESETS)
    assert "| paper | SAM 2.0 Hiera-L | DINOv2 ViT-L/14 |" in table


def _args(*argv):
    return build_parser().parse_args(
        ["predict", "bank.safetensors", "--targets", "t.json", "--out", "o.json", *argv]
    )


def test_cli_preset_and_model_flags():
    config = config_from_args(_args("--preset", "accurate"))
    assert config.models.dinov2 == DINOV3_L
    config = config_from_args(_args("--preset", "fast", "--sam2", "yonigozlan/EdgeTAM-hf"))
    assert config.models.sam2 == "yonigozlan/EdgeTAM-hf"
    assert config.models.dinov2 == "facebook/dinov2-small"
    with pytest.raises(UserError, match="unknown preset 'fastest'"):
        config_from_args(_args("--preset", "fastest"))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setitem(HIERA_SPECS, TINY_HIERA_SPEC.key, TINY_HIERA_SPEC)
    monkeypatch.setitem(DINOV2_SPECS, TINY_DINOV2_SPEC.key, TINY_DINOV2_SPEC)
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sam2 = tiny_sam2_model(seed=3)
    for repo in ("facebook/sam2.1-hiera-large", "facebook/sam2.1-hiera-tiny"):
        add_sam2_repo(cache, repo, sam2)
    for repo in ("facebook/dinov2-large", "facebook/dinov2-small"):
        add_dinov2_repo(cache, repo, tiny_dinov2_model(seed=2))
    tiny_dinov3_model(seed=4).save_pretrained(snapshot(cache, DINOV3_L))
    return cache


def _run(tmp_path, capsys, command, *argv):
    imgs, gt = tmp_path / "imgs", tmp_path / "gt.json"
    if not gt.exists():
        (gt).write_text(json.dumps(_write_split(imgs, [(150, 70), (100, 120)], 0, 0)))
    if command == "build-bank":
        args = ["build-bank", str(gt), "--images", str(imgs)]
    else:
        args = ["predict", argv[0], "--targets", str(gt), "--images", str(imgs)]
        args += ["--points-per-side", "4"]
        argv = argv[1:]
    code = main([*args, *argv])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("preset", ["accurate", "fast"])
def test_cli_build_and_predict_with_a_preset(cache, tmp_path, capsys, caplog, preset):
    caplog.set_level("INFO", logger="fiftyone_ntt.models")
    bank, out = tmp_path / "bank.safetensors", tmp_path / "out.json"
    code, err = _run(tmp_path, capsys, "build-bank", "--out", str(bank), "--preset", preset)
    assert code == 0, err
    code, err = _run(tmp_path, capsys, "predict", str(bank), "--out", str(out), "--preset", preset)
    assert code == 0, err
    encoder = get_preset(preset).models.dinov2
    assert f"from hub {encoder} (hub:transformers@" in caplog.text
    assert json.loads(out.read_text())
    from fiftyone_ntt.memory_bank import MemoryBank

    loaded = MemoryBank.load(bank)
    family = "dinov3" if preset == "accurate" else "dinov2"
    assert loaded.encoder["family"] == family
    assert loaded.settings["reference_size"] == (592 if preset == "accurate" else 518)


def test_cli_refuses_a_bank_of_another_encoder_before_loading(cache, tmp_path, capsys):
    bank = tmp_path / "bank.safetensors"
    code, err = _run(tmp_path, capsys, "build-bank", "--out", str(bank), "--preset", "accurate")
    assert code == 0, err
    code, err = _run(
        tmp_path,
        capsys,
        "predict",
        str(bank),
        "--out",
        str(tmp_path / "o.json"),
        "--preset",
        "default",
    )
    assert code != 0
    assert "dinov3" in err and "not loaded" in err


def test_a_dinov3_encoder_on_the_paper_preset_is_refused_before_loading():
    with pytest.raises(ValueError, match=r"does not fit preset 'paper'.*reference_size=518.*592"):
        resolve_config("paper", encoder=DINOV3_L)
    assert resolve_config("default", encoder=DINOV3_L).models.dinov2 == DINOV3_L
    assert resolve_config("paper", encoder="facebook/dinov2-base").reference_size == 518
