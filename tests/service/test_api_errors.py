"""Errors as the OpenAPI schema says, and sentences for what FastAPI answered generically (issue 27,
findings 7 and 9): one error model on every documented code, Host header checks, invalid UTF-8, deep
nesting, long numbers cut, 405 naming every method of a path."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from attribution.service import JobManager
from attribution.service.http import allowed_hosts_for, create_app, cut_long_numbers, host_name

A, B = "A man is playing a guitar on stage.", "Someone performs music with an instrument."
CODES = {
    ("post", "/explain"): {"200", "400", "404", "413", "422", "503"},
    ("post", "/jobs"): {"202", "400", "404", "413", "422", "503"},
    ("get", "/jobs/{job_id}"): {"200", "400", "404", "422"},
    ("delete", "/jobs/{job_id}"): {"200", "400", "404", "422"},
    ("get", "/jobs/{job_id}/result"): {"200", "400", "404", "409", "410", "422"},
    ("get", "/models"): {"200", "400"},
    ("get", "/models/{name}"): {"200", "400", "404", "422"},
    ("get", "/health"): {"200", "400"},
    ("post", "/faithfulness"): {"200", "400", "404", "413", "422", "503"},
    ("post", "/rank"): {"202", "400", "404", "413", "422", "503"},
    ("get", "/rank/{job_id}"): {"200", "400", "404", "422"},
    ("delete", "/rank/{job_id}"): {"200", "400", "404", "422"},
    ("get", "/rank/{job_id}/result"): {"200", "400", "404", "409", "410", "422"},
}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    manager = JobManager(workers=1, max_jobs=4, cache=None, max_work=1)
    with TestClient(create_app(manager, own_manager=True), raise_server_exceptions=False) as test_client:
        yield test_client


def test_every_route_documents_its_error_codes_with_one_model(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # 422 is not a list of errors
    error = spec["components"]["schemas"]["ErrorBody"]
    assert error["required"] == ["detail"] and error["properties"]["detail"]["type"] == "string"
    for (method, path), codes in CODES.items():
        responses = spec["paths"][path][method]["responses"]
        assert set(responses) == codes, (method, path)
        for code in codes - {"200", "202"}:
            schema = responses[code]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, code)


def test_a_422_is_sent_as_documented(client: TestClient) -> None:
    response = client.post("/explain", json={"text_a": 3, "text_b": B})
    assert response.status_code == 422 and set(response.json()) == {"detail"}
    assert isinstance(response.json()["detail"], str)


def test_invalid_utf8_and_deep_nesting_get_sentences(client: TestClient) -> None:
    headers = {"content-type": "application/json"}
    bad = client.post("/explain", content=b'{"text_a": "\xff\xfe", "text_b": "b"}', headers=headers)
    assert bad.status_code == 400 and "not valid UTF-8" in bad.json()["detail"]
    deep = client.post("/explain", content=b"[" * 100_000 + b"]" * 100_000, headers=headers)
    assert deep.status_code == 400 and "nests too deeply" in deep.json()["detail"]
    nested = {"text_a": A, "text_b": B, "options": {"steps": {"x": [[[[[[1]]]]]]}}}
    assert client.post("/explain", json=nested).status_code == 422


def test_a_refusal_never_echoes_a_309_digit_number(client: TestClient) -> None:
    for body in (
        {"text_a": A, "text_b": B, "options": {"steps": 10**308}},
        {"text_a": A, "text_b": B, "options": {"layer": -(10**308)}},
        {"text_a": A, "text_b": B, "top": 10**308},
    ):
        response = client.post("/explain", json=body)
        assert response.status_code == 422, response.text
        assert "0" * 41 not in response.text and len(response.text) < 600
    assert cut_long_numbers("got " + "9" * 309) == "got 999999999999... (309 digits)"


def test_405_names_every_method_of_the_path(client: TestClient) -> None:
    response = client.put("/jobs/abc")
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET" and "DELETE, GET" in response.json()["detail"]


def test_unknown_route_and_long_job_id(client: TestClient) -> None:
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and "/docs" in missing.json()["detail"]
    long = client.get("/jobs/" + "x" * 5000)
    assert long.status_code == 404 and len(long.json()["detail"]) < 200


def test_host_names_a_server_answers_to() -> None:
    assert allowed_hosts_for("127.0.0.1", None) == ["127.0.0.1", "localhost", "::1"]
    assert allowed_hosts_for("0.0.0.0", None) == ["127.0.0.1", "localhost", "::1"]
    assert allowed_hosts_for("10.1.2.3", None)[-1] == "10.1.2.3"
    assert allowed_hosts_for("0.0.0.0", "backend, Example.org") == ["backend", "example.org"]
    assert host_name("[::1]:8000") == "::1" and host_name("LocalHost:80") == "localhost" and host_name("x") == "x"


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:8000", True),
        ("localhost", True),
        ("[::1]:8000", True),
        ("evil.example:8000", False),  # a DNS-rebinding page: its own name resolved to 127.0.0.1
        ("", False),
        ("x" * 5000, False),
    ],
)
def test_the_host_header_is_checked(host: str, allowed: bool, minilm: Any) -> None:
    manager = JobManager(workers=1, max_jobs=2, cache=None)
    app = create_app(manager, own_manager=True, allowed_hosts=allowed_hosts_for("127.0.0.1", None))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        response = test_client.get("/health", headers={"host": host})
        if allowed:
            assert response.status_code == 200
        else:
            assert response.status_code == 400 and "PAIRLENS_ALLOWED_HOSTS" in response.json()["detail"]
            assert len(response.json()["detail"]) < 300
    any_host = create_app(JobManager(workers=1, cache=None), own_manager=True, allowed_hosts=["*"])
    with TestClient(any_host) as test_client:
        assert test_client.get("/health", headers={"host": "evil.example"}).status_code == 200
