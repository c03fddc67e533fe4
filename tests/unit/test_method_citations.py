"""Every section of docs/method.md that the code cites exists, and nothing points outside the
repository (issue 21 §6).

Docstrings and comments in ``fiftyone_ntt/``, ``operators/`` and ``scripts/`` cite the
specification as ``docs/method.md §N`` or, for short, a bare ``§N`` (``issue N §M`` is an issue
reference and is not checked). A cited ``§N item M`` (or ``rule M``, ``step M``) must be a
numbered list item of that section. README.md and docs/*.md are checked for their
``method.md §N`` / ``method §N`` citations.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
METHOD = ROOT / "docs" / "method.md"
CODE_FOLDERS = ("fiftyone_ntt", "operators", "scripts")
TEXT_SUFFIXES = {".py", ".js", ".jsx", ".ts", ".md", ".yml", ".yaml", ".sh", ".txt", ".toml"}

_HEADING = re.compile(r"^#{1,6}\s+(\d+(?:\.\d+)*)\.?\s", re.MULTILINE)
_ITEM = re.compile(r"^\s*(\d+)\.\s", re.MULTILINE)
#: ``§N`` with an optional ``item/rule/step M`` after it.
_CITATION = re.compile(r"§(\d+(?:\.\d+)*)(?:,?\s+(?:item|rule|step)s?\s+(\d+))?")
#: What, right before a ``§``, makes it a reference to something other than docs/method.md.
_NOT_METHOD = re.compile(
    r"(?:issue\s+\d+(?:\.\d+)?"  # an issue's own section: "issue 20 §6"
    r"|(?<![\w/.-])(?![\w/.-]*\bmethod\.md)[\w/.-]+\.md"  # another document: "benchmarks.md §3"
    r")\s*$"
)
#: In README/docs only citations that name the method are checked.
_NAMED = re.compile(r"method(?:\.md)?\s+$")


def method_sections(text: str) -> dict[str, set[str]]:
    """``{section number: numbers of its own numbered list items}`` of a method document."""
    sections: dict[str, set[str]] = {}
    headings = list(_HEADING.finditer(text))
    for i, heading in enumerate(headings):
        end = headings[i + 1].start() if i + 1 < len(headings) else len(text)
        body = text[heading.end() : end]
        sections[heading.group(1)] = {m.group(1) for m in _ITEM.finditer(body)}
    return sections


def bad_citations(
    text: str, sections: dict[str, set[str]], *, named_only: bool = False
) -> list[str]:
    """The citations in ``text`` that name no section (or no item) of ``sections``."""
    bad = []
    for line_no, line in enumerate(text.splitlines(), 1):
        for match in _CITATION.finditer(line):
            before = line[: match.start()]
            if _NOT_METHOD.search(before):
                continue
            if named_only and not _NAMED.search(before):
                continue
            number, item = match.group(1), match.group(2)
            if number not in sections:
                bad.append(f"line {line_no}: §{number} is not a section: {line.strip()}")
            elif item is not None and item not in sections[number]:
                bad.append(f"line {line_no}: §{number} has no item {item}: {line.strip()}")
            elif re.match(r"\s+Behavioural", line[match.end() :]):
                bad.append(
                    f"line {line_no}: 'Behavioural N' is the notes' numbering; cite "
                    f"§11.2 item N: {line.strip()}"
                )
    return bad


def _code_files() -> list[Path]:
    files = []
    for folder in CODE_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix in TEXT_SUFFIXES and "__pycache__" not in path.parts:
                files.append(path)
    return files


@pytest.fixture(scope="module")
def sections() -> dict[str, set[str]]:
    return method_sections(METHOD.read_text(encoding="utf-8"))


def test_method_document_has_the_cited_sections_numbered(sections):
    # The numbering the code has always cited: a renumbering must come with new citations.
    for number in ("0", "1.1", "1.2", "1.3", "2.1", "2.2", "2.3", "2.4", "3", "4.1", "5"):
        assert number in sections
    for number in ("6", "7", "8", "9.5", "10", "11.1", "11.2", "12", "13"):
        assert number in sections
    assert sections["11.2"] >= {str(i) for i in range(1, 9)}
    assert sections["2.2"] >= {"1", "2", "3", "4"}


def test_every_cited_section_exists(sections):
    problems = []
    for path in _code_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        problems += [f"{path.relative_to(ROOT)} {p}" for p in bad_citations(text, sections)]
    assert not problems, "\n".join(problems)


def test_readme_and_docs_cite_existing_sections(sections):
    problems = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        # method.md's own cross-references are bare §N; elsewhere only named citations count
        named_only = path != METHOD
        found = bad_citations(text, sections, named_only=named_only)
        problems += [f"{path.relative_to(ROOT)} {p}" for p in found]
    assert not problems, "\n".join(problems)


def test_no_file_points_to_the_team_notes():
    offenders = [
        str(path.relative_to(ROOT))
        for path in [*_code_files(), ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
        if "shared/docs" in path.read_text(encoding="utf-8", errors="replace")
    ]
    assert not offenders, f"cite docs/method.md instead of the team notes in {offenders}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("# 5. Inference\n(docs/method.md §5)", 0),
        ("# 5. Inference\n(docs/method.md §6)", 1),
        ("# 5. Inference\n(method §5.1)", 1),
        ("# 5. Inference\n1. one\n2. two\n(§5 item 2)", 0),
        ("# 5. Inference\n1. one\n(§5, step 3)", 1),
        ("# 5. Inference\n(issue 20 §6) and (issue 9.2 §7)", 0),
        ("# 5. Inference\nsee docs/benchmarks.md §3", 0),
        ("# 5. Inference\n(§5-§6)", 1),
        ("# 5. Inference\n(§5 Behavioural 2)", 1),
    ],
)
def test_the_checker_finds_what_it_should(text, expected):
    sections = method_sections(text)
    assert len(bad_citations(text, sections)) == expected, bad_citations(text, sections)
