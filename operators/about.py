"""``ntt_about``: what this plugin runs with (versions and the compute device)."""

from __future__ import annotations

import importlib.metadata
import os

import fiftyone.operators as foo
import fiftyone.operators.types as types
import yaml  # a FiftyOne dependency

import fiftyone_ntt
from fiftyone_ntt.config import get_preset
from fiftyone_ntt.fiftyone.dataset.model_cache import (
    describe_models,
    get_models,
    model_identity,
    test_models,
)

from ._forms import test_models_notice as test_models_lines

_MANIFEST = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fiftyone.yml"
)


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _plugin_version() -> str:
    with open(_MANIFEST) as f:
        return str(yaml.safe_load(f).get("version", "unknown"))


def _device() -> str:
    try:
        # deferred: torch, optional here (the page says when it is missing), loads only
        # when this runs
        import torch
    except ImportError:
        return "unknown (torch is not installed)"
    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu (no GPU found: large models are slow)"


def about() -> dict[str, str]:
    """The versions and device the plugin runs with, as shown by ``ntt_about``."""
    return {
        "plugin_version": _plugin_version(),
        "library_version": getattr(fiftyone_ntt, "__version__", "unknown"),
        "library_path": os.path.dirname(os.path.abspath(fiftyone_ntt.__file__)),
        "fiftyone_version": _version("fiftyone"),
        "torch_version": _version("torch"),
        "transformers_version": _version("transformers"),
        "device": _device(),
        "models": _models_mode(),
    }


def _models_mode() -> str:
    """Which models run, named as everywhere in the App: the test models (and that they
    mean nothing), or the real ones of the default preset (each form chooses its preset)."""
    # deferred: torch (preflight imports the run plan and its loops)
    from fiftyone_ntt.fiftyone.app.preflight import test_models_notice

    notice = test_models_notice()
    models = get_preset("default").models
    if notice is None:
        names = {"sam2": models.sam2, "dinov2": models.dinov2}
        return f"{describe_models(names)} (the 'default' preset; each form chooses)"
    try:
        test_models()
    except ValueError:  # a bad FIFTYONE_NTT_TEST_MODELS: the notice says what to do
        return notice
    encoder, proposer = get_models(models)  # the test models: small, cached for the runs
    return f"{describe_models(model_identity(encoder, proposer))}. {notice}"


class NTTAbout(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="ntt_about",
            label="NTT · About",
            description="About · Shows the plugin and library versions and the compute device",
            icon="info",
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view(
            "note",
            types.Notice(label="Shows the versions and the device the plugin runs with."),
        )
        test_models_lines(inputs)
        return types.Property(inputs, view=types.View(label="No Time to Train: about"))

    def execute(self, ctx):
        return {**about(), "weights": weights_rows()}

    def resolve_output(self, ctx):
        outputs = types.Object()
        for key, label in (
            ("plugin_version", "Plugin version"),
            ("library_version", "fiftyone_ntt version"),
            ("library_path", "fiftyone_ntt location"),
            ("fiftyone_version", "FiftyOne"),
            ("torch_version", "PyTorch"),
            ("transformers_version", "transformers"),
            ("device", "Device"),
            ("models", "Models"),
        ):
            outputs.str(key, label=label)
        # The presets' weights, as `fiftyone-ntt models` prints them.
        weights = types.TableView(label="Model weights (Hugging Face cache)")
        for key, header in _WEIGHT_COLUMNS.items():
            weights.add_column(key, label=header)
        outputs.list("weights", types.Object(), label="Model weights", view=weights)
        return types.Property(outputs, view=types.View(label="No Time to Train"))


_WEIGHT_COLUMNS = {
    "preset": "Preset",
    "model": "Model",
    "role": "Role",
    "files": "Files",
    "size": "Download",
    "cached": "Cached",
}


def weights_rows() -> list[dict[str, str]]:
    """The rows of :func:`fiftyone_ntt.models.catalog.weights_table`, as table cells."""
    # deferred: torch (the catalog imports the model families) loads only when this runs
    from fiftyone_ntt.models.catalog import weights_table

    rows = weights_table()
    return [
        {k: ("yes" if r[k] else "no") if k == "cached" else str(r[k]) for k in _WEIGHT_COLUMNS}
        for r in rows
    ]
