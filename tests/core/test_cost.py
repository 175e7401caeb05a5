"""Cost before computing: work units times this server's measured rate, said in words."""

from __future__ import annotations

import math

from attribution.core.cost import CostEstimate, duration_words, estimate_cost, measured_rate, result_units
from attribution.core.options import ExplainOptions
from attribution.core.work import estimate_work, node_work


def test_a_finished_result_costs_its_nodes_times_the_node_work() -> None:
    assert result_units((11, 9), 6, 5, 384, 8) == 8 * node_work((11, 9), 1, 384)
    assert result_units((11, 9), 6, 0, 384, 4) == 4 * node_work((11, 9), 6, 384)


def test_the_rate_is_the_fastest_usable_sample() -> None:
    assert measured_rate([(100, 1.0), (300, 1.0), (1000, 2.0)]) == 500.0
    assert measured_rate([(100, 0.0), (0, 1.0), (5, math.nan)]) is None
    assert measured_rate([]) is None


def test_words_for_durations() -> None:
    assert duration_words(0.4) == "under a second" and duration_words(8.2) == "about 8 s"
    assert duration_words(125) == "about 2 min" and duration_words(2 * 3600) == "about 2.0 h"


def test_an_estimate_from_a_real_model_scales_with_the_layer_and_says_the_auto_ceiling(minilm) -> None:  # type: ignore[no-untyped-def]
    text_a, text_b = "A man is playing a guitar on stage.", "Someone performs music with an instrument."
    deep = estimate_work(minilm, text_a, text_b, ExplainOptions.create(layer=5, steps=8))
    shallow = estimate_work(minilm, text_a, text_b, ExplainOptions.create(layer=0, steps=8))
    fixed = estimate_cost(deep, rate=deep.units / 2.0, auto=False)  # a rate at which the deep map takes 2 s
    assert math.isclose(fixed.seconds, 2.0) and fixed.most_seconds == fixed.seconds
    assert math.isclose(estimate_cost(shallow, rate=deep.units / 2.0, auto=False).seconds, 2.0 * 6)
    auto = estimate_work(minilm, text_a, text_b, ExplainOptions.create(layer=0))
    told = estimate_cost(auto, rate=auto.per_node / 1.0, auto=True)  # one node per second
    assert told.most_seconds == max(auto.step_cap, auto.nodes) and told.seconds == auto.nodes
    assert "on this server" in told.describe() and "if it refines" in told.describe()
    assert CostEstimate(130.0, 130.0, 1, False).describe() == "about 2 min on this server"
