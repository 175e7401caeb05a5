"""Smaller page details: the what-if Replacement box, over-long pastes, outlines on saturated cells, dark CSS."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from test_app import assert_clean, messages, new_app, toys  # noqa: F401 - toys is a fixture
from test_components import make_result

from attribution.viz.heatmap import build_heatmap
from attribution.viz.layout import DARK, LIGHT, Style


def test_the_replacement_box_shows_only_for_replace(toys: list) -> None:  # noqa: F811
    at = new_app(a="dogs run fast", b="puppies play", model="toy-one", tool="whatif").run()
    assert_clean(at)
    for op in ("drop", "mask"):
        at.segmented_control(key="wi_op").set_value(op).run()
        assert not [t for t in at.text_input if t.key == "wi_text"], op
    at.segmented_control(key="wi_op").set_value("replace").run()
    assert [t for t in at.text_input if t.key == "wi_text"]
    at.pills(key="wi_tokens_a").set_value([2])
    at.text_input(key="wi_text").set_value("walk")
    next(b for b in at.button if b.label == "Apply").click().run()
    assert_clean(at)
    assert at.query_params["edit"] == "a:5-8:replace:walk"


def test_an_over_long_text_is_kept_and_the_page_says_what_to_do(toys: list, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("PAIRLENS_MAX_TEXT_CHARS", "50")
    at = new_app(a="dogs run", b="puppies play", model="toy-one").run()
    long = "word " * 30  # 150 characters
    at.text_area(key="text_a").set_value(long)
    next(b for b in at.button if b.label == "Explain").click().run()
    assert_clean(at)
    assert at.text_area(key="text_a").value == long  # nothing dropped
    shown = messages(at.error)
    assert "Text A has 150 characters" in shown and "at most 50" in shown and "Shorten it" in shown


@pytest.mark.parametrize("dark", [False, True])
def test_top_pair_outlines_stay_visible_on_saturated_cells(dark: bool) -> None:
    """With a clipped colour range the strongest cells take the end colour: their outline switches to paper."""
    matrix = np.array([[1.0, 0.9, 0.01], [0.95, 0.02, 0.03], [0.01, 0.02, 0.0]])
    result = make_result(["a", "b", "c"], ["d", "e", "f"], matrix, special_ends=False)
    fig = build_heatmap(result, top_k=4, clip=50, style=Style(dark=dark))
    colours = DARK if dark else LIGHT
    lines = {(int(s.y0 + 0.5), int(s.x0 + 0.5)): s.line.color for s in fig.layout.shapes}
    assert lines[(0, 0)] == colours.paper and lines[(1, 0)] == colours.paper  # saturated cells
    weak = build_heatmap(result.replace(matrix=np.array([[1.0, 0.1, 0.0], [0.2, 0.0, 0.0], [0.0, 0.0, 0.0]])), top_k=3)
    assert {s.line.color for s in weak.layout.shapes} >= {LIGHT.outline}  # pale cells keep the dark outline


def test_an_expensive_map_says_its_cost_and_waits_for_confirmation(
    toys: list,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from attribution.core.cost import CostEstimate
    from components import backend

    monkeypatch.setattr(backend, "cost_of", lambda name, a, b, options: CostEstimate(130.0, 130.0, 10**9, False))
    at = new_app(a="cows graze slowly", b="sheep rest", model="toy-one").run()
    assert_clean(at)
    assert toys == []  # nothing computed yet (texts no other test computes: the page keeps results)
    assert "This map would take about 2 min on this server" in messages(at.warning)
    assert any("about 2 min on this server" in str(c.value) for c in at.caption)  # beside the layer menu
    next(b for b in at.button if b.label == "Compute it").click().run()
    assert_clean(at)
    assert len(toys) == 1 and at.get("plotly_chart")


def test_the_operator_sets_where_confirmation_starts(
    toys: list,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PAIRLENS_CONFIRM_SECONDS=300: the same 130 s map starts at once; =10: a 30 s map waits for Compute it."""
    from attribution.core.cost import CostEstimate
    from components import backend

    monkeypatch.setenv("PAIRLENS_CONFIRM_SECONDS", "300")
    monkeypatch.setattr(backend, "cost_of", lambda name, a, b, options: CostEstimate(130.0, 130.0, 10**9, False))
    at = new_app(a="goats climb rocks", b="ibex scale cliffs", model="toy-one").run()
    assert_clean(at)
    assert len(toys) == 1 and not any(b.label == "Compute it" for b in at.button)
    monkeypatch.setenv("PAIRLENS_CONFIRM_SECONDS", "10")
    monkeypatch.setattr(backend, "cost_of", lambda name, a, b, options: CostEstimate(30.0, 30.0, 10**8, False))
    at = new_app(a="hens peck grain", b="ducks swim", model="toy-one").run()
    assert_clean(at)
    assert len(toys) == 1 and "This map would take about 30 s on this server" in messages(at.warning)


