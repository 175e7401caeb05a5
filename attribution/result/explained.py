"""How much of the score the map accounts for, in one number and plain words (pure; the page only renders it).

The explained score splits exactly into three parts (see Attribution):
    score = attribution sum (all cells of the map) + reference terms − integration error.
The reference terms are what the model gives the empty reference input (special tokens kept,
every other token padded); no token pair carries them. Cells and reference terms often have
opposite signs and are each larger than the score (+2.15 and −1.58 for a cosine of 0.573), so
"cells / score" (here 376 %) says little. The share used here is by magnitude:

    map share = |cells| / (|cells| + |reference terms| + |integration error|)   in [0, 1]

1 means the map is the whole score (exact mode on a model trained for it); 0.5 means the
reference contributes as much as all token pairs together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .record import Attribution

MOSTLY = 0.9  # from this map share on, the map "accounts for nearly all of the score"


@dataclass(frozen=True)
class ScoreExplained:
    """The score's split and what it means for reading the map.

    share: the map's part of the score by magnitude, in [0, 1] (NaN when every part is 0).
    headline: one sentence with the number; reading: what it means for the map; alternative:
    exact mode offered where it applies (None otherwise).
    """

    score: float
    cells: float
    reference: float
    error: float
    share: float
    headline: str
    reading: str
    alternative: str | None


def map_share(cells: float, reference: float, error: float) -> float:
    """|cells| / (|cells| + |reference| + |error|); NaN when all are 0 or one is not finite."""
    parts = (abs(cells), abs(reference), abs(error))
    total = sum(parts)
    if not all(math.isfinite(p) for p in parts) or total == 0:
        return math.nan
    return parts[0] / total


def percent(share: float) -> str:
    """'58 %', '100 %', '< 1 %' ('–' for NaN)."""
    if not math.isfinite(share):
        return "–"
    if 0 < share < 0.005:
        return "< 1 %"
    return f"{100 * share:.0f} %"


def explain_score(result: Attribution) -> ScoreExplained:
    """The map's share of the explained score, a plain-words reading, and the exact-mode offer."""
    label = "cosine" if result.similarity == "cos" else "dot product"
    cells, reference, error = result.attribution_sum, result.reference_terms, -result.integration_error
    share = map_share(cells, reference, error)
    headline = (
        f"The map explains {percent(share)} of the score: its cells add up to {cells:+.3f}; the rest, "
        f"{reference:+.3f}, is the model's response to the empty reference."
    )
    if math.isfinite(share) and share >= MOSTLY:
        reading = (
            f"Read the cells as the parts of the {label}: they add up to nearly all of {result.score:.3f}, "
            "so a cell's share of the sum is its share of the score."
        )
    else:
        reading = (
            f"Read the map for which token pairs matter more than others: its cells do not add up to the "
            f"{label} {result.score:.3f} on their own, because the reference terms ({reference:+.3f}) pull the "
            "total back. A cell's share is a share of the cells' sum, not of the score."
        )
    alternative = None
    if result.mode != "exact":
        if result.exact_model:
            alternative = (
                "This model was trained for exact mode: choose Mode 'exact' (Advanced options) and the map "
                "explains the whole score, with no reference terms."
            )
        else:
            alternative = (
                "Exact mode (Advanced options) makes the map add up to its score in full, but for a model not "
                "trained for it that score is the similarity of f(x) − f(reference), not the model's own; "
                "the command pairlens finetune trains an exact model."
            )
    elif result.explains_other_score:
        alternative = (
            f"Here the map explains the shifted embeddings' {label} {result.score:.3f}, not the model's own "
            f"{result.own_score:.3f}: choose Mode 'approximate' to explain the model's score."
        )
    return ScoreExplained(result.score, cells, reference, error, share, headline, reading, alternative)
