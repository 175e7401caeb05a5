"""The page through Streamlit's AppTest: rendering, caching, URL state and error handling.

Real-model tests use the packaged all-MiniLM-L6-v2 and count engine calls by wrapping
`attribution.core.engine.explain`. The others swap in toy models (no weights) through the
backend's functions, so several models, failures and layers are quick to exercise.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import flat_attribution, shown_text
from streamlit.testing.v1 import AppTest

from attribution.core import engine
from attribution.core.options import ExplainOptions
from attribution.errors import InputError, ModelError
from attribution.models import ModelInfo
from attribution.result import Attribution
from attribution.result.linguistics import annotate
from attribution.settings import EXAMPLE_PAIR
from components import backend

APP = str(Path(__file__).resolve().parents[2] / "app.py")
TIMEOUT = 300


# Results cached by an earlier test would hide engine calls: conftest's _fresh_caches before every test.
pytestmark = pytest.mark.usefixtures("_fresh_caches")


@pytest.fixture
def engine_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str, dict[str, Any]]]:
    """Every call that reaches the engine (the real one runs underneath)."""
    calls: list[tuple[str, str, str, dict[str, Any]]] = []
    real = engine.explain

    def counted(model: Any, text_a: str, text_b: str, options: ExplainOptions, **kwargs: Any) -> Attribution:
        calls.append((getattr(model, "name", str(model)), text_a, text_b, options.to_dict()))
        return real(model, text_a, text_b, options, **kwargs)

    monkeypatch.setattr(engine, "explain", counted)
    return calls


@dataclass(frozen=True)
class ToyModel:
    """What the page reads of a loaded model (and the work estimate: a whitespace tokenizer)."""

    name: str
    num_layers: int = 4
    default_mode: str = "approximate"
    similarity: str = "cos"
    max_tokens: int = 128
    embedding_dim: int = 16
    default_prompt_name: str | None = None
    device: str = "cpu"  # the page shows where a model computes
    prompts: Mapping[str, str] = field(default_factory=dict)  # none saved: roles fall back to no prompt

    def resolve_prompt(self, prompt_name: str | None = None, prompt: str | None = None) -> str | None:
        """As LoadedModel's, for a model without saved prompts."""
        if prompt_name is not None and prompt is None:
            raise InputError(f"{self.name} has no prompt named '{prompt_name}'.")
        return prompt or None

    @property
    def default_layer(self) -> int:
        return self.num_layers - 1

    @property
    def tokenizer(self) -> ToyTokenizer:
        return ToyTokenizer()


class ToyTokenizer:
    """Whitespace tokens between two specials (the work estimate), and a pad token (what-if masks)."""

    pad_token = "[PAD]"

    def __call__(self, text: str, truncation: bool = True, max_length: int = 128) -> dict[str, list[int]]:
        return {"input_ids": [0, *range(len(text.split()))[: max_length - 2], 0]}


TOY_INFOS = [
    ModelInfo("toy-one", "builtin", True, "", "toy model one"),
    ModelInfo("toy-two", "builtin", True, "", "toy model two"),
    ModelInfo("toy-broken", "builtin", True, "", "refuses every pair"),
    ModelInfo("toy-crash", "builtin", True, "", "raises an unexpected error"),
    ModelInfo("toy-absent", "builtin", False, "pip install toy-absent", "not installed"),
]


