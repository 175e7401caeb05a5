"""Link parameters the page refuses are echoed cut to 40 characters, and a layer= without a model= gets a
notice instead of being dropped (issue 27, finding 9's smaller items)."""

from __future__ import annotations

from attribution.core.options import ExplainOptions
from attribution.models import ModelInfo
from components.state import ECHO_CHARS, parse_query

MODELS = [ModelInfo("all-MiniLM-L6-v2", "builtin", True, "", "MiniLM")]
LONG = "x" * 5000


def test_refused_view_clip_dm_tool_tm_are_echoed_cut_to_40_characters() -> None:
    for key in ("view", "clip", "dm", "tool", "tm"):
        _, notices = parse_query({key: [LONG]}, MODELS)
        assert len(notices) == 1, (key, notices)
        assert "x" * ECHO_CHARS not in notices[0] and "…" in notices[0], key
        assert len(notices[0]) < 200, key


def test_a_layer_without_a_model_gets_a_notice() -> None:
    state, notices = parse_query({"layer": ["-1"]}, MODELS)
    assert state.layers == {}
    assert len(notices) == 1 and "layer='-1'" in notices[0] and "model=" in notices[0]
    _, extra = parse_query({"model": ["all-MiniLM-L6-v2"], "layer": ["2", LONG]}, MODELS)
    assert len(extra) == 1 and "has no model=" in extra[0] and len(extra[0]) < 200


def test_refused_options_echo_cores_message_cut_to_40_characters() -> None:
    """steps, rule, mode, prompt_name and layer are refused by the library; its echo of the value is cut to 40."""
    for key, value in (("steps", "1" * 5000), ("rule", LONG), ("mode", LONG), ("layer", LONG)):
        params = {"model": ["all-MiniLM-L6-v2"], "layer": ["default"], key: [value]}
        state, notices = parse_query(params, MODELS)
        assert len(notices) == 1, (key, notices)
        assert value[:ECHO_CHARS] not in notices[0] and "…" in notices[0], key
        assert f"{key}= in the link" in notices[0] and len(notices[0]) < 200, key
        assert state.options == ExplainOptions() and state.layers == {"all-MiniLM-L6-v2": None}, key
