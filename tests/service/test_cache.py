"""The persistent result cache: keys, persistence across processes, corruption, the size bound."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import run_options

from attribution import Attribution, ExplainOptions, explain
from attribution.errors import PairLensWarning
from attribution.service import cache as cache_module
from attribution.service.cache import (
    ModelIdentity,
    ResultCache,
    cached_explain,
    folder_fingerprint,
    lookup_unloaded,
    model_identity,
    result_key,
)

ROOT = Path(__file__).resolve().parents[2]
A, B = "A man is playing a guitar on stage.", "Someone performs music with an instrument."
IDENTITY = ModelIdentity("m", "/nowhere", "files:0")
OPTIONS = run_options(layer=5, steps=2)


@pytest.fixture(scope="module")
def result(minilm: Any) -> Attribution:
    return explain(minilm, A, B, steps=2, pos=False)


def same(x: Attribution, y: Attribution) -> bool:
    return x.to_dict() == y.to_dict()


def in_subprocess(code: str, home: Path) -> str:
    env = {**os.environ, "PAIRLENS_HOME": str(home), "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def test_round_trip_is_exact(tmp_path: Path, result: Attribution) -> None:
    cache = ResultCache(tmp_path / "c.sqlite", 1 << 20)
    cache.put("k", result)
    back = cache.get("k")
    assert back is not None and same(back, result) and np.array_equal(back.matrix, result.matrix)
    assert cache.get("other") is None
    assert cache.stats()["entries"] == 1


def test_key_covers_everything_that_changes_the_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    base = result_key(IDENTITY, A, B, OPTIONS, True)
    changed = [
        result_key(IDENTITY, A + " ", B, OPTIONS, True),
        result_key(IDENTITY, A, B + " ", OPTIONS, True),
        result_key(IDENTITY, B, A, OPTIONS, True),
        result_key(IDENTITY, A, B, OPTIONS.replace(layer=4), True),
        result_key(IDENTITY, A, B, OPTIONS.replace(steps=3), True),
        result_key(IDENTITY, A, B, OPTIONS.replace(rule="midpoint"), True),
        result_key(IDENTITY, A, B, OPTIONS.replace(mode="exact"), True),
        result_key(IDENTITY, A, B, OPTIONS.replace(similarity="dot"), True),
        result_key(IDENTITY, A, B, OPTIONS.replace(tolerance=1e-4), True),
        result_key(IDENTITY, A, B, OPTIONS.replace(direction="reverse"), True),
        result_key(IDENTITY, A, B, OPTIONS.replace(max_tokens=128), True),
        result_key(IDENTITY, A, B, OPTIONS.replace(memory_budget_mb=7), True),  # chunking: float rounding
        result_key(IDENTITY, A, B, OPTIONS.replace(device="cuda:0"), True),
        result_key(IDENTITY, A, B, OPTIONS.replace(precision="bf16"), True),
        result_key(IDENTITY, A, B, OPTIONS.replace(prompt="query: "), True),
        result_key(IDENTITY, A, B, OPTIONS.replace(steps="auto"), True),
        result_key(IDENTITY, A, B, OPTIONS.replace(steps="auto", step_cap=16), True),
        result_key(IDENTITY, A, B, OPTIONS, False),
        result_key(ModelIdentity("m", "/nowhere", "files:1"), A, B, OPTIONS, True),
        result_key(ModelIdentity("n", "/nowhere", "files:0"), A, B, OPTIONS, True),
    ]
    assert len({base, *changed}) == len(changed) + 1
    # limits that only refuse requests, and the cap of steps="auto" under a fixed N, change no result
    assert result_key(IDENTITY, A, B, OPTIONS.replace(max_steps=16, step_cap=16), True) == base
    assert result_key(IDENTITY, A, B, OPTIONS.replace(max_text_chars=10), True) == base
    monkeypatch.setattr(cache_module, "ENGINE_VERSION", 999)
    assert result_key(IDENTITY, A, B, OPTIONS, True) != base


def test_cached_explain_computes_once_and_resolves_defaults(tmp_path: Path, minilm: Any) -> None:
    cache = ResultCache(tmp_path / "c.sqlite", 8 << 20)
    first, hit1 = cached_explain(minilm, A, B, ExplainOptions(steps=2), pos=False, cache=cache)
    resolved = ExplainOptions(steps=2, layer=minilm.default_layer)
    again, hit2 = cached_explain(minilm, A, B, resolved, pos=False, cache=cache)
    assert (hit1, hit2) == (False, True) and same(first, again)
    budget, hit3 = cached_explain(minilm, A, B, ExplainOptions(steps=2, memory_budget_mb=1), pos=False, cache=cache)
    assert not hit3 and np.allclose(budget.matrix, first.matrix, rtol=1e-5, atol=1e-8)  # other chunks: own entry
    annotated, hit4 = cached_explain(minilm, A, B, ExplainOptions(steps=2), pos=True, cache=cache)
    assert hit4 and annotated.has_pos and np.array_equal(annotated.matrix, first.matrix)


def test_lookup_without_loading_after_a_restart(tmp_path: Path, minilm: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.sqlite"
    cached_explain(minilm, A, B, ExplainOptions(steps=2), pos=False, cache=ResultCache(path, 8 << 20))
    monkeypatch.setattr(cache_module, "_facts", {})  # a new process knows no model facts
    fresh = ResultCache(path, 8 << 20)
    hit = lookup_unloaded(fresh, "all-MiniLM-L6-v2", A, B, ExplainOptions(steps=2), pos=False)
    assert hit is not None and hit.model_name == "all-MiniLM-L6-v2"
    assert lookup_unloaded(fresh, "all-MiniLM-L6-v2", A, B, ExplainOptions(steps=3), pos=False) is None


def test_cache_is_shared_across_processes(tmp_path: Path, result: Attribution) -> None:
    path = tmp_path / "shared.sqlite"
    ResultCache(path, 8 << 20).put("from-parent", result)
    (tmp_path / "r.json").write_text(json.dumps(result.to_dict()))
    code = (
        "import json, sys; from attribution import Attribution; from attribution.service.cache import ResultCache\n"
        f"c = ResultCache({str(path)!r}, 8 << 20)\n"
        "got = c.get('from-parent'); print(None if got is None else float(got.matrix.sum()))\n"
        f"r = Attribution.from_dict(json.load(open({str(tmp_path / 'r.json')!r})))\n"
        "c.put('from-child', r.replace(score=0.25))\n"
    )
    printed = in_subprocess(code, tmp_path)
    assert float(printed) == pytest.approx(float(result.matrix.sum()), abs=0)
    back = ResultCache(path, 8 << 20).get("from-child")
    assert back is not None and back.score == 0.25


def test_two_processes_writing_at_once_stay_consistent(tmp_path: Path, result: Attribution) -> None:
    """Two processes put and read back 40 entries each into a cache bounded at about 20 of them.

    Neither is ever locked out (no warning) or reads a torn value. A read-back may miss: the other
    process's puts can evict an entry between its put and its get (a bounded LRU promises no more),
    so misses are counted, not failed. After both, the file is within its bound and every entry left
    decodes to the result that was put, and eviction removed no more than it had to.
    """
    path = tmp_path / "busy.sqlite"
    (tmp_path / "r.json").write_text(json.dumps(result.to_dict()))
    code = (
        "import json, sys, warnings; from attribution import Attribution\n"
        "from attribution.service.cache import ResultCache\n"
        f"r = Attribution.from_dict(json.load(open({str(tmp_path / 'r.json')!r})))\n"
        f"c = ResultCache({str(path)!r}, 40_000)\n"
        "misses = 0\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    for i in range(40):\n"
        "        c.put(sys.argv[1] + str(i), r)\n"
        "        got = c.get(sys.argv[1] + str(i))\n"
        "        misses += got is None\n"
        "        assert got is None or got.to_dict() == r.to_dict(), 'a torn or foreign value'\n"
        "print(len(w), misses)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen([sys.executable, "-c", code, tag], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for tag in ("a", "b")
    ]
    outs = [p.communicate(timeout=300)[0].split() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert [out[0] for out in outs] == ["0", "0"]  # no warnings: never locked out
    cache = ResultCache(path, 40_000)
    stats = cache.stats()
    entry = stats["bytes"] // stats["entries"]
    assert stats["bytes"] <= 40_000
    assert stats["bytes"] > 40_000 * cache_module.EVICT_TO - entry  # evicted only down to EVICT_TO of the bound
    keys = [f"{tag}{i}" for tag in "ab" for i in range(40)]
    left = [got for got in map(cache.get, keys) if got is not None]
    assert len(left) == stats["entries"] and all(same(got, result) for got in left)


def test_an_entry_that_waited_for_the_write_lock_is_stamped_when_written(tmp_path: Path, result: Attribution) -> None:
    """A put that waits while another process fills the cache is still the newest entry when it lands.

    Stamped before the wait (as before this test), it was older than every entry written meanwhile
    and its own put's eviction removed it: a miss right after the put.
    """
    probe = ResultCache(tmp_path / "probe.sqlite", 1 << 20)
    probe.put("x", result)
    size = probe.stats()["bytes"]
    path = tmp_path / "full.sqlite"
    cache = ResultCache(path, 4 * size + size // 2)  # room for 4 entries
    cache.put("old", result)
    other = sqlite3.connect(str(path), timeout=10.0, isolation_level=None)
    blob = other.execute("SELECT value FROM results WHERE key = 'old'").fetchone()[0]
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock ...
    waiting = threading.Thread(target=cache.put, args=("waited", result))
    waiting.start()
    time.sleep(0.3)  # ... while this put waits for it
    for i in range(4):  # ... and writes newer entries that fill the cache
        stamp = time.time_ns()
        other.execute(
            "INSERT INTO results (key, value, size, created, last_used) VALUES (?, ?, ?, ?, ?)",
            (f"other{i}", blob, size, stamp, stamp),
        )
    other.execute("COMMIT")
    other.close()
    waiting.join(timeout=30)
    assert not waiting.is_alive()
    assert cache.get("waited") is not None
    assert cache.get("old") is None and cache.get("other0") is None  # the oldest went instead


def test_bound_evicts_least_recently_used(tmp_path: Path, result: Attribution) -> None:
    probe = ResultCache(tmp_path / "probe.sqlite", 1 << 20)
    probe.put("x", result)
    entry = probe.stats()["bytes"]
    cache = ResultCache(tmp_path / "small.sqlite", 5 * entry + entry // 2)
    for i in range(4):
        cache.put(f"k{i}", result)
    assert cache.get("k0") is not None  # k0 is now the most recently used
    for i in range(4, 12):
        cache.put(f"k{i}", result)
        if i == 6:
            assert cache.get("k0") is not None
    stats = cache.stats()
    assert stats["bytes"] <= cache.max_bytes and stats["entries"] < 12
    assert cache.get("k1") is None and cache.get("k11") is not None


def test_corrupt_file_is_rebuilt_with_a_warning(tmp_path: Path, result: Attribution) -> None:
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    cache = ResultCache(path, 8 << 20)
    with pytest.warns(PairLensWarning, match="moved aside and rebuilt"):
        assert cache.get("k") is None
    cache.put("k", result)
    got = cache.get("k")
    assert got is not None and same(got, result)
    assert (tmp_path / "c.sqlite.corrupt").exists() and cache.rebuilt == 1


def test_file_corrupted_while_open_is_rebuilt(tmp_path: Path, result: Attribution) -> None:
    path = tmp_path / "c.sqlite"
    cache = ResultCache(path, 8 << 20)
    cache.put("k", result)
    cache.close()
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # header kept, schema page destroyed
    path.write_bytes(bytes(data))
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cache.get("k") is None
        cache.put("k2", result)
        assert cache.get("k2") is not None
    assert any(issubclass(w.category, PairLensWarning) for w in caught)


def test_unusable_location_turns_the_cache_off(tmp_path: Path, result: Attribution) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cache = ResultCache(blocker / "sub" / "c.sqlite", 8 << 20)
    with pytest.warns(PairLensWarning, match="off"):
        assert cache.get("k") is None
    cache.put("k", result)  # no error
    assert cache.disabled and cache.stats()["entries"] == 0


def test_folder_fingerprint_follows_the_bytes_not_the_times(tmp_path: Path, minilm_dir: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(minilm_dir, copy)
    before = folder_fingerprint(copy)
    assert folder_fingerprint(copy) == before == folder_fingerprint(minilm_dir)  # same bytes, same identity
    weights = next(p for p in copy.rglob("*") if p.suffix in (".safetensors", ".bin"))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert folder_fingerprint(copy) == before  # touched, not changed
    with open(weights, "r+b") as handle:
        handle.seek(-1, os.SEEK_END)
        last = handle.read(1)
        handle.seek(-1, os.SEEK_END)
        handle.write(bytes([last[0] ^ 1]))
    assert folder_fingerprint(copy) != before
    identity = model_identity("all-MiniLM-L6-v2", load=False)
    assert identity is not None and identity.name == "all-MiniLM-L6-v2" and identity.fingerprint.startswith("content:")


def test_default_cache_follows_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAIRLENS_HOME", str(tmp_path))
    monkeypatch.setenv("PAIRLENS_CACHE_MB", "3")
    cache = cache_module.default_cache()
    assert cache is not None and cache.path == tmp_path / "cache" / "results.sqlite" and cache.max_bytes == 3 << 20
    monkeypatch.setenv("PAIRLENS_CACHE_MB", "0")
    assert cache_module.default_cache() is None


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """Texts A that reach the engine (explain or explain_many), with a fresh cache under a temporary
    PAIRLENS_HOME/cache."""
    from attribution.core import engine, many

    monkeypatch.setenv("PAIRLENS_HOME", str(tmp_path / "home"))
    calls: list[str] = []
    real = engine.explain

    def wrapper(model: Any, text_a: str, text_b: str, *args: Any, **kwargs: Any) -> Attribution:
        calls.append(text_a)
        return real(model, text_a, text_b, *args, **kwargs)

    monkeypatch.setattr(engine, "explain", wrapper)
    real_many = many.explain_outcomes

    def wrapper_many(model: Any, pairs: Any, *args: Any, **kwargs: Any) -> Any:  # the corpus computes in batches
        calls.extend(a for a, _ in pairs)
        return real_many(model, pairs, *args, **kwargs)

    monkeypatch.setattr(many, "explain_outcomes", wrapper_many)
    return calls


def test_cli_uses_the_cache_unless_told_not_to(
    counted: list[str], minilm: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from attribution.cli import main

    args = ["explain", A, B, "--steps", "2", "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert counted == [A] and first == second  # the second answer came from the cache
    assert main([*args, "--no-cache"]) == 0
    assert counted == [A, A] and json.loads(capsys.readouterr().out)["matrix"] == first["matrix"]


def test_corpus_analysis_shares_the_cache(counted: list[str], minilm: Any, tmp_path: Path) -> None:
    from attribution.workflows import corpus

    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(json.dumps({"text_a": a, "text_b": b, "score": 1.0}) for a, b in [(A, B), (B, A)]) + "\n")
    fast = {"steps": 2, "convergence_pairs": 0, "png": False, "progress": False}
    first = corpus.analyze(minilm, data, tmp_path / "one", **fast)  # type: ignore[arg-type]
    assert counted == [A, B]
    again = corpus.analyze(minilm, data, tmp_path / "two", **fast)  # type: ignore[arg-type]
    assert counted == [A, B] and again.computed == 2  # both from the cache
    lines_one = (tmp_path / "one" / "attributions.jsonl").read_text().splitlines()
    lines_two = (tmp_path / "two" / "attributions.jsonl").read_text().splitlines()
    assert lines_one == lines_two and first.summary["pairs"] == 2
    corpus.analyze(minilm, data, tmp_path / "three", cache=False, **fast)  # type: ignore[arg-type]
    assert counted == [A, B, A, B]