def toy_explain(model: ToyModel, text_a: str, text_b: str, options: ExplainOptions) -> Attribution:
    """A deterministic, annotated token-level result: whitespace tokens between [CLS] and [SEP]."""
    if model.name == "toy-broken":
        raise ModelError("toy-broken cannot explain anything: install a real model.")
    if model.name == "toy-crash":
        raise RuntimeError("boom")

    def tokens(text: str) -> tuple[list[str], list[tuple[int, int]], list[bool]]:
        spans, position = [], 0
        for word in text.split():
            start = text.index(word, position)
            spans.append((start, start + len(word)))
            position = start + len(word)
        return (
            ["[CLS]", *(text[s:e] for s, e in spans), "[SEP]"],
            [(0, 0), *spans, (0, 0)],
            [True] + [False] * len(spans) + [True],
        )

    tok_a, off_a, sp_a = tokens(text_a)
    tok_b, off_b, sp_b = tokens(text_b)
    kwargs = options.to_dict()
    seed = sum(map(ord, model.name + text_a + text_b)) + int(kwargs.get("layer") or 0)
    matrix = np.random.default_rng(seed).normal(0.02, 0.05, size=(len(tok_a), len(tok_b)))
    total = float(matrix.sum())
    layer = kwargs.get("layer")
    result = flat_attribution(
        matrix=matrix,
        tokens_a=tok_a,
        tokens_b=tok_b,
        text_a=text_a,
        text_b=text_b,
        score=0.6,
        target=total,
        attribution_sum=total,
        integration_error=0.0,
        relative_error=0.0,
        reference_terms=0.6 - total,
        layer=model.default_layer if layer is None else layer,
        num_layers=model.num_layers,
        steps=8,
        rule=kwargs.get("rule") or "gauss-legendre",
        mode=kwargs.get("mode") or "approximate",
        similarity="cos",
        model_name=model.name,
        seconds=0.01,
        tolerance=1e-3,
        special_a=sp_a,
        special_b=sp_b,
        offsets_a=off_a,
        offsets_b=off_b,
    )
    return annotate(result)


@pytest.fixture
def toys(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str, dict[str, Any]]]:
    """Toy models instead of real ones; returns the list of engine calls."""
    calls: list[tuple[str, str, str, dict[str, Any]]] = []

    def explain(model: ToyModel, text_a: str, text_b: str, options: ExplainOptions, **kwargs: Any) -> Attribution:
        calls.append((model.name, text_a, text_b, options.to_dict()))
        return toy_explain(model, text_a, text_b, options)

    monkeypatch.setattr(backend, "available_models", lambda: list(TOY_INFOS))
    monkeypatch.setattr(backend, "get_model", ToyModel)
    monkeypatch.setattr(engine, "explain", explain)
    return calls


def new_app(**params: str | list[str]) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in params.items():
        at.query_params[key] = value
    return at


def charts(at: AppTest) -> list[dict[str, Any]]:
    """The plotly figures on the page, as dicts."""
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def submit(at: AppTest) -> AppTest:
    buttons = [b for b in at.button if b.label == "Explain"]
    assert buttons, "the form's Explain button is missing"
    return buttons[0].click().run()


def messages(elements: Any) -> str:
    return "\n".join(shown_text(str(e.value)) for e in elements)


def assert_clean(at: AppTest) -> None:
    assert not at.exception, messages(at.exception)


# ----------------------------------------------------------------------------- real model


def test_default_view_explains_the_example_pair_with_minilm(engine_calls: list) -> None:
    at = new_app().run()
    assert_clean(at)
    figures = charts(at)
    assert len(figures) == 1
    heatmap = figures[0]["data"][0]
    assert heatmap["type"] == "heatmap"
    assert "[CLS]" in figures[0]["layout"]["yaxis"]["ticktext"]
    assert "contribution to similarity" in json.dumps(heatmap["colorbar"])
    assert [c[0] for c in engine_calls] == ["all-MiniLM-L6-v2"]
    assert engine_calls[0][1:3] == EXAMPLE_PAIR
    assert at.text_area(key="text_a").value == EXAMPLE_PAIR[0]
    assert "cosine similarity" in messages(at.markdown)
    assert "the top 5 pairs carry" in messages(at.markdown)
    assert at.query_params["model"] == "all-MiniLM-L6-v2"


