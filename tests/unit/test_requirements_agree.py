"""Issue 20 (install the FiftyOne way): the plugin's requirements.txt, which
``fiftyone plugins requirements @fiftyone-ntt/no-time-to-train --install`` installs, is the
same list as pyproject.toml's dependencies, and the dependencies we cannot test ahead carry
upper bounds."""

from __future__ import annotations

import pytest
import tomllib
from packaging.requirements import Requirement

pytestmark = pytest.mark.unit

#: Dependencies whose next releases may break us: each needs an upper bound.
BOUNDED = ("torch", "transformers", "fiftyone")


def _requirements_txt(repo_root) -> list[str]:
    path = repo_root / "requirements.txt"
    assert path.is_file(), "requirements.txt is missing at the repository root"
    lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line]


def _pyproject(repo_root) -> list[str]:
    with open(repo_root / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["dependencies"]


def test_requirements_txt_is_pyprojects_dependencies(repo_root):
    txt = {Requirement(r).name.lower(): str(Requirement(r)) for r in _requirements_txt(repo_root)}
    toml = {Requirement(r).name.lower(): str(Requirement(r)) for r in _pyproject(repo_root)}
    assert txt == toml, "requirements.txt and pyproject.toml list different dependencies"
    assert len(txt) == len(_requirements_txt(repo_root))  # no name twice


@pytest.mark.parametrize("name", BOUNDED)
def test_untested_releases_are_excluded(repo_root, name):
    (requirement,) = [
        Requirement(r) for r in _pyproject(repo_root) if Requirement(r).name.lower() == name
    ]
    assert any(spec.operator in ("<", "<=", "~=", "==") for spec in requirement.specifier), (
        f"{requirement}: give {name} an upper bound (the newest release tested)"
    )
