"""timm's RepViT and stock transformers' EdgeTAM as oracles, run in a child process.

Usage: ``python timm_oracle.py OUT_DIR [OUR_EDGETAM_FOLDER]``. Exit status 77: timm is not
available (the test skips and says what to install).

Where timm does not import (no torchvision, or a broken one: our CPU machines), it is
imported from a side folder holding ``pip install --no-deps --target DIR timm==1.0.31``
(``NTT_TIMM_ORACLE_DIR``, default ``<sys.prefix>/timm-oracle``) while a stand-in
``torchvision`` carrying only the names timm's *import* touches sits in ``sys.modules``; the
stand-in is removed again once timm is imported. RepViT uses none of those names at run time
(they are data transforms, dataset classes and a frozen batch norm), and transformers never
sees the stand-in. This runs in its own process so that nothing of it can leak into the test
session.

Writes to OUT_DIR:

- ``repvit_<name>.pt``: for each layout, timm's architecture name and ``create_model``
  arguments, a random state dict (convs, norms and batch-norm statistics all drawn), an input
  image and timm's feature maps.
- With OUR_EDGETAM_FOLDER (a ``save_pretrained`` folder written with our RepViT): ``stock.pt``
  (stock ``EdgeTamModel``'s loading info and FPN maps for the ``x.pt`` saved in that folder),
  and ``stock_folder/``, the same model saved again by stock transformers.
"""

from __future__ import annotations

import enum
import importlib.machinery
import os
import sys
import types
from pathlib import Path

NO_TIMM = 77

#: Layouts checked: EdgeTAM's own (full size), a small legacy one and a small later-release one
#: (the 1×1 token-mixer branch and batch norm differ), and a subset of the stages.
LAYOUTS = {
    "m1": ("repvit_m1.dist_in1k", {}),
    "m1_small": ("repvit_m1", {"embed_dim": (8, 16, 24, 32), "depth": (1, 2, 3, 1)}),
    "m0_9_small": ("repvit_m0_9", {"embed_dim": (16, 24, 32, 40), "depth": (2, 1, 2, 2)}),
    "m1_stages_1_2": ("repvit_m1", {"out_indices": (1, 2)}),
}


def _stand_in_torchvision() -> list[str]:
    """Put the names timm's import chain reads into ``sys.modules``; returns what was added."""

    def placeholder(name: str) -> type:
        def refuse(*_: object, **__: object) -> None:
            raise RuntimeError(f"torchvision.{name} is a test stand-in")

        return type(name, (), {"__init__": refuse})

    interpolation = enum.Enum(
        "InterpolationMode", "NEAREST NEAREST_EXACT BILINEAR BICUBIC BOX HAMMING LANCZOS"
    )
    contents = {
        "torchvision": {"__version__": "0+stand-in"},
        "torchvision.transforms": {
            "ToTensor": placeholder("ToTensor"),
            "InterpolationMode": interpolation,
        },
        "torchvision.transforms.functional": {"InterpolationMode": interpolation},
        "torchvision.datasets": {
            name: placeholder(name)
            for name in ("CIFAR100", "CIFAR10", "MNIST", "KMNIST", "FashionMNIST", "ImageFolder")
        },
        "torchvision.ops": {},
        "torchvision.ops.misc": {"FrozenBatchNorm2d": placeholder("FrozenBatchNorm2d")},
    }
    for name, attrs in contents.items():
        module = types.ModuleType(name)
        module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
        module.__path__ = []
        module.__dict__.update(attrs)
        sys.modules[name] = module
        parent, _, leaf = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], leaf, module)
    return list(contents)


def import_timm() -> types.ModuleType | None:
    side = Path(os.environ.get("NTT_TIMM_ORACLE_DIR") or Path(sys.prefix) / "timm-oracle")
    if (side / "timm").is_dir():
        sys.path.insert(0, str(side))
        added = _stand_in_torchvision()
        try:
            import timm
        finally:
            for name in added:
                del sys.modules[name]
        return timm
    try:
        import timm
    except (ImportError, RuntimeError):
        return None
    return timm


def _randomise(state: dict, generator) -> dict:
    import torch

    out = {}
    for key, value in state.items():
        if not value.is_floating_point():
            out[key] = value
        elif key.endswith("running_var"):
            out[key] = torch.rand(value.shape, generator=generator) + 0.5
        elif value.ndim == 4:
            out[key] = torch.randn(value.shape, generator=generator) * value[0].numel() ** -0.5
        else:
            out[key] = torch.randn(value.shape, generator=generator) * 0.2 + (
                1.0 if key.endswith("bn.weight") else 0.0
            )
    return out


def run_repvit(timm: types.ModuleType, out: Path) -> None:
    import torch

    generator = torch.Generator().manual_seed(0)
    for name, (arch, extra) in LAYOUTS.items():
        args = {"in_chans": 3, "features_only": True, "out_indices": (0, 1, 2, 3), **extra}
        model = timm.create_model(arch.split(".")[0], pretrained=False, num_classes=0, **args)
        state = _randomise(model.state_dict(), generator)
        model.load_state_dict(state, strict=True)
        model.eval()
        image = torch.randn((2, 3, 96, 128), generator=generator)
        with torch.no_grad():
            features = model(image)
        torch.save(
            {"arch": arch, "model_args": args, "state": state, "image": image, "out": features},
            out / f"repvit_{name}.pt",
        )


def run_stock_edgetam(timm: types.ModuleType, folder: Path, out: Path) -> None:
    import torch
    import transformers.models.timm_wrapper.modeling_timm_wrapper as wrapper

    # transformers decides "timm is available" from torchvision's presence, which the
    # stand-in is not: hand the wrapper the timm we imported.
    wrapper.timm = timm
    wrapper.requires_backends = lambda *_, **__: None
    from transformers import EdgeTamModel

    model, info = EdgeTamModel.from_pretrained(str(folder), output_loading_info=True)
    model.eval()
    assert type(model.vision_encoder.backbone).__name__ == "TimmWrapperModel"
    with torch.no_grad():
        fpn = model.vision_encoder(torch.load(folder / "x.pt")).fpn_hidden_states
    torch.save(
        {"info": {k: sorted(map(str, v)) for k, v in info.items()}, "fpn": list(fpn)},
        out / "stock.pt",
    )
    model.save_pretrained(str(out / "stock_folder"))


def main(argv: list[str]) -> int:
    out = Path(argv[1])
    timm = import_timm()
    if timm is None:
        return NO_TIMM
    run_repvit(timm, out)
    if len(argv) > 2:
        run_stock_edgetam(timm, Path(argv[2]), out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
