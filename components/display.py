"""Which rows and columns of a result the page shows: token or word level, special tokens or not."""

from __future__ import annotations

from attribution.result import Attribution, without_special_tokens
from attribution.viz.heatmap import figure_width
from attribution.viz.layout import MIN_CELL, ON_PAGE, cell_for

LEVELS = ("token", "word")


def display_view(result: Attribution, level: str = "token", show_special: bool = True) -> Attribution:
    """The result as shown: `level` "token" or "word" (words via the library's to_words)."""
    if level not in LEVELS:
        raise ValueError(f"level must be 'token' or 'word', not {level!r}")
    if level == "word":
        return result.to_words(keep_special=show_special)
    return result if show_special else without_special_tokens(result)


# A page this wide (px) holds maps side by side; 1440 px with the sidebar open leaves about 1050.
SIDE_BY_SIDE_PX = 1050
# Below 1200 px of window width the model columns stack: assets/style.css (.st-key-pl-models) says so.


def estimated_tokens(text: str) -> int:
    """Rough token count of a text (words x 1.35 plus the two special tokens), before tokenizing."""
    return int(len(text.split()) * 1.35) + 2


def column_cell(text_a: str, text_b: str, n_models: int) -> float | None:
    """Cell size (px) for n_models maps side by side, or None for one model (its own cell size).

    Decided before computing (the layout is drawn first), from the texts' estimated lengths:
    the largest cell (up to the usual one) at which each map fits its column; never below
    MIN_CELL, so a long map keeps readable labels and scrolls sideways inside its column.
    """
    if n_models < 2:
        return None
    n = max(estimated_tokens(text_a), estimated_tokens(text_b))
    fixed = figure_width(n, style=ON_PAGE) - n * cell_for(n)
    column = SIDE_BY_SIDE_PX / n_models - 16
    return float(min(cell_for(n), max((column - fixed) / n, MIN_CELL)))
