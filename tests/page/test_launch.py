"""`pairlens page`: the page started by the CLI, from a clone here and from the wheel's copy (tools/compat.py
and the wheel check install it); a missing extra is one line, not a traceback."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from page_driver import free_port, wait_healthy

from attribution import launch
from attribution.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_pairlens_page_serves_the_page() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "attribution", "page", "--port", str(port), "--host", "127.0.0.1"],
        cwd=ROOT / "tests",  # not the page's folder: the launcher finds it
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, process, timeout=90)
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            assert b'<div id="root">' in response.read()
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
    # stopping `pairlens page` stops the page: no Streamlit server is left behind on the port
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/_stcore/health", timeout=5)


def test_pairlens_page_binds_this_machine_unless_told_otherwise() -> None:
    from attribution.cli import build_parser

    args = build_parser().parse_args(["page"])
    assert launch.page_command(args.port, args.host)[-2:] == ["--server.address", "127.0.0.1"]


def test_page_folder_prefers_the_wheels_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert launch.page_folder() == ROOT  # a clone: the repository's own app.py
    packaged = tmp_path / "_page"
    (packaged / "components").mkdir(parents=True)
    (packaged / "app.py").write_text("")
    monkeypatch.setattr(launch, "PACKAGED", packaged)
    assert launch.page_folder() == packaged
    monkeypatch.setattr(launch, "PACKAGED", tmp_path / "absent")
    monkeypatch.setattr(launch, "CLONE", tmp_path / "absent")
    with pytest.raises(launch.InputError, match="make run"):
        launch.page_folder()


def test_page_command_runs_streamlit_on_app_py() -> None:
    command = launch.page_command(8600, "127.0.0.1")
    assert command[:5] == [sys.executable, "-m", "streamlit", "run", "app.py"]
    assert command[-4:] == ["--server.port", "8600", "--server.address", "127.0.0.1"]


def test_without_the_app_extra_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "streamlit" else real(name, *a))
    assert main(["page"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        'pairlens: error: The page needs the app extra: pip install "pairlens[app]" (streamlit, plotly, spaCy, ...).'
    ]
