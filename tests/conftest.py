"""Shared fixtures: the packaged MiniLM loaded once per session, tiny models built once when first used."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Tests live in folders that mirror the package (tests/core, tests/viz, ...); the shared helpers
# (helpers, oracle, tiny_models, page_driver, downloads) stay here and are imported by bare name.
TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))
STSB_DIR = ROOT.parent / "shared" / "data" / "stsbenchmark"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def _pairlens_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests never write to the user's cache, except MPNet's assembled folder (400 MB, reused)."""
    if "PAIRLENS_HOME" not in os.environ:
        os.environ["PAIRLENS_HOME"] = str(tmp_path_factory.mktemp("pairlens-home"))


@pytest.fixture
def _fresh_caches() -> None:
    """No result from an earlier test: Streamlit's caches, the page's outcomes, the persistent cache."""
    import streamlit as st

    from attribution.service.cache import default_cache
    from components import backend

    st.cache_data.clear()
    backend.registry().clear()
    persistent = default_cache()
    if persistent is not None:
        persistent.clear()


@pytest.fixture(scope="session")
def minilm():  # type: ignore[no-untyped-def]
    from attribution import load_model

    return load_model("all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    from attribution.models.packages import minilm_path

    return minilm_path()


class TinyModels(Mapping[str, Path]):
    """Tiny model folders by name, each built offline on first use (once per session).

    Names: every architecture of tiny_models.SPECS with its default head, plus the variants in VARIANTS.
    """

    VARIANTS: ClassVar[dict[str, tuple[str, dict[str, Any]]]] = {
        "bert-cls-dot": (
            "bert",
            {"pooling": "cls", "normalize": False, "similarity": "dot", "dense": (16,), "dense_activation": "tanh"},
        ),
        **{
            f"bert-{mode}": ("bert", {"pooling": mode, "dense": (16,), "dense_activation": "tanh"})
            for mode in ("cls", "max", "lasttoken", "weightedmean", "mean_sqrt_len_tokens")
        },
        "gemma3_text-exclude-prompt": ("gemma3_text", {"include_prompt": False}),
        "bert-prompts": ("bert", {"prompts": {"query": "query: ", "document": "passage: "}}),  # E5's kind
        "bart": ("bart", {}),
    }

    def __init__(self, base: Path, minilm_dir: Path) -> None:
        self._base, self._minilm_dir = base, minilm_dir
        self._built: dict[str, Path] = {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> Path:
        from tiny_models import SPECS, build_tiny_model

        with self._lock:
            if name not in self._built:
                if name in SPECS:
                    arch, kwargs = name, {}
                elif name in self.VARIANTS:
                    arch, kwargs = self.VARIANTS[name]
                else:
                    raise KeyError(name)
                self._built[name] = build_tiny_model(self._base / name, arch, self._minilm_dir, **kwargs)
            return self._built[name]

    def __iter__(self) -> Iterator[str]:
        from tiny_models import SPECS

        return iter([*SPECS, *self.VARIANTS])

    def __len__(self) -> int:
        return len(list(iter(self)))


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> TinyModels:
    """Tiny model folders by name (every architecture, pooling and prompt variants), built when first used."""
    return TinyModels(tmp_path_factory.mktemp("tiny"), minilm_dir)


@pytest.fixture(scope="session")
def stsb_dir() -> Path:
    if not (STSB_DIR / "sts-test.csv").is_file():
        pytest.skip(f"STS Benchmark not found at {STSB_DIR} (it lives in ../shared/data beside the project)")
    return STSB_DIR