def test_view_changes_rerender_without_recomputing_and_new_input_recomputes(engine_calls: list) -> None:
    at = new_app().run()
    assert len(engine_calls) == 1
    shapes_before = len(charts(at)[0]["layout"]["shapes"])

    at.slider(key="top").set_value(12).run()
    assert len(charts(at)[0]["layout"]["shapes"]) == 12 != shapes_before
    at.toggle(key="pos").set_value(True).run()
    assert any(trace.get("name") == "NOUN" for trace in charts(at)[0]["data"])
    at.toggle(key="special").set_value(False).run()
    assert "[CLS]" not in charts(at)[0]["layout"]["yaxis"]["ticktext"]
    at.segmented_control(key="level").set_value("word").run()
    assert "word level" in charts(at)[0]["layout"]["title"]["text"]
    assert_clean(at)
    assert len(engine_calls) == 1, "view controls must not reach the engine"

    at.text_area(key="text_b").input("A guitarist plays a concert.")
    assert len(engine_calls) == 1, "typing alone must not compute"
    submit(at)
    assert_clean(at)
    assert len(engine_calls) == 2
    assert engine_calls[-1][2] == "A guitarist plays a concert."
    assert at.query_params["b"] == "A guitarist plays a concert."


# ----------------------------------------------------------------------------- toy models


def test_url_parameters_restore_the_whole_view(toys: list) -> None:
    at = new_app(
        a="dogs run fast",
        b="puppies play",
        model=["toy-two", "toy-one"],
        layer=["1", "default"],
        steps="16",
        rule="midpoint",
        mode="exact",
        level="word",
        special="0",
        pos="1",
        shared="0",
        top="3",
        diff="2,1",
    ).run()
    assert_clean(at)
    assert not at.warning, messages(at.warning)
    assert at.text_area(key="text_a").value == "dogs run fast"
    assert at.multiselect(key="models").value == ["toy-two", "toy-one"]
    assert at.selectbox(key="layer::toy-two").value == 1
    layer_one = at.selectbox(key="layer::toy-one")
    assert layer_one.value == "default" and layer_one.format_func(layer_one.value) == "default (3)"
    assert at.selectbox(key="steps").value == "16" and at.selectbox(key="mode").value == "exact"
    assert at.slider(key="top").value == 3
    assert at.toggle(key="pos").value and not at.toggle(key="special").value and not at.toggle(key="shared").value
    assert at.segmented_control(key="level").value == "word"
    assert sorted((c[0], c[3]["layer"], c[3]["steps"], c[3]["rule"], c[3]["mode"]) for c in toys) == [
        ("toy-one", None, 16, "midpoint", "exact"),
        ("toy-two", 1, 16, "midpoint", "exact"),
    ]
    figures = charts(at)
    assert len(figures) == 3  # two heatmaps and the difference map
    assert figures[0]["layout"]["yaxis"]["ticktext"][0].startswith("dogs")
    # diff=2,1: the second model listed minus the first (the default would be toy-two − toy-one)
    assert "<b>toy-one</b> − <b>toy-two</b>" in figures[2]["layout"]["title"]["text"]
    assert at.query_params["layer"] == ["1", "default"]


def test_shared_colour_scale_spans_all_models(toys: list) -> None:
    at = new_app(a="dogs run", b="puppies play", model=["toy-one", "toy-two"]).run()
    first, second = (fig["data"][0] for fig in charts(at)[:2])
    assert first["zmax"] == second["zmax"] and first["zmin"] == -first["zmax"]
    at.toggle(key="shared").set_value(False).run()
    first, second = (fig["data"][0] for fig in charts(at)[:2])
    assert first["zmax"] != second["zmax"]
    assert len(toys) == 2


