"""The two texts as text: each token shaded by its row (text A) or column (text B) total, and hovering a
token outlines its strongest partners in the other text (CSS only: no script).

Pure: an Attribution (at the level shown) in, escaped HTML out. Long pairs read without the matrix.
"""

from __future__ import annotations

import html
import math

import numpy as np

from ..result import Attribution

PARTNERS = 3  # partners outlined per hovered token


def _shade(value: float, strongest: float) -> str:
    """Background of a token: red for a positive total, blue for a negative one, alpha by |value|."""
    if not math.isfinite(value) or strongest <= 0:
        return "transparent"
    alpha = 0.08 + 0.62 * min(abs(value) / strongest, 1.0)
    return f"rgba(214,96,77,{alpha:.2f})" if value >= 0 else f"rgba(67,147,195,{alpha:.2f})"


def partners(matrix: np.ndarray, k: int = PARTNERS) -> tuple[list[list[int]], list[list[int]]]:
    """For each row, the k columns with the largest |cell|; for each column, the k rows (strongest first)."""
    strength = np.abs(np.nan_to_num(np.asarray(matrix, dtype=np.float64)))
    rows = [[int(j) for j in np.argsort(-strength[i], kind="stable")[:k]] for i in range(strength.shape[0])]
    cols = [[int(i) for i in np.argsort(-strength[:, j], kind="stable")[:k]] for j in range(strength.shape[1])]
    return rows, cols


def text_view_html(view: Attribution, box: str, k: int = PARTNERS) -> str:
    """Both texts with tokens shaded by their totals; hovering one outlines its k strongest partners.

    `box` is a CSS class unique on the page (one per model column), so the hover rules stay inside it.
    """
    matrix = np.asarray(view.matrix, dtype=np.float64)
    row_totals, col_totals = np.nansum(matrix, axis=1), np.nansum(matrix, axis=0)
    strongest = float(max(np.nanmax(np.abs(row_totals), initial=0.0), np.nanmax(np.abs(col_totals), initial=0.0)))
    of_row, of_col = partners(matrix, k)
    rules = []
    for i, cols in enumerate(of_row):
        targets = ", ".join(f".{box} .pl-tok[data-b='{j}']" for j in cols)
        rules.append(f".{box}:has(.pl-tok[data-a='{i}']:hover) :is({targets})")
    for j, rows in enumerate(of_col):
        targets = ", ".join(f".{box} .pl-tok[data-a='{i}']" for i in rows)
        rules.append(f".{box}:has(.pl-tok[data-b='{j}']:hover) :is({targets})")
    style = ",\n".join(rules) + " { outline: 2px solid currentColor; outline-offset: 1px; }" if rules else ""

    def tokens(side: str, names: list[str], totals: np.ndarray) -> str:
        spans = []
        for index, (name, total) in enumerate(zip(names, totals.tolist(), strict=True)):
            what = "row" if side == "a" else "column"
            spans.append(
                f"<span class='pl-tok' data-{side}='{index}' style='background:{_shade(total, strongest)}' "
                f"title='{html.escape(name)}: {what} total {total:+.4f}'>{html.escape(name)}</span>"
            )
        return " ".join(spans)

    return (
        f"<style>{style}</style><div class='pl-textview {box}'>"
        f"<div class='pl-textline'><b>A</b> {tokens('a', view.a.tokens, row_totals)}</div>"
        f"<div class='pl-textline'><b>B</b> {tokens('b', view.b.tokens, col_totals)}</div></div>"
    )
