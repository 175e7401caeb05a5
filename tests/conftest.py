"""Shared fixtures: the packaged MiniLM loaded once per session, tiny models built once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STSB_DIR = ROOT.parent / "shared" / "data" / "stsbenchmark"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def _pairlens_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests never write to the user's cache, except MPNet's assembled folder (400 MB, reused)."""
    if "PAIRLENS_HOME" not in os.environ:
        os.environ["PAIRLENS_HOME"] = str(tmp_path_factory.mktemp("pairlens-home"))


@pytest.fixture(scope="session")
def minilm():  # type: ignore[no-untyped-def]
    from attribution import load_model

    return load_model("all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    from attribution.models.packages import minilm_path

    return minilm_path()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> dict[str, Path]:
    """Folder per tiny architecture, plus CLS-pooling and dot-product variants."""
    from tiny_models import build_tiny_model

    base = tmp_path_factory.mktemp("tiny")
    folders = {
        arch: build_tiny_model(base / arch, arch, minilm_dir) for arch in ("bert", "roberta", "xlm-roberta", "mpnet")
    }
    folders["bert-cls-dot"] = build_tiny_model(
        base / "bert-cls-dot", "bert", minilm_dir, pooling="cls", normalize=False, similarity="dot", dense=True
    )
    folders["bert-max"] = build_tiny_model(base / "bert-max", "bert", minilm_dir, pooling="max")
    return folders


@pytest.fixture(scope="session")
def stsb_dir() -> Path:
    if not (STSB_DIR / "sts-test.csv").is_file():
        pytest.skip(f"STS Benchmark not found at {STSB_DIR} (it lives in ../shared/data beside the project)")
    return STSB_DIR
