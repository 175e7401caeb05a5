"""Pages of the documentation that are generated from the code, so they cannot drift from it.

    settings_table()   the PAIRLENS_* variables: every name attribution/settings.py reads, its default
                       (get_settings() in an environment without them), its accepted range (what the
                       code answers to an out-of-range value) and its meaning (settings.py's own table)
    json_schema_text() attribution.result.json_schema() as indented JSON

tools/mkdocs_hooks.py puts them where a page says `<!-- generated: settings -->` or
`<!-- generated: json-schema -->`; tests/docs/test_docs.py checks them against the code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

from attribution import settings as settings_module
from attribution.errors import InputError

MARKERS = {"settings": "<!-- generated: settings -->", "json-schema": "<!-- generated: json-schema -->"}
_RANGE = re.compile(r"between (\S+) and (\S+?)\.?$")


def variables() -> list[str]:
    """Every PAIRLENS_* name that attribution/settings.py reads, in the order it reads them."""
    source = inspect.getsource(settings_module).split('"""', 2)[-1]  # the code, not the docstring's table
    names: list[str] = []
    for name in re.findall(r"[\"'](PAIRLENS_[A-Z_]+)[\"']", source):
        if name not in names:
            names.append(name)
    return names


def meanings() -> dict[str, str]:
    """name -> meaning, from the table in attribution/settings.py's docstring."""
    rows: dict[str, str] = {}
    for line in (settings_module.__doc__ or "").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("PAIRLENS_"):
            rows[cells[0]] = cells[2]
    return rows


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """os.environ without any PAIRLENS_* variable, plus `values`; restored afterwards."""
    saved = dict(os.environ)
    try:
        for key in [k for k in os.environ if k.startswith("PAIRLENS_")]:
            del os.environ[key]
        os.environ.update(values)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def accepted_range(name: str) -> str:
    """'1 to 1024' for a whole-number variable (the code's own answer to an out-of-range value), else ''."""
    with environment(**{name: str(-(10**30))}):
        try:
            settings_module.get_settings()
        except InputError as exc:
            match = _RANGE.search(str(exc))
            if match:
                return f"{match.group(1)} to {match.group(2)}"
    return ""


def default(name: str) -> str:
    """The value get_settings() gives the variable's field when it is unset, as text."""
    field = name.removeprefix("PAIRLENS_").lower()
    with environment():
        current = settings_module.get_settings()
    if field not in {f.name for f in dataclasses.fields(current)}:
        return "?"
    value = getattr(current, field)
    if isinstance(value, Path):
        home = str(Path.home())
        return str(value).replace(home, "~", 1)
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def settings_table() -> str:
    """The configuration reference as a Markdown table."""
    described = meanings()
    lines = ["| variable | default | accepted | meaning |", "|---|---|---|---|"]
    for name in variables():
        meaning = described.get(name, "")
        lines.append(f"| `{name}` | `{default(name)}` | {accepted_range(name) or '-'} | {meaning} |")
    return "\n".join(lines)


def json_schema_text() -> str:
    from attribution.result import json_schema

    return "```json\n" + json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n```"


def fill(markdown: str) -> str:
    """A page's markdown with every generated marker replaced."""
    if MARKERS["settings"] in markdown:
        markdown = markdown.replace(MARKERS["settings"], settings_table())
    if MARKERS["json-schema"] in markdown:
        markdown = markdown.replace(MARKERS["json-schema"], json_schema_text())
    return markdown
