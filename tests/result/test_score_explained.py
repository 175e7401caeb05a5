"""The score explained: the map's share of the score by magnitude, in plain words, on the score card."""

from __future__ import annotations

import math

from attribution.result.explained import explain_score, map_share, percent
from attribution.viz.tables import score_card_html


def test_the_share_is_the_cells_part_of_the_three_parts_by_magnitude() -> None:
    assert map_share(2.154, -1.581, 0.0) == 2.154 / (2.154 + 1.581)
    assert map_share(0.7, 0.0, 0.0) == 1.0
    assert math.isnan(map_share(0.0, 0.0, 0.0)) and math.isnan(map_share(math.nan, 1.0, 0.0))
    assert percent(2.154 / 3.735) == "58 %" and percent(0.001) == "< 1 %" and percent(math.nan) == "–"


def test_an_off_the_shelf_cosine_is_read_relatively_and_exact_mode_is_offered(minilm) -> None:  # type: ignore[no-untyped-def]
    from attribution import explain

    result = explain(minilm, "A man is playing a guitar on stage.", "Someone performs music with an instrument.")
    told = explain_score(result)
    parts = told.cells + told.reference + told.error
    assert abs(parts - result.score) < 1e-6  # the three parts add up to the explained score
    assert told.share == map_share(result.attribution_sum, result.reference_terms, -result.integration_error)
    assert f"explains {percent(told.share)} of the score" in told.headline
    assert "empty reference" in told.headline and "which token pairs matter" in told.reading
    assert told.alternative is not None and "Exact mode" in told.alternative


def test_an_exact_model_in_exact_mode_is_explained_in_full(minilm) -> None:  # type: ignore[no-untyped-def]
    from attribution import explain

    base = explain(minilm, "dogs run", "puppies play", steps=4)
    result = base.replace(
        mode="exact", exact_model=True, score=0.7, target=0.7, attribution_sum=0.7, integration_error=0.0,
        reference_terms=0.0, model_score=0.69,
    )  # fmt: skip
    told = explain_score(result)
    assert told.share == 1.0 and "explains 100 % of the score" in told.headline
    assert "parts of the cosine" in told.reading and told.alternative is None


def test_the_score_card_shows_the_number_and_escapes_everything(minilm) -> None:  # type: ignore[no-untyped-def]
    from attribution import explain

    result = explain(minilm, "<b>x</b> dogs", "puppies play", steps=4)
    card = score_card_html(result)
    told = explain_score(result)
    assert f"<b class='pl-share'>{percent(told.share)}</b>" in card
    assert "the map (all cells)" in card and "empty reference" in card and "<b>x" not in card
