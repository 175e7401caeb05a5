"""The HTTP API: results equal to `explain --json`, jobs, and 4xx with a message for every bad input."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import wait_job

from attribution import explain
from attribution.cli import explain_json
from attribution.devices import available_devices
from attribution.service import JobManager, ResultCache
from attribution.service.http import create_app, max_body_bytes

ROOT = Path(__file__).resolve().parents[2]
A, B = "A man is playing a guitar on stage.", "Someone performs music with an instrument."
LONG = " ".join(["the musician plays a loud song on the old guitar"] * 8)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, minilm: Any) -> Iterator[TestClient]:
    cache = ResultCache(tmp_path_factory.mktemp("http-cache") / "c.sqlite", 16 << 20)
    manager = JobManager(workers=2, max_jobs=3, cache=cache, max_work=None)  # long jobs to cancel
    with TestClient(create_app(manager, own_manager=True), raise_server_exceptions=False) as test_client:
        yield test_client


def wait_done(client: TestClient, job_id: str, timeout: float = 120) -> dict[str, Any]:
    return wait_job(client, f"/jobs/{job_id}", timeout)


def test_health_and_models(client: TestClient) -> None:
    health = client.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok" and health.json()["policy"] == "shortest"
    names = [m["name"] for m in client.get("/models").json()]
    assert "all-MiniLM-L6-v2" in names
    facts = client.get("/models/all-MiniLM-L6-v2").json()
    assert facts["num_layers"] == 6 and facts["default_layer"] == 5
    assert facts["device"] in available_devices()  # where the server computes (PAIRLENS_DEVICE), for the page


def test_explain_returns_the_cli_json(client: TestClient, minilm: Any) -> None:
    body = {"text_a": A, "text_b": B, "options": {"steps": 4, "layer": 3}, "pos": True, "top": 3}
    response = client.post("/explain", json=body)
    assert response.status_code == 200, response.text
    got = response.json()
    want = explain_json(explain(minilm, A, B, steps=4, layer=3, pos=True), pos=True, words=False, top=3)
    assert set(got) == set(want)
    assert np.abs(np.array(got["matrix"]) - np.array(want["matrix"])).max() <= 1e-6
    assert got["tokens_a"] == want["tokens_a"] and got["pos_a"] == want["pos_a"] and len(got["top_pairs"]) == 3
    plain = client.post("/explain", json={"text_a": A, "text_b": B, "options": {"steps": 4, "layer": 3}}).json()
    assert "pos_a" not in plain and "top_pairs" not in plain  # like `explain --json` without --pos


def test_job_lifecycle_and_cache(client: TestClient) -> None:
    body = {"text_a": A, "text_b": B + " Twice.", "options": {"steps": 2}}
    created = client.post("/jobs", json=body)
    assert created.status_code == 202 and created.headers["location"] == f"/jobs/{created.json()['id']}"
    status = wait_done(client, created.json()["id"])
    assert status["state"] == "done" and status["progress"]["fraction"] == 1.0 and not status["cached"]
    result = client.get(f"/jobs/{status['id']}/result")
    assert result.status_code == 200 and result.json()["tokens_b"][-2] == "."
    again = client.post("/jobs", json=body).json()
    assert again["state"] == "done" and again["cached"]  # answered at submission, from the cache
    assert client.get(f"/jobs/{again['id']}/result").json()["matrix"] == result.json()["matrix"]


def test_cancelled_job(client: TestClient) -> None:
    job = client.post("/jobs", json={"text_a": LONG, "text_b": LONG, "options": {"steps": 256}}).json()
    running = client.get(f"/jobs/{job['id']}/result")
    assert running.status_code == 409 and "ask again" in running.json()["detail"]
    cancelled = client.delete(f"/jobs/{job['id']}")
    assert cancelled.status_code == 200
    assert wait_done(client, job["id"], 10)["state"] == "cancelled"
    gone = client.get(f"/jobs/{job['id']}/result")
    assert gone.status_code == 410 and "cancelled" in gone.json()["detail"]


def test_full_queue_is_503(client: TestClient) -> None:
    body = {"text_a": LONG, "text_b": LONG, "options": {"steps": 512}}
    ids = [client.post("/jobs", json=body).json()["id"] for _ in range(3)]
    try:
        busy = client.post("/jobs", json=body)
        assert busy.status_code == 503 and "busy" in busy.json()["detail"] and busy.headers["retry-after"]
    finally:
        for job_id in ids:
            client.delete(f"/jobs/{job_id}")
        for job_id in ids:
            wait_done(client, job_id, 10)


def test_failed_job_result_says_why(client: TestClient, minilm: Any) -> None:
    # with the model's facts known (a cache), a bad layer is refused at submission ...
    refused = client.post("/jobs", json={"text_a": A, "text_b": B, "options": {"layer": 40}})
    assert refused.status_code == 422 and "layer" in refused.json()["detail"]
    # ... without them (no cache), the job fails and its result says why
    with TestClient(create_app(JobManager(workers=1, cache=None), own_manager=True)) as bare:
        job = bare.post("/jobs", json={"text_a": A, "text_b": B, "options": {"layer": 40}}).json()
        assert wait_done(bare, job["id"])["state"] == "failed"
        failed = bare.get(f"/jobs/{job['id']}/result")
        assert failed.status_code == 422 and "layer" in failed.json()["detail"]


def test_request_over_the_work_cap_fails_with_what_to_do(monkeypatch: pytest.MonkeyPatch, minilm: Any) -> None:
    monkeypatch.setenv("PAIRLENS_MAX_PAGE_WORK", "100000")
    with TestClient(create_app(JobManager(workers=1, cache=None), own_manager=True)) as capped:
        job = capped.post("/jobs", json={"text_a": LONG, "text_b": LONG, "options": {"steps": 256}}).json()
        assert wait_done(capped, job["id"])["state"] == "failed"
        failed = capped.get(f"/jobs/{job['id']}/result")
        detail = failed.json()["detail"]
        assert failed.status_code == 422 and "PAIRLENS_MAX_PAGE_WORK" in detail and "fewer steps" in detail


BAD_BODIES: list[tuple[str, Any, int, str]] = [
    ("not json", b"{text_a: 1", 400, "not valid JSON"),
    ("a list", [A, B], 422, "Invalid request"),
    ("text as number", {"text_a": 3, "text_b": B}, 422, "text_a"),
    ("missing text", {"text_a": A}, 422, "text_b is required"),
    ("unknown field", {"text_a": A, "text_b": B, "colour": "red"}, 422, "colour is not a field of POST /explain"),
    ("options a list", {"text_a": A, "text_b": B, "options": [1]}, 422, "options"),
    ("unknown option", {"text_a": A, "text_b": B, "options": {"stepz": 3}}, 422, "Unknown option"),
    ("bad steps", {"text_a": A, "text_b": B, "options": {"steps": "many"}}, 422, "steps"),
    ("steps as list", {"text_a": A, "text_b": B, "options": {"steps": [4]}}, 422, "steps"),
    ("huge steps", {"text_a": A, "text_b": B, "options": {"steps": 10**30}}, 422, "steps"),
    ("bad layer", {"text_a": A, "text_b": B, "options": {"layer": 99}}, 422, "layer"),
    ("pos as text", {"text_a": A, "text_b": B, "pos": "yes"}, 422, "pos"),
    ("negative top", {"text_a": A, "text_b": B, "top": -1}, 422, "top"),
    ("empty text", {"text_a": " ", "text_b": B}, 422, "empty"),
    ("unknown model", {"text_a": A, "text_b": B, "model": "no-such-model"}, 404, "Unknown model"),
    ("a folder", {"text_a": A, "text_b": B, "model": "/etc"}, 404, "PAIRLENS_ALLOW_CUSTOM_MODELS"),  # no probing
    ("a hub id", {"text_a": A, "text_b": B, "model": "someone/model"}, 404, "PAIRLENS_ALLOW_CUSTOM_MODELS"),
]


@pytest.mark.parametrize("path", ["/explain", "/jobs"])
@pytest.mark.parametrize(("name", "body", "status", "message"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_input_gets_a_4xx_with_a_message(
    client: TestClient, path: str, name: str, body: Any, status: int, message: str
) -> None:
    if isinstance(body, bytes):
        response = client.post(path, content=body, headers={"content-type": "application/json"})
    else:
        response = client.post(path, json=body)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and message in detail and "Traceback" not in response.text


def test_over_long_text_and_body(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAIRLENS_MAX_TEXT_CHARS", "50")
    long_text = client.post("/explain", json={"text_a": "word " * 20, "text_b": B})
    assert long_text.status_code == 422 and "more than the limit of 50" in long_text.json()["detail"]
    limit = max_body_bytes()
    too_big = client.post("/explain", json={"text_a": "x" * limit, "text_b": B})
    assert too_big.status_code == 413 and "larger than" in too_big.json()["detail"]
    streamed = client.post(
        "/explain",
        content=iter([b'{"text_a": "', b"x" * limit, b'", "text_b": "y"}']),
        headers={"content-type": "application/json"},
    )
    assert streamed.status_code == 413


def test_unknown_job_and_route(client: TestClient) -> None:
    for response in (client.get("/jobs/nope"), client.delete("/jobs/nope"), client.get("/jobs/nope/result")):
        assert response.status_code == 404 and "No job" in response.json()["detail"]
    assert client.get("/nowhere").status_code == 404
    assert client.put("/explain", json={}).status_code == 405


# ----------------------------------------------------------------------------- a real server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(home: Path, port: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PAIRLENS_HOME": str(home), "PYTHONPATH": str(ROOT), "PAIRLENS_WORKERS": "2"}
    env["PAIRLENS_MAX_PAGE_WORK"] = str(10**12)  # the abandoned request below must be long, not refused
    cmd = [sys.executable, "-m", "attribution", "serve", "--port", str(port), "--log-level", "warning"]
    server = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"server exited: {server.stdout.read() if server.stdout else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise AssertionError("server did not start")


def stop(server: subprocess.Popen[str]) -> None:
    server.terminate()
    try:
        server.wait(20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(5)


def test_pairlens_serve_on_loopback_cancels_abandoned_requests_and_keeps_its_cache(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    body = {"text_a": A, "text_b": B, "options": {"steps": 2}}
    server = start_server(tmp_path, port)
    try:
        first = httpx.post(f"{base}/explain", json=body, timeout=180)
        assert first.status_code == 200
        # a client that gives up: its computation is cancelled, not left running
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{base}/explain", json={"text_a": LONG, "text_b": LONG, "options": {"steps": 512}}, timeout=3)
        deadline = time.monotonic() + 10
        while httpx.get(f"{base}/health").json()["jobs"]["cancelled"] < 1:
            assert time.monotonic() < deadline, "the abandoned request was not cancelled"
            time.sleep(0.1)
        bad = httpx.post(f"{base}/explain", content=b"[", headers={"content-type": "application/json"})
        assert bad.status_code == 400
    finally:
        stop(server)
    server = start_server(tmp_path, port)  # a restart: the cache on disk answers
    try:
        job = httpx.post(f"{base}/jobs", json=body).json()
        assert job["state"] == "done" and job["cached"]
        again = httpx.get(f"{base}/jobs/{job['id']}/result").json()
        assert json.dumps(again["matrix"]) == json.dumps(first.json()["matrix"])
    finally:
        stop(server)


def test_serve_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    from attribution.cli import main

    assert main(["serve", "--port", "0"]) == 2
    assert main(["serve", "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert "--port must be" in err and "--workers must be" in err