def test_invalid_url_values_are_adjusted_with_a_visible_notice(toys: list) -> None:
    at = new_app(model=["nope", "toy-absent", "toy-one"], top="999", steps="many", level="letters").run()
    assert_clean(at)
    notice = messages(at.warning)
    # steps is checked by the library: its own message, after the parameter it refused
    needles = ("'nope'", "pip install toy-absent", "top=999", "steps= in the link", "(got 'many')", "level='letters'")
    for needle in needles:
        assert needle in notice
    assert at.slider(key="top").value == 50
    assert len(charts(at)) == 1


PAGE_OPTIONS = ("layer", "steps", "rule", "mode", "prompt_name", "prompt")


def page_options(fields: dict[str, Any]) -> dict[str, Any]:
    """The ExplainOptions fields the page's widgets set (the backend adds the operator's memory budget)."""
    return {key: fields[key] for key in PAGE_OPTIONS}


@pytest.mark.parametrize(
    ("param", "value", "core_call"),
    [
        ("steps", "5000", lambda: ExplainOptions.create(steps="5000")),
        ("steps", "abc", lambda: ExplainOptions.create(steps="abc")),
        ("rule", "bogus", lambda: ExplainOptions.create(rule="bogus")),
        ("mode", "fast", lambda: ExplainOptions.create(mode="fast")),
    ],
)
def test_a_bad_option_in_a_link_shows_cores_message_and_computes_with_the_default(
    toys: list, param: str, value: str, core_call: Any
) -> None:
    """A link with ?steps=5000 (or abc, or rule=bogus): the library's own message, and the map at the default."""
    with pytest.raises(InputError) as refused:
        core_call()
    at = new_app(a="dogs run", b="puppies play", model="toy-one", **{param: value}).run()
    assert_clean(at)
    assert str(refused.value) in messages(at.warning)
    assert not at.error and len(charts(at)) == 1
    assert [page_options(c[3]) for c in toys] == [page_options(ExplainOptions().to_dict())]  # the defaults reached it
    shown = {"steps": at.selectbox(key="steps").value, "rule": at.selectbox(key="rule").value}
    assert shown == {"steps": "auto", "rule": "gauss-legendre"} and at.selectbox(key="mode").value == "default"
    assert at.query_params[param] == {"steps": "auto", "rule": "gauss-legendre", "mode": "default"}[param]


def test_widget_options_reach_the_backend_as_explain_options(toys: list) -> None:
    """Steps, rule, mode and the prompt boxes changed in Advanced options: the engine gets that ExplainOptions."""
    at = new_app(a="dogs run", b="puppies play", model="toy-one").run()
    at.selectbox(key="steps").set_value("32")
    at.selectbox(key="rule").set_value("midpoint")
    at.selectbox(key="mode").set_value("exact")
    at.text_input(key="prompt").set_value("query: ")
    submit(at)
    assert_clean(at)
    chosen = ExplainOptions(steps=32, rule="midpoint", mode="exact", prompt="query: ")
    assert page_options(toys[-1][3]) == page_options(chosen.to_dict())
    assert (at.query_params["steps"], at.query_params["mode"], at.query_params["prompt"]) == ("32", "exact", "query: ")


def test_text_roles_reach_the_backend_as_per_text_prompts(toys: list) -> None:
    """Text roles "A is a query, B a document": the engine gets role_a / role_b (the model's own query and
    document prompts, as encode_query / encode_document), the link carries them, and a prompt typed as
    well is kept in its box but not used, with a notice saying so."""
    at = new_app(a="dogs run", b="puppies play", model="toy-one").run()
    assert at.selectbox(key="roles").value == ""
    at.selectbox(key="roles").set_value("query,document")
    submit(at)
    assert_clean(at)
    fields = toys[-1][3]
    assert (fields["role_a"], fields["role_b"]) == ("query", "document")
    assert (fields["prompt"], fields["prompt_name"]) == (None, None)
    assert at.query_params["roles"] == "query,document" and not at.warning
    at.text_input(key="prompt").set_value("search: ")
    submit(at)
    assert_clean(at)
    assert (toys[-1][3]["role_a"], toys[-1][3]["prompt"]) == ("query", None)
    assert "Prompt name and Prompt text are not used" in messages(at.warning)
    assert at.text_input(key="prompt").value == "search: " and at.query_params["prompt"] == "search: "
    at.selectbox(key="roles").set_value("")
    submit(at)
    assert (toys[-1][3]["role_a"], toys[-1][3]["prompt"]) == (None, "search: ") and "roles" not in at.query_params


