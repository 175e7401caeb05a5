"""Models side by side: the cell size chosen before computing, and the shared colour scale named on the map."""

from __future__ import annotations

import numpy as np
from test_components import make_result

from attribution.viz.heatmap import build_heatmap
from attribution.viz.layout import MIN_CELL, cell_for
from components.display import column_cell

LONG = " ".join(["word"] * 80)


def test_one_model_keeps_its_own_cell_and_several_share_the_width() -> None:
    assert column_cell("a b c", "d e f", 1) is None
    two = column_cell("a man plays", "someone performs", 2)
    assert two is not None and two <= cell_for(6)


def test_long_texts_stay_side_by_side_at_the_smallest_readable_cell() -> None:
    """No stacking for long texts: each map keeps MIN_CELL and scrolls inside its column."""
    assert column_cell(LONG, LONG, 3) == MIN_CELL
    assert column_cell(LONG, LONG, 2) == MIN_CELL


def test_a_shared_scale_says_so_on_the_colour_bar_and_in_the_subtitle() -> None:
    result = make_result(["a", "b"], ["c", "d"], np.array([[1.0, -0.5], [0.2, 0.1]]), special_ends=False)
    shared = build_heatmap(result, zmax=2.0, shared_by=2)
    bar = shared.data[0].colorbar.title.text
    assert "shared by 2 models" in bar and "both models" in shared.layout.title.subtitle.text
    alone = build_heatmap(result)
    assert "shared" not in alone.data[0].colorbar.title.text
