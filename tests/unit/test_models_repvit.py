"""Our pure-PyTorch RepViT == timm's, and EdgeTAM folders interchange with stock transformers.

The oracle tests run timm (and stock transformers' timm-backed EdgeTAM) in a child process
(``timm_oracle.py``): where timm cannot import because torchvision is missing, the child takes
timm from a side folder (``pip install --no-deps --target <sys.prefix>/timm-oracle
timm==1.0.31``, or ``NTT_TIMM_ORACLE_DIR``) with a stand-in torchvision; without either they
skip, saying so (they fail instead where ``NTT_REQUIRE_TIMM_ORACLE`` is set, as in CI).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from fiftyone_ntt.models.edgetam.repvit import REPVIT_VARIANTS, RepVitBackbone, repvit_spec

pytestmark = pytest.mark.unit

ORACLE = Path(__file__).with_name("timm_oracle.py")


def _backbone(arch: str, **model_args) -> RepVitBackbone:
    args = {"in_chans": 3, "features_only": True, "out_indices": (0, 1, 2, 3), **model_args}
    return RepVitBackbone(SimpleNamespace(architecture=arch, model_args=args)).eval()


def test_m1_layout_shapes_and_names():
    model = _backbone("repvit_m1.dist_in1k")
    assert model.spec == REPVIT_VARIANTS["repvit_m1"]
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 96))
    assert [tuple(f.shape) for f in out.last_hidden_state] == [
        (1, 48, 16, 24),
        (1, 96, 8, 12),
        (1, 192, 4, 6),
        (1, 384, 2, 3),
    ]
    assert out.hidden_states is None
    names = model.state_dict()
    # The wrapper's names, as in EdgeTAM checkpoints (legacy M1: conv+BN 1×1 branch, no BN).
    for name in (
        "timm_model.stem.conv2.bn.running_var",
        "timm_model.stages_0.blocks.0.se.fc1.weight",
        "timm_model.stages_0.blocks.0.token_mixer.conv1.c.weight",
        "timm_model.stages_2.blocks.13.channel_mixer.conv2.bn.num_batches_tracked",
        "timm_model.stages_3.downsample.spatial_downsample.c.weight",
    ):
        assert name in names
    assert "timm_model.stages_0.blocks.1.se.fc1.weight" not in names  # SE on every other block
    assert "timm_model.stages_0.blocks.0.token_mixer.bn.weight" not in names
    assert names["timm_model.stages_1.blocks.0.se.fc1.weight"].shape == (24, 96, 1, 1)


def test_later_release_layout_and_stage_subset():
    model = _backbone("repvit_m0_9", out_indices=(1, 2))
    names = model.state_dict()
    assert "timm_model.stages_0.blocks.0.token_mixer.bn.running_mean" in names
    assert "timm_model.stages_0.blocks.0.token_mixer.conv1.bias" in names
    assert not any(n.startswith("timm_model.stages_3") for n in names)  # not built
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64), output_hidden_states=True)
    assert [tuple(f.shape) for f in out.last_hidden_state] == [(2, 96, 8, 8), (2, 192, 4, 4)]
    assert out.hidden_states is out.last_hidden_state
    assert model.channels == (96, 192)


@pytest.mark.parametrize(
    ("arch", "args", "message"),
    [
        ("resnet50", {"features_only": True}, r"'resnet50' is not a RepViT architecture"),
        ("repvit_m1", {}, r"lacks features_only=True"),
        ("repvit_m1", {"features_only": True, "drop_rate": 0.1}, r"\['drop_rate'\] are not"),
        ("repvit_m1", {"features_only": True, "in_chans": 1}, r"in_chans=1; only 3"),
        ("repvit_m1", {"features_only": True, "out_indices": (0, 4)}, r"out_indices \(0, 4\)"),
        (
            "repvit_m1",
            {"features_only": True, "embed_dim": (8, 16), "depth": (1,)},
            r"differ in length",
        ),
    ],
)
def test_unsupported_configs_are_named(arch, args, message):
    with pytest.raises(ValueError, match=message):
        repvit_spec(arch, args)


def test_hub_names_resolve():
    for name in ("timm/repvit_m1.dist_in1k", "hf-hub:timm/repvit_m1.dist_in1k", "repvit_m1"):
        assert repvit_spec(name, {"features_only": True}).legacy


# ------------------------------------------------------------------------------ oracles


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    """Run timm_oracle.py once: timm's RepViTs, and stock EdgeTAM on our saved tiny model."""
    from fiftyone_ntt.models.tiny import tiny_edgetam_model

    root = tmp_path_factory.mktemp("timm-oracle")
    ours = tiny_edgetam_model(seed=3)
    ours.save_pretrained(root / "ours")
    image = torch.randn((1, 3, 256, 256), generator=torch.Generator().manual_seed(4))
    torch.save(image, root / "ours" / "x.pt")
    run = subprocess.run(
        [sys.executable, str(ORACLE), str(root), str(root / "ours")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if run.returncode == 77:
        message = (
            "timm is not importable: install it beside the venv with `pip install --no-deps "
            f"--target {Path(sys.prefix) / 'timm-oracle'} timm==1.0.31` (or set "
            "NTT_TIMM_ORACLE_DIR)"
        )
        if os.environ.get("NTT_REQUIRE_TIMM_ORACLE"):  # CI: the setup installs it
            pytest.fail(message)
        pytest.skip(message)
    assert run.returncode == 0, run.stderr[-3000:]
    return SimpleNamespace(root=root, ours=ours, image=image)


@pytest.mark.parametrize("layout", ["m1", "m1_small", "m0_9_small", "m1_stages_1_2"])
def test_repvit_equals_timm(oracle, layout):
    data = torch.load(oracle.root / f"repvit_{layout}.pt")
    model = _backbone(data["arch"], **data["model_args"])
    # strict both ways: every tensor of timm's model has our name and shape, and vice versa
    model.timm_model.load_state_dict(data["state"], strict=True)
    with torch.no_grad():
        ours = model(data["image"]).last_hidden_state
    assert len(ours) == len(data["out"])
    for mine, theirs in zip(ours, data["out"], strict=True):
        scale = float(theirs.abs().max())
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5 * scale)


def test_stock_transformers_loads_our_folder_exactly(oracle):
    stock = torch.load(oracle.root / "stock.pt")
    assert stock["info"]["missing_keys"] == []
    assert stock["info"]["unexpected_keys"] == []
    with torch.no_grad():
        ours = oracle.ours.vision_encoder(oracle.image).fpn_hidden_states
    for mine, theirs in zip(ours, stock["fpn"], strict=True):
        scale = float(theirs.abs().max())
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5 * scale)


def test_we_load_a_folder_saved_by_stock_transformers(oracle):
    from fiftyone_ntt.models.edgetam import load_edgetam

    model, _ = load_edgetam(str(oracle.root / "stock_folder"))
    assert isinstance(model.vision_encoder.backbone, RepVitBackbone)
    expected = oracle.ours.state_dict()
    got = model.state_dict()
    assert set(got) == set(expected)
    for name, tensor in expected.items():
        assert torch.equal(got[name], tensor), name
