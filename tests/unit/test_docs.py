"""The documents stand alone: nothing points outside the repository, every "docs/design.md §N"
names a section that exists, every relative link resolves, and the decisions are in number
order (issue 20)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SKIPPED_DIRS = {".git", ".venv", ".venv-tools", ".data", "build", "dist", "__pycache__"}
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".js", ".html", ".css", ".toml", ".txt", ".cfg"}
TEXT_NAMES = {"Makefile", "Dockerfile", "MANIFEST.in"}
# Spelled in pieces, so that this file does not name them itself.
OUTSIDE = ("DESIGN" + ".md", "STYLE" + ".md", ".." + "/shared")
SECTION_REFERENCE = re.compile(r"docs/design\.md ((?:§\d+(?:, | and )?)+)")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _text_files() -> list[Path]:
    files = []
    for path in ROOT.rglob("*"):
        relative = path.relative_to(ROOT)
        if any(part in SKIPPED_DIRS or part.endswith(".egg-info") for part in relative.parts):
            continue
        if path.is_file() and (path.suffix in TEXT_SUFFIXES or path.name in TEXT_NAMES):
            files.append(path)
    return files


def _design_sections() -> list[int]:
    text = (DOCS / "design.md").read_text()
    return [int(n) for n in re.findall(r"^## (\d+)\. ", text, flags=re.MULTILINE)]


def test_nothing_points_at_a_document_outside_the_repository():
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _text_files()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if any(pointer in line for pointer in OUTSIDE)
    ]
    assert found == []


PLANNED_SECTIONS: tuple[int, ...] = ()  # the design's sections not yet in the code
BUILT_SECTIONS = (12, 13, 14)  # the "where it goes next" sections that are


def test_the_design_keeps_its_fourteen_sections_and_marks_the_planned_ones():
    assert _design_sections() == list(range(1, 15))
    text = (DOCS / "design.md").read_text()
    states = dict(re.findall(r"^\| (\d+) \| [^|]+ \| (.+?) \|$", text, flags=re.MULTILINE))
    assert set(states) == {str(n) for n in range(1, 15)}, "the state table lists every section"
    for number in range(1, 15):
        section = text.split(f"\n## {number}. ", 1)[1].split("\n## ", 1)[0]
        planned = "planned" in states[str(number)]
        assert ("Planned, not yet built" in section) == planned, (
            f"§{number}: the table says {states[str(number)]!r}, the section must agree"
        )
    for number in PLANNED_SECTIONS + BUILT_SECTIONS:
        section = text.split(f"\n## {number}. ", 1)[1].split("\n## ", 1)[0]
        planned = "Planned, not yet built" in section
        assert planned == (number in PLANNED_SECTIONS), f"§{number}: planned is {planned}"


def test_every_design_section_cited_exists():
    sections = set(_design_sections())
    cited = {
        f"{path.relative_to(ROOT)}: §{number}"
        for path in _text_files()
        for match in SECTION_REFERENCE.finditer(path.read_text(errors="replace"))
        for number in re.findall(r"§(\d+)", match.group(1))
        if int(number) not in sections
    }
    assert cited == set()


def test_the_section_references_are_found_at_all():
    # The check above would pass on a pattern that matches nothing.
    sample = "(federation, docs/design.md §10, §11) and docs/design.md §6 and §9: ..."
    found = [re.findall(r"§(\d+)", m.group(1)) for m in SECTION_REFERENCE.finditer(sample)]
    assert found == [["10", "11"], ["6", "9"]]
    references = sum(
        len(SECTION_REFERENCE.findall(path.read_text(errors="replace"))) for path in _text_files()
    )
    assert references > 20


def test_relative_links_of_the_readme_and_docs_resolve():
    broken = []
    for document in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        for target in LINK.findall(document.read_text()):
            if "://" in target or target.startswith("#"):
                continue
            if not (document.parent / target.split("#")[0]).exists():
                broken.append(f"{document.relative_to(ROOT)}: {target}")
    assert broken == []


def test_decisions_are_in_number_order_and_each_number_is_used_once():
    text = (DOCS / "decisions.md").read_text()
    numbers = [int(n) for n in re.findall(r"^## D(\d+)\. ", text, flags=re.MULTILINE)]
    assert numbers == sorted(numbers), "decisions.md: sections out of number order"
    assert len(numbers) == len(set(numbers)), "decisions.md: a number used twice"
