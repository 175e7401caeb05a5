"""The texts as text: tokens shaded by their totals, hover rules that outline each token's strongest partners."""

from __future__ import annotations

import numpy as np
import pytest

from attribution.viz.textview import partners, text_view_html


@pytest.fixture(scope="module")
def result(minilm):  # type: ignore[no-untyped-def]
    from attribution import explain

    return explain(minilm, "A man is playing a <b>guitar</b> on stage.", "Someone performs music with an instrument.")


def test_partners_are_the_strongest_cells_of_each_row_and_column() -> None:
    matrix = np.array([[0.1, -0.9, 0.3], [0.2, 0.0, -0.05]])
    rows, cols = partners(matrix, 2)
    assert rows == [[1, 2], [0, 2]] and cols == [[1, 0], [0, 1], [0, 1]]


def test_every_token_is_shown_escaped_with_its_total_and_hover_rules(result) -> None:  # type: ignore[no-untyped-def]
    markup = text_view_html(result, "pl-tv-0")
    n_a, n_b = result.shape
    assert markup.count("data-a='") == n_a + n_a + n_b * 3  # spans, each row's hover rule, each column's 3 partners
    assert "&lt;" in markup and "<b>guitar" not in markup
    guitar = result.a.tokens.index("guitar")
    best = int(np.argmax(np.abs(result.matrix[guitar])))
    assert f".pl-tv-0:has(.pl-tok[data-a='{guitar}']:hover) :is(.pl-tv-0 .pl-tok[data-b='{best}']" in markup
    total = float(np.sum(result.matrix[guitar]))
    assert f"row total {total:+.4f}" in markup
