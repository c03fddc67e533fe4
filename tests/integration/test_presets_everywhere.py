"""Issue 12 §2: a preset (with free model choices on top) resolves to the same configuration
everywhere a user can name it: Python (``resolve_config``), the command line (``--preset``,
``--sam2``, ``--dinov2`` of ``build-bank``/``predict``, and ``protocol``), and the App form of
*build memory bank* (its dropdown and "advanced" fields, through ``execute_operator``). A
choice one of them refuses, every one refuses, naming the value.

The form's configuration is the one its ``execute`` hands to the library (``build_bank`` is
replaced by a recorder here, so no model runs); the form's refusals are FiftyOne's validation
of ``resolve_input``, as in the App.
"""

from __future__ import annotations

import pytest
from test_ntt_operators import GT, _run, _validation_error

pytestmark = pytest.mark.integration

DINOV3_L = "facebook/dinov3-vitl16-pretrain-lvd1689m"
DINOV3_S = "facebook/dinov3-vits16-pretrain-lvd1689m"
EDGETAM = "yonigozlan/EdgeTAM-hf"

#: (preset, proposer, encoder): None keeps the preset's model
AGREE = [
    ("paper", None, None),
    ("default", None, None),
    ("fast", None, None),
    ("accurate", None, None),
    ("fast", None, DINOV3_S),
    ("default", EDGETAM, None),
    ("accurate", "facebook/sam2.1-hiera-small", "facebook/dinov2-base"),
    ("paper", "facebook/sam2.1-hiera-tiny", "facebook/dinov2-base"),
]
#: (preset, proposer, encoder, words every refusal must contain)
REFUSED = [
    ("paper", None, DINOV3_L, [DINOV3_L, "does not fit preset 'paper'", "'accurate'"]),
    ("quick", None, None, ["unknown preset 'quick'"]),
]


def _python(preset, proposer, encoder):
    from fiftyone_ntt.presets import resolve_config

    return resolve_config(preset, proposer=proposer, encoder=encoder)


def _cli_argv(command, preset, proposer, encoder) -> list[str]:
    argv = {
        "build-bank": ["build-bank", "refs.json", "--images", "imgs", "--out", "b.safetensors"],
        "predict": ["predict", "bank.safetensors", "--targets", "t.json", "--out", "o.json"],
    }[command]
    argv += ["--preset", preset]
    argv += ["--sam2", proposer] if proposer else []
    argv += ["--dinov2", encoder] if encoder else []
    return argv


def _cli(command):
    def resolve(preset, proposer, encoder):
        from fiftyone_ntt.cli._common import config_from_args
        from fiftyone_ntt.cli.parser import build_parser

        args = build_parser().parse_args(_cli_argv(command, preset, proposer, encoder))
        return config_from_args(args)

    return resolve


def _protocol(preset, proposer, encoder):
    """``fiftyone-ntt protocol ... --preset --sam2 --dinov2`` (``run_protocol``'s config)."""
    from fiftyone_ntt.fiftyone.protocols.run import _config

    return _config(preset, None, proposer, encoder)


RESOLVERS = {
    "python": _python,
    "cli build-bank": _cli("build-bank"),
    "cli predict": _cli("predict"),
    "cli protocol": _protocol,
}


def _form_params(preset, proposer, encoder) -> dict:
    params = {"gt_field": GT, "bank_key": "b", "preset": preset}
    if proposer or encoder:
        params.update(advanced_models=True, proposer=proposer or "", encoder=encoder or "")
    return params


@pytest.fixture
def form_config(painted_dataset, monkeypatch):
    """``resolve(preset, proposer, encoder)``: the configuration the *build memory bank* form
    runs with those choices (its execute's call to the library, recorded)."""
    import importlib
    import pkgutil

    import fiftyone_ntt.fiftyone
    import fiftyone_ntt.fiftyone.banks.build as banks

    # Import every adapter module before the patch: a module first imported while it is in
    # place (e.g. the protocols runner, by a resolver below) would bind the stand-in with its
    # top-level ``from ... import build_bank`` for the rest of the session.
    for module in pkgutil.walk_packages(fiftyone_ntt.fiftyone.__path__, "fiftyone_ntt.fiftyone."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    seen = {}

    def record(collection, gt_field, bank_key, **kwargs):
        seen["config"] = kwargs["config"]
        return {"key": bank_key, "classes": [], "shots": {}, "num_references": 0}

    monkeypatch.setattr(banks, "build_bank", record)

    def resolve(preset, proposer, encoder):
        seen.clear()
        result = _run("ntt_build_bank", painted_dataset, _form_params(preset, proposer, encoder))
        assert "config" in seen, result.result
        return seen["config"]

    return resolve


@pytest.mark.parametrize("case", AGREE, ids=lambda c: "+".join(map(str, c)))
def test_a_preset_resolves_identically_everywhere(case, form_config):
    preset, proposer, encoder = case
    expected = _python(*case)
    # the choice is applied, not silently dropped
    assert expected.models.sam2 == (proposer or _python(preset, None, None).models.sam2)
    assert expected.models.dinov2 == (encoder or _python(preset, None, None).models.dinov2)
    for where, resolve in RESOLVERS.items():
        assert resolve(*case) == expected, where
    assert form_config(*case) == expected, "App form"


@pytest.mark.parametrize("case", REFUSED, ids=lambda c: "+".join(map(str, c[:3])))
def test_a_choice_refused_somewhere_is_refused_everywhere(case, painted_dataset):
    from fiftyone_ntt.cli._common import UserError

    *choice, words = case
    messages = {}
    for where, resolve in RESOLVERS.items():
        with pytest.raises((ValueError, UserError)) as info:
            resolve(*choice)
        messages[where] = str(info.value)
    messages["App form"] = _validation_error(
        "ntt_build_bank", painted_dataset, _form_params(*choice)
    )
    for where, message in messages.items():
        for word in words:
            assert word in message, (where, word, message)
