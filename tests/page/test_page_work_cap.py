"""The page refuses work over the operator's cap (PAIRLENS_MAX_PAGE_WORK) before the engine is reached,
whether the steps come from a link or are typed, and stops steps=auto at the nodes the cap allows.
The estimate itself is tested in tests/core/test_work_cap.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import messages
from streamlit.testing.v1 import AppTest

from attribution import Attribution

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.mark.parametrize("how", ["link", "typed", "auto"])
def test_page_refuses_work_over_the_operator_cap(
    minilm, how: str, monkeypatch: pytest.MonkeyPatch, _fresh_caches: None
) -> None:  # type: ignore[no-untyped-def]
    from attribution.core import engine

    calls: list[Any] = []
    real = engine.explain

    def counted(model: Any, text_a: str, text_b: str, options: Any, **kwargs: Any) -> Attribution:
        calls.append(options)
        return real(model, text_a, text_b, options, **kwargs)

    monkeypatch.setattr(engine, "explain", counted)
    monkeypatch.setenv("PAIRLENS_MAX_PAGE_WORK", "1000")  # 2 x 5 tokens at the last layer: 50 per node, 20 nodes
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params["a"] = "A cat."
    at.query_params["b"] = "A dog."
    at.query_params["steps"] = {"link": "64", "typed": "1", "auto": "auto"}[how]
    at.run()
    assert not at.exception, messages(at.exception)
    if how == "auto":  # allowed, told to stop at the 20 nodes the cap allows
        assert [o.step_cap for o in calls] == [20] and not at.error and at.get("plotly_chart")
        return
    if how == "typed":
        assert len(calls) == 1 and not at.error  # 1 node: allowed
        at.selectbox(key="steps").set_value("256")
        next(button for button in at.button if button.label == "Explain").click().run()
    errors = messages(at.error)
    assert "too large for this server" in errors and "fewer steps, shorter texts or a deeper layer" in errors
    assert len(calls) == (0 if how == "link" else 1)  # refused before the engine is reached
    assert not at.get("plotly_chart")
