"""The guide's Python examples run as written (docs/guides/faithfulness.md)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import pytest

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guides" / "faithfulness.md"


def test_the_guides_examples_run(minilm: Any, capsys: pytest.CaptureFixture[str]) -> None:
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) == 2
    namespace: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for block in blocks:  # the second block uses the first one's model
            exec(compile(block, str(GUIDE), "exec"), namespace)
    out = capsys.readouterr().out
    assert "Spearman, map vs sweep:" in out and "random deletion area" in out
    assert namespace["curves"].order == "pair" and namespace["sweep"].level == "word"