def test_a_map_already_computing_is_not_asked_about_again(
    toys: list,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A job this server is already computing (another session started it, or the estimate rose while it
    ran): over the threshold, yet no "Compute it": asking would stop watching it and the job would be
    cancelled."""
    from attribution.core.cost import CostEstimate
    from components import backend

    monkeypatch.setattr(backend, "cost_of", lambda name, a, b, options: CostEstimate(130.0, 130.0, 10**9, False))
    monkeypatch.setattr(backend, "is_running", lambda key: True)
    at = new_app(a="foxes roam at dusk", b="wolves howl", model="toy-one").run()
    assert_clean(at)
    assert not any(b.label == "Compute it" for b in at.button) and len(toys) == 1


def test_a_cheap_map_starts_at_once_with_its_cost_beside_the_layer_menu(
    toys: list,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from attribution.core.cost import CostEstimate
    from components import backend

    monkeypatch.setattr(backend, "cost_of", lambda name, a, b, options: CostEstimate(3.0, 40.0, 10**6, True))
    at = new_app(a="owls hunt", b="bats fly at night", model="toy-one").run()
    assert_clean(at)
    assert len(toys) == 1
    assert any("about 3 s on this server, up to 40 s if it refines" in str(c.value) for c in at.caption)
    at.text_area(key="text_a").set_value("cats sleep").run()
    assert any(str(c.value).startswith(":material/schedule: Explain: toy-one about 3 s") for c in at.caption)


def test_a_shared_page_lists_only_its_models_and_says_how_an_operator_enables_more(
    toys: list,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PAIRLENS_ALLOW_CUSTOM_MODELS", raising=False)
    at = new_app(a="dogs run", b="puppies play", model="toy-one").run()  # AppTest binds no address: shared
    assert_clean(at)
    assert not at.multiselect(key="models").proto.accept_new_options
    assert any("PAIRLENS_ALLOW_CUSTOM_MODELS=1" in str(c.value) for c in at.caption)


def test_a_local_page_takes_typed_hub_ids_and_folders(
    toys: list,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PAIRLENS_ALLOW_CUSTOM_MODELS", raising=False)
    from streamlit import config

    bound = config.get_option("server.address")
    config.set_option("server.address", "127.0.0.1")  # what `make run` binds: one person on this machine
    try:
        at = new_app(a="dogs run", b="puppies play", model="toy-one").run()
    finally:
        config.set_option("server.address", bound)
    assert_clean(at)
    assert at.multiselect(key="models").proto.accept_new_options
    assert any("hub id" in str(c.value) for c in at.caption)


def test_a_new_servers_first_estimate_runs_nothing_and_later_ones_use_its_measured_rate(
    minilm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cost shown before a new server's first map comes from DEFAULT_RATE without computing anything
    (a calibration run held the first map up by seconds); a map large enough to measure sets the rate,
    while small, overhead-bound maps do not."""
    from attribution.core.options import ExplainOptions
    from components import backend

    monkeypatch.setattr(backend, "get_model", lambda name: minilm)
    monkeypatch.setattr(backend, "_rates", {})
    options = ExplainOptions.create(steps=8)
    first = backend.cost_of("all-MiniLM-L6-v2", "A man plays a guitar.", "Someone makes music.", options)
    assert first is not None and first.seconds == pytest.approx(first.units / backend.DEFAULT_RATE)
    assert backend._rates == {}  # nothing computed (a calibration run would have recorded its rate)
    backend._rates["all-MiniLM-L6-v2"] = [(backend.RATE_MIN_UNITS // 10, 1.0)]  # small map: overhead
    assert backend.rate_of("all-MiniLM-L6-v2") is None
    backend._rates["all-MiniLM-L6-v2"].append((4 * backend.RATE_MIN_UNITS, 2.0))
    later = backend.cost_of("all-MiniLM-L6-v2", "A man plays a guitar.", "Someone makes music.", options)
    assert later is not None and later.seconds == pytest.approx(later.units / (2 * backend.RATE_MIN_UNITS))