def test_a_typed_number_of_steps_the_library_refuses_shows_its_message(toys: list) -> None:
    """Typing 0 steps: core's message, the map computed with steps=auto (not clamped to 1)."""
    at = new_app(a="dogs run", b="puppies play", model="toy-one", steps="16").run()
    box = at.selectbox(key="steps")
    box.options.append("0")  # typed into the box (accept_new_options): the browser sends the text as it sends an option
    box.set_value("0")
    submit(at)
    assert_clean(at)
    with pytest.raises(InputError) as refused:
        ExplainOptions.create(steps="0")
    assert str(refused.value) in messages(at.warning) and "Using auto" in messages(at.warning)
    assert toys[-1][3]["steps"] == "auto" and len(charts(at)) == 1


def test_empty_text_prompts_and_computes_nothing(toys: list) -> None:
    at = new_app(a="   ").run()
    assert_clean(at)
    assert "Text A is empty" in messages(at.info)
    assert charts(at) == [] and toys == []
    at.text_area(key="text_a").input("dogs run")
    at.text_area(key="text_b").input("")
    submit(at)
    assert "Text B is empty" in messages(at.info)
    assert charts(at) == [] and toys == []


def test_no_model_selected_prompts_and_computes_nothing(toys: list) -> None:
    at = new_app(a="dogs run", b="puppies play", model="toy-one").run()
    assert len(toys) == 1
    at.multiselect(key="models").set_value([])
    submit(at)
    assert_clean(at)
    assert "Pick at least one model" in messages(at.info)
    assert charts(at) == [] and len(toys) == 1


def test_a_failing_model_shows_an_error_while_the_others_render(toys: list) -> None:
    at = new_app(a="dogs run", b="puppies play", model=["toy-one", "toy-broken", "toy-crash"]).run()
    assert_clean(at)
    errors = messages(at.error)
    assert "toy-broken cannot explain anything" in errors
    assert "toy-crash failed unexpectedly (RuntimeError)" in errors
    assert "Traceback" not in errors and "boom" not in errors
    assert len(charts(at)) == 1
    assert "needs both models" in messages(at.info)


def test_the_shared_colour_scale_counts_the_maps_drawn_not_the_models_picked(toys: list) -> None:
    """Three models, one refused: the two maps drawn share one scale and their colour bars say 2, not 3."""
    at = new_app(a="dogs run", b="puppies play", model=["toy-one", "toy-two", "toy-broken"]).run()
    assert_clean(at)
    heatmaps = [c["data"][0] for c in charts(at) if c["data"] and c["data"][0].get("type") == "heatmap"]
    titles = {h["colorbar"]["title"]["text"] for h in heatmaps if h.get("showscale", True)}
    assert "contribution · shared by 2 models" in titles and not any("by 3" in t for t in titles), titles


def test_uninstalled_models_are_listed_with_how_to_install(toys: list) -> None:
    at = new_app(model="toy-one").run()
    assert "pip install toy-absent" in messages(at.caption)
    assert "toy-absent" not in at.multiselect(key="models").options


def test_changing_one_models_layer_recomputes_only_that_model(toys: list) -> None:
    at = new_app(a="dogs run", b="puppies play", model=["toy-one", "toy-two"]).run()
    assert len(toys) == 2
    at.selectbox(key="layer::toy-two").set_value(0).run()
    assert_clean(at)
    assert [(c[0], c[3]["layer"]) for c in toys[2:]] == [("toy-two", 0)]
    assert "layer 0 of 4" in charts(at)[1]["layout"]["title"]["text"]


