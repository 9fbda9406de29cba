"""Every document the code cites is in this repository (a reader who clones it can follow every reference),
and nothing cites the team's notes outside it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [p for folder in ("attrwidgets", "js", "tests", "scripts", "benchmarks", "notebooks")
           for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".ts", ".ipynb", ".sh", ".md")
           and "node_modules" not in p.parts]
SOURCES += [ROOT / "README.md", ROOT / "pyproject.toml", *(ROOT / "docs").rglob("*.md")]
CITATION = re.compile(r"\bdocs/[\w./-]+?\.md\b")
OUTSIDE = re.compile(r"\b(METHODS|RECIPES|DESIGN)\.md\b|\.\./shared\b")


def test_sources_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in SOURCES}
    assert "attrwidgets/core/estimate.py" in names and "docs/architecture.md" in names


def test_every_cited_doc_exists():
    missing = sorted({f"{p.relative_to(ROOT)} cites {m}" for p in SOURCES
                      for m in CITATION.findall(p.read_text(encoding="utf-8", errors="replace"))
                      if not (ROOT / m).is_file()})
    assert not missing, "\n".join(missing)


def test_nothing_cites_notes_outside_the_repository():
    found = sorted({f"{p.relative_to(ROOT)}: {m.group(0)}" for p in SOURCES if p.name != "test_docs_cited.py"
                    for m in OUTSIDE.finditer(p.read_text(encoding="utf-8", errors="replace"))})
    assert not found, "\n".join(found)
