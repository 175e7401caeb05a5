"""POST /rank (issue 25): a ranking job with progress, its result equal to explain_ranking, cancellation,
and bad input as a 422 sentence before anything is queued."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import wait_job

from attribution import explain_ranking
from attribution.service.http import create_app
from attribution.service.scheduler import JobManager

QUERY = "How do cats spend the day?"
CANDIDATES = ["Dogs bark at the mailman.", "Cats sleep for most of the day.", "The stock market fell sharply."]
LONG = " ".join(["the musician plays a loud song on the old guitar"] * 8)


@pytest.fixture(scope="module")
def client(minilm: Any) -> Iterator[TestClient]:
    manager = JobManager(workers=1, max_jobs=3, cache=None, max_work=None)
    with TestClient(create_app(manager, own_manager=True), raise_server_exceptions=False) as test_client:
        yield test_client


def wait_finished(client: TestClient, job_id: str, timeout: float = 120) -> dict[str, Any]:
    return wait_job(client, f"/rank/{job_id}", timeout)


def test_ranking_job_gives_explain_rankings_result(client: TestClient, minilm: Any) -> None:
    body = {"query": QUERY, "candidates": CANDIDATES, "options": {"steps": 4, "layer": 3}}
    created = client.post("/rank", json=body)
    assert created.status_code == 202, created.text
    assert created.headers["location"] == f"/rank/{created.json()['id']}"
    status = wait_finished(client, created.json()["id"])
    assert status["state"] == "done" and status["progress"]["fraction"] == 1.0
    assert status["maps"] == {"done": 3, "planned": 3}
    got = client.get(f"/rank/{status['id']}/result")
    assert got.status_code == 200
    entries = got.json()["entries"]
    want = explain_ranking(minilm, QUERY, CANDIDATES, steps=4, layer=3, pos=False)
    assert [e["index"] for e in entries] == [e.index for e in want.entries]
    for entry, expected in zip(entries, want.entries, strict=True):
        assert expected.attribution is not None
        assert np.abs(np.array(entry["attribution"]["matrix"]) - expected.attribution.matrix).max() <= 1e-6


def test_scores_only_and_top(client: TestClient) -> None:
    job = client.post("/rank", json={"query": QUERY, "candidates": CANDIDATES, "scores_only": True}).json()
    assert wait_finished(client, job["id"])["state"] == "done"
    entries = client.get(f"/rank/{job['id']}/result").json()["entries"]
    assert [e["attribution"] for e in entries] == [None, None, None] and entries[0]["index"] == 1
    top = client.post("/rank", json={"query": QUERY, "candidates": CANDIDATES, "top": 1, "options": {"steps": 2}})
    assert wait_finished(client, top.json()["id"])["maps"] == {"done": 1, "planned": 1}


def test_cancelled_ranking(client: TestClient) -> None:
    body = {"query": LONG, "candidates": [LONG + f" {i}" for i in range(6)], "options": {"steps": 256}}
    job = client.post("/rank", json=body).json()
    running = client.get(f"/rank/{job['id']}/result")
    assert running.status_code == 409 and "ask again" in running.json()["detail"]
    cancelled = client.delete(f"/rank/{job['id']}")
    assert cancelled.status_code == 200
    assert wait_finished(client, job["id"], 10)["state"] == "cancelled"
    gone = client.get(f"/rank/{job['id']}/result")
    assert gone.status_code == 410 and "cancelled" in gone.json()["detail"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"query": "", "candidates": CANDIDATES}, 422, "The query is empty"),
        ({"query": QUERY, "candidates": []}, 422, "candidate list is empty"),
        ({"query": QUERY, "candidates": ["a cat", "a cat"]}, 422, "Candidates 0 and 1 are the same text"),
        ({"query": QUERY, "candidates": [f"t {i}" for i in range(101)]}, 422, "send top"),
        ({"query": QUERY, "candidates": ["a", "b"], "options": {"prompt_name_b": "title"}}, 422, "no prompt named"),
        ({"query": QUERY, "candidates": ["a", "b"], "options": {"role_a": "x"}}, 422, "role_a must be"),
        ({"query": QUERY, "candidates": "one"}, 422, "candidates"),
        ({"query": QUERY, "candidates": ["a"], "colour": 1}, 422, "colour is not a field of POST /rank (use query"),
    ],
)
def test_bad_input_is_a_sentence(client: TestClient, body: dict[str, Any], status: int, message: str) -> None:
    response = client.post("/rank", json=body)
    if response.status_code == 202:  # refused by the worker once the model is loaded (prompt names)
        job = wait_finished(client, response.json()["id"])
        assert job["state"] == "failed" and message in job["error"]
        response = client.get(f"/rank/{job['id']}/result")
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]


def test_unknown_ranking_is_404(client: TestClient) -> None:
    response = client.get("/rank/nope")
    assert response.status_code == 404 and "No ranking" in response.json()["detail"]


def test_the_work_cap_holds_each_map(minilm: Any) -> None:
    """A server's cap on one request's work (PAIRLENS_MAX_PAGE_WORK) holds every map of a ranking, as it holds
    one pair on /jobs: a fixed N over it is refused with the sentence /jobs gives."""
    manager = JobManager(workers=1, max_jobs=2, cache=None, max_work=1000)
    with TestClient(create_app(manager, own_manager=True), raise_server_exceptions=False) as capped:
        job = capped.post("/rank", json={"query": QUERY, "candidates": CANDIDATES, "options": {"steps": 64}}).json()
        status = wait_finished(capped, job["id"])
        assert status["state"] == "failed" and "too large for this server" in status["error"]
        assert capped.get(f"/rank/{job['id']}/result").status_code == 422