def test_out_of_range_layer_is_refused_with_cores_message(toys: list) -> None:
    """layer=40 of a 4-layer model: the library's message (check_layer, as for_model says it), the default layer."""
    at = new_app(a="dogs run", b="puppies play", model="toy-one", layer="40").run()
    assert_clean(at)
    assert "layer must be a whole number from 0 to 4 for toy-one (got 40). Using the default layer." in messages(
        at.warning
    )
    assert toys[-1][3]["layer"] is None and at.selectbox(key="layer::toy-one").value == "default"
    assert len(charts(at)) == 1 and at.query_params["layer"] == "default"  # one model: a single value


def test_example_picker_fills_both_texts_and_explains(toys: list) -> None:
    examples = backend.load_examples()
    assert len(examples) >= 8 and len({e["category"] for e in examples}) >= 6
    at = new_app(model="toy-one").run()
    at.selectbox(key="example").set_value(3).run()
    assert_clean(at)
    assert at.text_area(key="text_a").value == examples[3]["a"]
    assert toys[-1][1:3] == (examples[3]["a"], examples[3]["b"])


def test_share_link_reopens_the_view(toys: list) -> None:
    at = new_app(a="dogs run", b="puppies <b>play</b>", model="toy-one", top="4").run()
    assert not at.code  # drawn when the expander opens
    at.session_state["pl-share"] = True  # what opening "Share this view" does
    link = messages(at.run().code)
    assert "a=dogs+run" in link and "top=4" in link and "model=toy-one" in link
    assert "puppies+%3Cb%3Eplay%3C%2Fb%3E" in link


# ----------------------------------------------------------------------------- page v2


def test_exact_mode_on_an_off_the_shelf_model_headlines_its_own_cosine_with_a_warning(engine_calls: list) -> None:
    at = new_app(mode="exact").run()
    assert_clean(at)
    card = messages(at.markdown)
    assert "0.573" in card and "exact-mode target" in card and "0.829" in card
    assert "was not trained for exact mode" in messages(at.warning)
    assert "cosine 0.573" in charts(at)[0]["layout"]["title"]["text"]


def test_typed_text_is_marked_and_a_layer_change_explains_the_shown_text(toys: list) -> None:
    at = new_app(a="dogs run", b="puppies play", model="toy-one").run()
    assert len(toys) == 1
    at.text_area(key="text_a").input("cats sleep").run()  # typed, then the box lost focus
    assert_clean(at)
    assert len(toys) == 1, "typing must not compute"
    assert "Text A changed and is not explained yet" in messages(at.markdown)
    assert at.query_params["a"] == "dogs run"  # the link still names what the maps show
    at.selectbox(key="layer::toy-one").set_value(1).run()
    assert_clean(at)
    assert [(c[1], c[3]["layer"]) for c in toys[1:]] == [("cats sleep", 1)], "never the old text silently"
    assert "not explained yet" not in messages(at.markdown)
    assert at.query_params["a"] == "cats sleep"
    assert charts(at)[0]["layout"]["yaxis"]["ticktext"][1] == "cats"


def test_links_view_and_colour_clipping_come_from_the_url(toys: list) -> None:
    at = new_app(a="dogs run fast", b="puppies play", model="toy-one", view="links", clip="95", top="3").run()
    assert_clean(at)
    figure = charts(at)[0]
    assert sum(1 for t in figure["data"] if t.get("mode") == "lines") == 3
    at.segmented_control(key="view").set_value("map").run()
    assert "95th percentile" in json.dumps(charts(at)[0]["layout"]["title"])
    assert at.query_params["view"] == "map" and at.query_params["clip"] == "95"
    assert len(toys) == 1


