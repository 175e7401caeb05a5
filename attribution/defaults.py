"""Documented defaults, as plain constants: what a setting means when its PAIRLENS_* variable is unset.

attribution.settings reads the environment over these; attribution.core uses them only as the
defaults of `Limits` (the operator's limits an edge passes in), never the environment itself.
"""

from __future__ import annotations

from typing import Final

DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_TOLERANCE = 1e-3
DEFAULT_RULE: Final = "gauss-legendre"
MAX_STEPS = 1024  # the most quadrature nodes any request may ask for (PAIRLENS_MAX_STEPS lowers it)
DEFAULT_MAX_TOKENS = 256
DEFAULT_MEMORY_BUDGET_MB = 2048
DEFAULT_MAX_TEXT_CHARS = 20_000
DEFAULT_MAX_PAGE_WORK = 1_500_000  # two 256-token texts, auto, default layer: 1,048,576
EXAMPLE_PAIR = ("A man is playing a guitar on stage.", "Someone performs music with an instrument.")
