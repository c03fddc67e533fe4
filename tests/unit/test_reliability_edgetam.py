"""Bad EdgeTAM weights on the command line (issue 9 §3, issue 12 §1): table-driven.

Each case runs ``fiftyone-ntt predict --sam2 <EdgeTAM folder>`` and asserts exit code 2, a
``fiftyone-ntt: error:`` line that names the value and the fix, no traceback, no output file,
and that the folder, the bank and the images are hash-identical afterwards. No database is
involved, so the file lives with the unit tests.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from test_reliability_hub import _predict, _tree_hash, data  # noqa: F401  (fixture)

from fiftyone_ntt.cli import main
from fiftyone_ntt.models.tiny import tiny_edgetam_model

pytestmark = [
    pytest.mark.unit,
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]


def _saved(tmp: Path) -> Path:
    folder = tmp / "edgetam"
    tiny_edgetam_model(seed=0).save_pretrained(folder)
    return folder


def _edit_backbone(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    config["vision_config"]["backbone_config"].update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def _missing_tensor(tmp, mp):
    from safetensors.torch import load_file, save_file

    folder = _saved(tmp)
    weights = load_file(folder / "model.safetensors")
    del weights["vision_encoder.backbone.timm_model.stages_1.downsample.ffn.conv2.c.weight"]
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def _no_weights(tmp, mp):
    folder = _saved(tmp)
    (folder / "model.safetensors").unlink()
    return folder


def _not_repvit_without_timm(tmp, mp):
    mp.setitem(sys.modules, "timm", None)
    folder = _saved(tmp)
    _edit_backbone(folder, architecture="resnet50")
    return folder


def _unsupported_repvit_argument_without_timm(tmp, mp):
    mp.setitem(sys.modules, "timm", None)
    folder = _saved(tmp)
    config = json.loads((folder / "config.json").read_text())
    args = config["vision_config"]["backbone_config"]["model_args"]
    _edit_backbone(folder, model_args={**args, "drop_path_rate": 0.1})
    return folder


def _not_features_only(tmp, mp):
    mp.setitem(sys.modules, "timm", None)
    folder = _saved(tmp)
    _edit_backbone(folder, model_args={"in_chans": 3})
    return folder


CASES = [
    (
        "folder lacking a backbone tensor",
        _missing_tensor,
        ["lacks 1 EdgeTAM tensors", "stages_1.downsample.ffn.conv2.c.weight", "save_pretrained"],
    ),
    ("folder without weights", _no_weights, ["not a loadable EdgeTAM folder", "save_pretrained"]),
    (
        "non-RepViT backbone, no timm",
        _not_repvit_without_timm,
        ["'resnet50' is not a RepViT", "needs the 'timm' package", "pip install timm"],
    ),
    (
        "RepViT argument we do not reproduce, no timm",
        _unsupported_repvit_argument_without_timm,
        ["['drop_path_rate'] are not reproduced without timm", "pip install timm"],
    ),
    (
        "RepViT that is not a feature backbone, no timm",
        _not_features_only,
        ["lacks features_only=True", "pip install timm"],
    ),
]


@pytest.mark.parametrize(("setup", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_edgetam_weights(data, tmp_path, monkeypatch, capsys, setup, expected):  # noqa: F811
    folder = setup(tmp_path, monkeypatch)
    before = _tree_hash(data, folder)
    code = main(_predict(data, tmp_path, sam2=str(folder)))
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("fiftyone-ntt: error: ") or "\nfiftyone-ntt: error: " in err, err
    assert str(folder) in err
    for fragment in expected:
        assert fragment in err, (fragment, err)
    assert "Traceback" not in err
    assert not (tmp_path / "r.json").exists()
    assert _tree_hash(data, folder) == before


def _count_cases() -> dict[str, int]:
    """How many bad-input cases this file covers (reported in the issue)."""
    return {"EdgeTAM weights": len(CASES)}


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(_count_cases()))