def test_difference_map_compares_shares_by_default_and_has_downloads(toys: list) -> None:
    at = new_app(a="dogs run", b="puppies play", model=["toy-one", "toy-two"]).run()
    assert_clean(at)
    difference = charts(at)[2]
    assert "share" in difference["data"][0]["colorbar"]["title"]["text"]
    labels = [d.proto.label for d in at.get("download_button")]
    assert "Table (CSV)" in labels, labels
    # each model's map (CSV, JSON, HTML), the side-by-side figure (HTML), the difference map (HTML, CSV),
    # and 5 images (PNG, SVG, slide PNG, slide SVG, slide PDF) of each of these 4 figures where kaleido can render
    from attribution.viz.exports import renderer_status

    images = 5 * 4 if renderer_status()[0] else 0
    assert len(labels) == 2 * 3 + 1 + 2 + images, labels


def test_what_if_edits_from_the_url_show_the_change(toys: list) -> None:
    at = new_app(a="dogs run fast", b="puppies play", model="toy-one", tool="whatif", edit=["a:5-8:drop"]).run()
    assert_clean(at)
    assert [c[1] for c in toys] == ["dogs run fast", "dogs fast"]
    change = charts(at)[-1]
    assert "what if" in change["layout"]["title"]["text"]
    assert any("✕" in label for label in change["layout"]["yaxis"]["ticktext"])
    assert at.query_params["edit"] == "a:5-8:drop" and at.query_params["tool"] == "whatif"
    next(b for b in at.button if b.label == "Explain the edited pair").click().run()
    assert_clean(at)
    assert at.text_area(key="text_a").value == "dogs fast" and at.query_params["a"] == "dogs fast"
    assert "edit" not in at.query_params


def test_what_if_apply_drops_the_clicked_token(toys: list) -> None:
    at = new_app(a="dogs run fast", b="puppies play", model="toy-one", tool="whatif").run()
    at.pills(key="wi_tokens_a").set_value([2])  # "run"
    at.segmented_control(key="wi_op").set_value("drop")
    next(b for b in at.button if b.label == "Apply").click().run()
    assert_clean(at)
    assert at.query_params["edit"] == "a:5-8:drop"
    assert toys[-1][1] == "dogs fast"


def test_layer_sweep_computes_every_layer_once_and_opens_one(toys: list) -> None:
    at = new_app(a="dogs run", b="puppies play", model="toy-one", tool="sweep").run()
    assert_clean(at)
    assert not at.error, messages(at.error)
    assert sorted(c[3]["layer"] for c in toys if c[3]["layer"] is not None) == [0, 1, 2, 3, 4]
    sweep = next(f for f in charts(at) if "every layer" in f["layout"]["title"]["text"])
    assert len([t for t in sweep["data"] if t["type"] == "heatmap"]) == 5
    calls = len(toys)
    at.pills(key="sweep_open").set_value(1).run()
    assert_clean(at)
    assert at.selectbox(key="layer::toy-one").value == 1
    assert "layer 1 of 4" in charts(at)[0]["layout"]["title"]["text"]
    assert len(toys) == calls, "every layer was computed once"


def test_prompt_option_reaches_the_engine_and_hides_with_special_tokens(engine_calls: list) -> None:
    """The Advanced options' prompt (from the URL here) is applied to both texts; its rows show with the
    special tokens and hide with them; the link keeps it."""
    at = new_app(prompt="query: ").run()
    assert_clean(at)
    assert engine_calls[0][3]["prompt"] == "query: " and engine_calls[0][3]["prompt_name"] is None
    assert at.text_input(key="prompt").value == "query: "
    labels = charts(at)[0]["layout"]["yaxis"]["ticktext"]
    assert any(label.startswith("query") for label in labels)
    at.toggle(key="special").set_value(False).run()
    labels = charts(at)[0]["layout"]["yaxis"]["ticktext"]
    assert not any(label.startswith(("query", "[CLS]")) for label in labels)
    assert at.query_params["prompt"] == "query: " and len(engine_calls) == 1
