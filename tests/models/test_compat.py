"""The supported release range: refused outside it with one ModelError, and the helpers that read
sentence-transformers' modules through attributes that every supported release has."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

import attribution
from attribution import ModelError, load_model
from attribution.compat import SUPPORTED, check_versions, embedding_dimension, pooling_mode, release
from attribution.models import registry

ROOT = Path(__file__).resolve().parents[2]


def test_release_numbers() -> None:
    assert release("4.57.6") == (4, 57, 6)
    assert release("5.0.0rc1") == (5, 0, 0)
    assert release("2.13.0+cpu") == (2, 13, 0)
    assert release("6") == (6,)
    assert release("4.41.0") <= release("4.41.2") < release("6")


def test_installed_releases_are_supported() -> None:
    check_versions()  # the lock (requirements.txt) must sit inside the declared range


@pytest.mark.parametrize(
    ("name", "version"), [("transformers", "4.40.2"), ("transformers", "6.0.0"), ("sentence-transformers", "2.7.0")]
)
def test_load_model_outside_the_range_is_one_model_error(
    monkeypatch: pytest.MonkeyPatch, name: str, version: str
) -> None:
    real = attribution.compat.installed_version
    monkeypatch.setattr(attribution.compat, "installed_version", lambda n: version if n == name else real(n))
    monkeypatch.setattr(registry, "_cache", {})  # a fresh load, not the session's cached model
    with pytest.raises(ModelError) as caught:
        load_model("all-MiniLM-L6-v2")
    message = str(caught.value)
    low, high = SUPPORTED[name]
    assert f"{name} {version} is installed" in message
    assert f"{name} >={low},<{high}" in message  # the supported range, named
    assert "pip install" in message


def test_missing_package_is_named() -> None:
    with pytest.raises(ModelError, match="sentence-transformers is not installed"):
        check_versions({"transformers": "5.0.0", "sentence-transformers": None})


def test_pyproject_declares_the_checked_range() -> None:
    """pyproject's dependency ranges and compat.SUPPORTED say the same thing."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for name, (low, high) in SUPPORTED.items():
        assert f"{name}>={low},<{high}" in project["dependencies"]
    assert project["dynamic"] == ["version"]


class _OldPooling:  # sentence-transformers 3.x-5.x: flags and get_pooling_mode_str()
    def get_pooling_mode_str(self) -> str:
        return "mean"


class _NewPooling:  # sentence-transformers 6: pooling_mode, a string or a list
    def __init__(self, mode: Any) -> None:
        self.pooling_mode = mode


def test_pooling_mode_from_either_release() -> None:
    assert pooling_mode(_OldPooling()) == "mean"
    assert pooling_mode(_NewPooling("cls")) == "cls"
    assert pooling_mode(_NewPooling(["mean", "max"])) == "mean+max"
    with pytest.raises(ModelError, match="supports transformers"):
        pooling_mode(object())


def test_embedding_dimension_from_either_release(minilm) -> None:  # type: ignore[no-untyped-def]
    class Old:
        def get_sentence_embedding_dimension(self) -> int:
            return 384

    assert embedding_dimension(Old()) == 384
    assert minilm.embedding_dim == 384


def test_architecture_needing_a_newer_transformers_is_one_model_error() -> None:
    from attribution.compat import ARCHITECTURE_NEEDS, check_architecture

    first, _ = ARCHITECTURE_NEEDS["deberta-v2"]
    with pytest.raises(ModelError, match=r"'tiny' is a deberta-v2 model.*transformers >=4\.47.*4\.46\.3 is installed"):
        check_architecture("deberta-v2", "tiny", "4.46.3")
    check_architecture("deberta-v2", "tiny", first)  # the first release that works
    check_architecture("bert", "tiny", "4.41.2")  # no row: nothing to check
