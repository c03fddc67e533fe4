"""No module of the package or the plugin takes a private name (``_name``) from another:
what a module shares is public, so that its file shows what others depend on (issue 21)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("fiftyone_ntt", "operators")


def _private_imports(path: Path, root: Path = REPO) -> list[str]:
    """``from <ours> import _name``, and ``<name imported from ours>._name``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    imported: set[str] = set()  # names bound by imports from our packages
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if not (node.level > 0 or module.split(".")[0] in PACKAGES):
                continue
            for alias in node.names:
                imported.add(alias.asname or alias.name)
                if _private(alias.name):
                    where = f"{'.' * node.level}{module}".rstrip(".") if module else "."
                    found.append(f"{path.relative_to(root)}:{node.lineno} {where}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PACKAGES:
                    imported.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in imported
            and _private(node.attr)
        ):
            found.append(f"{path.relative_to(root)}:{node.lineno} {node.value.id}.{node.attr}")
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_module_imports_a_private_name_of_another():
    found = [
        hit
        for package in PACKAGES
        for path in sorted((REPO / package).rglob("*.py"))
        for hit in _private_imports(path)
    ]
    assert found == []


def test_the_check_sees_a_private_import(tmp_path):
    """The scan above finds what it looks for (else it would prove nothing)."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from fiftyone_ntt.fiftyone.app.activity import _DONE_OF\n"
        "from .._forms import invalid\n"
        "from .layout import _buttons as buttons\n"
        "from . import layout\n"
        "layout._table([])\n"
    )
    assert _private_imports(probe, tmp_path) == [
        "probe.py:1 fiftyone_ntt.fiftyone.app.activity._DONE_OF",
        "probe.py:3 .layout._buttons",
        "probe.py:5 layout._table",
    ]
