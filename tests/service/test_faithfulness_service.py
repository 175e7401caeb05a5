"""`pairlens faithfulness` and POST /faithfulness: the same report as the library, bad input as a sentence."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from attribution.cli import main
from attribution.faithfulness import faithfulness_report
from attribution.service import JobManager
from attribution.service.http import create_app

A, B = "A man is playing a guitar on stage.", "Someone performs music with an instrument."


@pytest.fixture(scope="module")
def client(minilm: Any) -> Iterator[TestClient]:
    manager = JobManager(workers=1, max_jobs=2, cache=None, max_work=None)
    with TestClient(create_app(manager, own_manager=True), raise_server_exceptions=False) as test_client:
        yield test_client


def test_cli_json_is_the_library_report(minilm: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["faithfulness", A, B, "--steps", "4", "--layer", "4", "--draws", "2", "--seed", "3", "--json"])
    captured = capsys.readouterr()
    assert code == 0
    printed = json.loads(captured.out)
    expected = faithfulness_report(minilm, A, B, steps=4, layer=4, draws=2, seed=3).to_dict()
    assert printed["curves"]["between"] == pytest.approx(expected["curves"]["between"], abs=1e-6)
    for method in ("integrated-jacobians", "hessian-x-input"):
        got, want = printed["sweeps"][method], expected["sweeps"][method]
        assert [i["label"] for i in got["items"]] == [i["label"] for i in want["items"]]
        np.testing.assert_allclose([i["loss"] for i in got["items"]], [i["loss"] for i in want["items"]], atol=1e-6)
    assert "Second method" in captured.err  # the second method is labelled where its result is shown


def test_cli_text_lists_every_token_and_bad_input_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["faithfulness", A, B, "--steps", "2", "--draws", "1", "--methods", "integrated-jacobians"]) == 0
    out = capsys.readouterr().out
    assert "integrated Jacobians" in out and "random order" in out and "Hessian" not in out
    for token in ("guitar", "instrument", "Someone"):
        assert token in out
    assert main(["faithfulness", "   ", B]) == 2
    assert "Text A is empty" in capsys.readouterr().err
    assert main(["faithfulness", A, B, "--draws", "0"]) == 2
    assert "draws must be" in capsys.readouterr().err


def test_http_returns_the_report(client: TestClient, minilm: Any) -> None:
    body = {"text_a": A, "text_b": B, "options": {"steps": 4, "layer": 4}, "draws": 2, "level": "word"}
    response = client.post("/faithfulness", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    expected = faithfulness_report(minilm, A, B, steps=4, layer=4, draws=2, level="word").to_dict()
    assert data["sweeps"]["integrated-jacobians"]["spearman"] == pytest.approx(
        expected["sweeps"]["integrated-jacobians"]["spearman"]
    )
    assert [i["label"] for i in data["sweeps"]["hessian-x-input"]["items"]][:3] == ["A", "man", "is"]
    assert data["sweeps"]["hessian-x-input"]["method_label"].startswith("Hessian × input (second method")


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"text_a": "", "text_b": B}, 422, "Text A is empty"),
        ({"text_a": A, "text_b": B, "methods": ["bilrp"]}, 422, "methods"),
        ({"text_a": A, "text_b": B, "draws": 500}, 422, "draws"),
        ({"text_a": A, "text_b": B, "options": {"steps": "many"}}, 422, "steps must be"),
        ({"text_a": A, "text_b": B, "model": "no-such-model"}, 404, "no-such-model"),
        ({"text_a": A, "text_b": B, "pos": True}, 422, "pos is not a field of POST /faithfulness (use text_a, text_b"),
    ],
)
def test_http_bad_input_gets_a_sentence(client: TestClient, body: dict, status: int, message: str) -> None:
    response = client.post("/faithfulness", json=body)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
