"""Model identity that cannot be forged (issue 27, findings 1 and 5): built-in names are the built-in
models, folders need the operator's consent, a folder's cache identity is a hash of its bytes, and no
path is touched (or told apart) before the permission check."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import run_options

from attribution import ExplainOptions
from attribution.errors import InputError, ModelError
from attribution.models import identity
from attribution.models.registry import resolve_source
from attribution.service import JobManager, ResultCache
from attribution.service.cache import cached_explain, model_identity, result_key
from attribution.service.http import create_app
from attribution.service.scheduler import check_model_name

A, B = "A man is playing a guitar on stage.", "Someone performs music with an instrument."


def cls_copy(minilm_dir: Path, parent: Path) -> Path:
    """The audit's attack: all-MiniLM-L6-v2 copied under its own name, pooling switched to CLS with the
    same file sizes and modification times."""
    copy = parent / "all-MiniLM-L6-v2"
    shutil.copytree(minilm_dir, copy)
    pooling = copy / "1_Pooling" / "config.json"
    original = pooling.read_text()
    config = json.loads(original)
    assert config["pooling_mode_mean_tokens"] is True and config["pooling_mode_cls_token"] is False
    text = original.replace('"pooling_mode_cls_token": false', '"pooling_mode_cls_token": true').replace(
        '"pooling_mode_mean_tokens": true', '"pooling_mode_mean_tokens": false'
    )
    assert len(text) == len(original) and text != original
    pooling.write_text(text)
    for path in copy.rglob("*"):
        source = minilm_dir / path.relative_to(copy)
        os.utime(path, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns))
    return copy


def test_a_config_byte_changes_the_identity_and_never_shares_an_entry(
    tmp_path: Path, minilm_dir: Path, minilm: Any
) -> None:
    copy = cls_copy(minilm_dir, tmp_path)
    real = model_identity("all-MiniLM-L6-v2", load=False)
    forged = model_identity(str(copy), load=False)
    assert real is not None and forged is not None
    assert forged.fingerprint != real.fingerprint
    assert forged.name != "all-MiniLM-L6-v2"  # a folder named like a built-in is shown by its path
    options = run_options(layer=5, steps=2)
    assert result_key(forged, A, B, options, False) != result_key(real, A, B, options, False)

    cache = ResultCache(tmp_path / "c.sqlite", 16 << 20)
    poisoned, hit = cached_explain(str(copy), A, B, ExplainOptions(steps=2), pos=False, cache=cache)
    assert not hit
    honest, hit = cached_explain(minilm, A, B, ExplainOptions(steps=2), pos=False, cache=cache)
    assert not hit, "the CLS copy's result was served for the real model"
    assert abs(honest.score - poisoned.score) > 0.05
    again, hit = cached_explain(minilm, A, B, ExplainOptions(steps=2), pos=False, cache=cache)
    assert hit and again.score == honest.score


def test_file_hashes_are_kept_by_inode_size_and_times(tmp_path: Path, minilm_dir: Path) -> None:
    copy = tmp_path / "m"
    shutil.copytree(minilm_dir, copy)
    identity.folder_fingerprint(copy)
    opened: list[str] = []
    real_open = open

    def counting_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    import builtins

    builtins.open = counting_open  # type: ignore[assignment]
    try:
        identity.folder_fingerprint(copy)
        assert opened == []  # unchanged files: stat only
        (copy / "config.json").write_text((copy / "config.json").read_text() + " ")
        identity.folder_fingerprint(copy)
        assert opened == [str(copy / "config.json")]
    finally:
        builtins.open = real_open


def test_a_folder_named_like_a_builtin_needs_consent(
    tmp_path: Path, minilm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = cls_copy(minilm_dir, tmp_path)
    with pytest.raises(ModelError, match="PAIRLENS_ALLOW_CUSTOM_MODELS"):
        check_model_name(str(copy), allow_custom=False)
    assert check_model_name(str(copy), allow_custom=True) == str(copy)
    assert resolve_source("all-MiniLM-L6-v2")[1] != str(copy.resolve())
    monkeypatch.chdir(tmp_path)  # a folder of the built-in's name in the working directory is not the built-in
    assert resolve_source("all-MiniLM-L6-v2")[1] == str(minilm_dir)


def probed(path: str) -> bool:
    """Whether a stat()ed path is one of PROBES (imports stat source files: those are not probes)."""
    return path.startswith(("/etc", "..", "~", "/root")) or path in ("/", "a/b/c") or ".ssh" in path


@pytest.fixture
def no_stat_outside(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[str]]:
    """Record every stat of a probed path (see `probed`) outside PAIRLENS_HOME (tmp_path)."""
    monkeypatch.setenv("PAIRLENS_HOME", str(tmp_path))
    touched: list[str] = []
    for name in ("stat", "lstat"):
        real = getattr(os, name)

        def watching(path: Any, *args: Any, _real: Any = real, **kwargs: Any) -> Any:
            text = str(os.fspath(path)) if not isinstance(path, int) else ""
            if not text.startswith(str(tmp_path)) and probed(text):
                touched.append(text)
            return _real(path, *args, **kwargs)

        monkeypatch.setattr(os, name, watching)
    yield touched


PROBES = ["/etc/passwd", "/etc/passwdx", "~root/.ssh", "~nosuchuser/x", "../../etc", "../../etcx", "/", "..", "a/b/c"]


def test_refusals_read_the_same_whether_a_path_exists_or_not(no_stat_outside: list[str]) -> None:
    sentences = set()
    for probe in PROBES:
        with pytest.raises(ModelError) as refused:
            check_model_name(probe, allow_custom=False)
        sentences.add(str(refused.value).replace(repr(probe), "NAME"))
    assert len(sentences) == 1, sentences
    assert no_stat_outside == []  # nothing outside the operator's models folder was touched


def test_http_refusals_do_not_tell_paths_apart(no_stat_outside: list[str], minilm: Any) -> None:
    manager = JobManager(workers=1, max_jobs=2, cache=None)
    with TestClient(create_app(manager, own_manager=True), raise_server_exceptions=False) as client:
        answers = {}
        for probe in PROBES:
            for response in (
                client.get(f"/models/{probe}"),
                client.post("/explain", json={"text_a": A, "text_b": B, "model": probe}),
                client.post("/jobs", json={"text_a": A, "text_b": B, "model": probe}),
            ):
                assert response.status_code == 404 or (probe in ("/", "..") and response.status_code in (404, 405))
                if response.status_code == 404:
                    answers[probe] = response.json()["detail"].replace(repr(probe), "NAME")
        assert answers["/etc/passwd"] == answers["/etc/passwdx"]
        assert answers["../../etc"] == answers["../../etcx"] == answers["~root/.ssh"]
    assert no_stat_outside == []


def test_fine_tuned_models_under_home_stay_available(tmp_path: Path, minilm_dir: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("PAIRLENS_HOME", str(tmp_path))
    folder = tmp_path / "models" / "mine"
    shutil.copytree(minilm_dir, folder)
    assert check_model_name("mine", allow_custom=False) == str(folder)
    assert check_model_name(str(folder), allow_custom=False) == str(folder)
    with pytest.raises(ModelError, match="Unknown model"):
        check_model_name(str(folder / ".." / ".." / "models" / "mine" / ".."), allow_custom=False)


@pytest.mark.parametrize("allow", [False, True])
def test_model_names_over_255_bytes_are_a_sentence(allow: bool) -> None:
    with pytest.raises(InputError, match="at most 255 bytes"):
        check_model_name("x" * 256, allow_custom=allow)
    with pytest.raises(InputError, match="at most 255 bytes"):
        check_model_name("é" * 128, allow_custom=allow)
    with pytest.raises(ModelError):
        resolve_source("x" * 300)  # the CLI's path: a sentence, not ENAMETOOLONG
    with pytest.raises(ModelError):
        resolve_source("/tmp/" + "x" * 300 + "/y")


def test_http_model_names_over_255_bytes_get_a_4xx_sentence(minilm: Any) -> None:
    manager = JobManager(workers=1, max_jobs=2, cache=None)
    with TestClient(create_app(manager, own_manager=True), raise_server_exceptions=False) as client:
        long = "x" * 300
        for response in (
            client.get(f"/models/{long}"),
            client.post("/explain", json={"text_a": A, "text_b": B, "model": long}),
            client.post("/jobs", json={"text_a": A, "text_b": B, "model": long}),
        ):
            assert response.status_code == 422, response.text
            assert "at most 255 bytes" in response.json()["detail"]
