"""Test helpers: hand-built results from the flat field names of the JSON form."""

from __future__ import annotations

import re
from typing import Any

from attribution.result import Attribution


def flat_attribution(**fields: Any) -> Attribution:
    """An Attribution from flat keyword fields (`tokens_a`, `pos_b`, `tag_a`, ... as in to_dict())."""
    return Attribution.from_dict(fields)


def shown_text(markdown: str) -> str:
    """What a Markdown body of literal text shows: backslash escapes of punctuation removed."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)
