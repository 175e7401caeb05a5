"""The documentation cannot go stale: its Python examples run, its generated pages match the code,
and the README stays short and says how to test."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import docgen  # noqa: E402

FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
SKIP = re.compile(r"<!--\s*docs-test:\s*skip\s*\((.+?)\)\s*-->\s*$")
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])


def python_blocks(page: Path) -> list[tuple[int, str, str | None]]:
    """(line number, code, skip reason or None) of every ```python block of a page."""
    text = page.read_text()
    blocks = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = [x for x in text[: match.start()].splitlines() if x.strip()]
        skip = SKIP.search(before[-1]) if before else None
        blocks.append((line, match.group(1), skip.group(1) if skip else None))
    return blocks


def test_the_docs_have_examples() -> None:
    counted = {page.relative_to(ROOT).as_posix(): len(python_blocks(page)) for page in PAGES}
    assert counted["README.md"] >= 1
    assert sum(counted.values()) >= 10, counted


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_python_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every block of a page, in order, in one namespace (a later block uses an earlier one's names)."""
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    namespace: dict[str, object] = {"__name__": "__docs__"}
    ran = 0
    for line, code, skip in python_blocks(page):
        if skip is not None:
            continue
        exec(compile(code, f"{page.relative_to(ROOT)}:{line}", "exec"), namespace)
        ran += 1
    assert ran, f"{page}: every example is skipped"


def test_skips_give_a_reason() -> None:
    for page in PAGES:
        for line, _, skip in python_blocks(page):
            assert skip is None or len(skip.strip()) >= 10, f"{page}:{line}: say why the example cannot run"


def test_configuration_page_lists_every_setting() -> None:
    """Every variable settings.py reads is in the generated table with a meaning, and maps to a Settings field."""
    from attribution.settings import Settings

    names = docgen.variables()
    fields = {f.name for f in dataclasses.fields(Settings)}
    assert names and all(name.removeprefix("PAIRLENS_").lower() in fields for name in names), names
    meanings = docgen.meanings()
    assert [n for n in names if not meanings.get(n)] == [], "add the variable to the table in settings.py's docstring"
    table = docgen.settings_table()
    for name in names:
        assert f"| `{name}` |" in table
    assert "| `PAIRLENS_MAX_TOKENS` | `256` | 4 to 8192 |" in table
    page = (ROOT / "docs" / "operations" / "configuration.md").read_text()
    assert docgen.MARKERS["settings"] in page  # the page holds the generated table, not a copy


def test_json_schema_page_is_generated() -> None:
    from attribution.result import json_schema

    text = docgen.json_schema_text()
    assert json.loads(text.removeprefix("```json\n").removesuffix("\n```")) == json_schema()
    assert docgen.MARKERS["json-schema"] in (ROOT / "docs" / "reference" / "json-schema.md").read_text()


def test_readme_is_short_and_says_how_to_test() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 12 * 1024, f"README.md is {len(readme.encode())} bytes; move detail into docs/"
    assert "make test" in readme and "make run" in readme
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / link).exists(), link


def test_every_guide_is_reachable() -> None:
    """Pages under docs/ are in mkdocs.yml's nav, or are guides the hook appends to it."""
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in (ROOT / "docs").rglob("*.md"):
        uri = page.relative_to(ROOT / "docs").as_posix()
        assert uri in nav or uri.startswith("guides/"), f"{uri} is in no nav section of mkdocs.yml"
