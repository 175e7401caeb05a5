"""Exposure (issue 27, finding 9): `make run` binds the page to this machine unless told otherwise (with a
warning), and the compose backend, which listens on every interface on purpose, names its allowed hosts."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def make_dry_run(*args: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        ["make", "-n", "run", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_binds_the_page_to_localhost_unless_told() -> None:
    local = make_dry_run(env={"PAIRLENS_PAGE_ADDRESS": ""})
    assert "--server.address 127.0.0.1" in local
    public = make_dry_run("HOST=0.0.0.0")
    assert "--server.address 0.0.0.0" in public and "WARNING" in public and "no authentication" in public
    by_setting = make_dry_run(env={"PAIRLENS_PAGE_ADDRESS": "0.0.0.0"})
    assert "--server.address 0.0.0.0" in by_setting


def test_compose_backend_names_the_hosts_it_answers_to() -> None:
    compose = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    backend = compose.split("\n  page:")[0]
    assert '"--host", "0.0.0.0"' in backend
    assert 'PAIRLENS_ALLOWED_HOSTS: "backend,localhost,127.0.0.1"' in backend
    assert 'PAIRLENS_BACKEND_URL: "http://backend:8000"' in compose  # the name the page uses is allowed
