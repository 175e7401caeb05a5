"""mkdocs hooks (mkdocs.yml `hooks:`): generated pages, benchmark results, guides added without editing the nav.

- A page holding `<!-- generated: settings -->` or `<!-- generated: json-schema -->` gets the table or the
  schema made from the code (tools/docgen.py) at build time.
- benchmarks/*_results.md stay in benchmarks/ and are published as pages under benchmarks/ (linked from
  the docs as ../benchmarks/NAME.md from a page one folder deep), listed under "Benchmarks".
- Every docs/guides/*.md that the nav does not list is appended to the "Guides" section, so a new guide
  appears by adding its file (put it in mkdocs.yml's nav to choose its place).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "tools"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import docgen  # noqa: E402

BENCHMARKS = ROOT / "benchmarks"


def _listed(nav: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(nav, str):
        found.add(nav)
    elif isinstance(nav, list):
        for item in nav:
            found |= _listed(item)
    elif isinstance(nav, dict):
        for value in nav.values():
            found |= _listed(value)
    return found


def _section(nav: list[Any], title: str) -> list[Any]:
    for item in nav:
        if isinstance(item, dict) and title in item and isinstance(item[title], list):
            return item[title]
    section: list[Any] = []
    nav.append({title: section})
    return section


def on_config(config: Any) -> Any:
    nav = config["nav"]
    listed = _listed(nav)
    docs = Path(config["docs_dir"])
    guides = _section(nav, "Guides")
    for page in sorted((docs / "guides").glob("*.md")):
        uri = f"guides/{page.name}"
        if uri not in listed:
            guides.append(uri)
    results = _section(nav, "Benchmarks")
    for page in sorted(BENCHMARKS.glob("*_results.md")):
        uri = f"benchmarks/{page.name}"
        if uri not in listed:
            results.append(uri)
    return config


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for page in sorted(BENCHMARKS.glob("*_results.md")):
        uri = f"benchmarks/{page.name}"
        if files.get_file_from_path(uri) is None:
            files.append(File.generated(config, uri, abs_src_path=str(page)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return docgen.fill(markdown)
