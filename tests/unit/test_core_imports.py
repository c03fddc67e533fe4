"""The core library never imports FiftyOne.

Every ``fiftyone_ntt`` module outside ``fiftyone_ntt.fiftyone*`` is imported in a fresh
interpreter in which importing ``fiftyone`` raises. Modules are discovered from the source
tree, so new modules are checked without editing this test.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = REPO_ROOT / "fiftyone_ntt"

_PROBE = r"""
import importlib, json, sys, traceback

class _BlockFiftyOne:
    def find_spec(self, name, path=None, target=None):
        if name == "fiftyone" or name.startswith("fiftyone."):
            raise ImportError(f"core code imported {name!r}")
        return None

sys.meta_path.insert(0, _BlockFiftyOne())
failures = {}
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except BaseException:
        failures[name] = traceback.format_exc(limit=-3)
leaked = sorted(m for m in sys.modules if m == "fiftyone" or m.startswith("fiftyone."))
print(json.dumps({"failures": failures, "leaked": leaked}))
"""


def core_modules() -> list[str]:
    """Names of all modules under fiftyone_ntt except fiftyone_ntt.fiftyone*, found on disk
    (nothing is imported to find them)."""
    names = ["fiftyone_ntt"]

    def walk(path: Path, prefix: str) -> None:
        for info in pkgutil.iter_modules([str(path)], prefix):
            if info.name.startswith("fiftyone_ntt.fiftyone"):
                continue
            names.append(info.name)
            if info.ispkg:
                walk(path / info.name.rsplit(".", 1)[1], info.name + ".")

    walk(PACKAGE_DIR, "fiftyone_ntt.")
    return sorted(names)


def _run_probe(modules: list[str]) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(modules)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_discovery_finds_core_modules_and_skips_the_adapter():
    modules = core_modules()
    assert "fiftyone_ntt.config" in modules
    assert "fiftyone_ntt.types" in modules
    assert not any(m.startswith("fiftyone_ntt.fiftyone") for m in modules)


def test_core_modules_import_without_fiftyone():
    report = _run_probe(core_modules())
    assert not report["failures"], "\n".join(
        f"{name}:\n{tb}" for name, tb in report["failures"].items()
    )
    assert report["leaked"] == []


def test_blocker_catches_a_fiftyone_import():
    """The probe really blocks fiftyone (else the test above would prove nothing)."""
    report = _run_probe(["fiftyone_ntt.config", "fiftyone.core.labels"])
    assert "fiftyone_ntt.config" not in report["failures"]
    assert "core code imported 'fiftyone" in report["failures"]["fiftyone.core.labels"]


def test_plugin_entry_imports_without_fiftyone():
    """FiftyOne (and pytest, which collects the repo root as a package) import the root
    ``__init__.py``; it must stay light and import the operators only in ``register``."""
    code = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('ntt_plugin', sys.argv[1])\n"
        "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
        "assert callable(mod.register)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fiftyone', 'torch')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(REPO_ROOT / "__init__.py")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_registering_the_plugin_does_not_load_torch():
    """The App imports every plugin's operators when it starts (and each worker does): the
    operators and the panel import the engine (torch, transformers) only when they run."""
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(REPO_ROOT)!r})\n"
        "import operators\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_the_import_contract_lists_every_core_module():
    """import-linter's "core never imports FiftyOne" contract names its modules one by one
    (pyproject.toml): a new core module must be added there, or the lint would not see it."""
    import tomllib

    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contract = next(
        c
        for c in config["tool"]["importlinter"]["contracts"]
        if "fiftyone" in c.get("forbidden_modules", []) and c["type"] == "forbidden"
    )
    listed = set(contract["source_modules"])
    top = {".".join(m.split(".")[:2]) for m in core_modules()}
    # the package root re-exports the adapter lazily; the CLI is the top glue (imports both)
    missing = sorted(top - listed - {"fiftyone_ntt", "fiftyone_ntt.__main__", "fiftyone_ntt.cli"})
    assert missing == [], f"add to the contract in pyproject.toml: {missing}"
