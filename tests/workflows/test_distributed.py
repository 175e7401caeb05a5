"""`analyze --ray`: the corpus run on Ray actors (attribution/workflows/distributed.py).

Bad input first: those tests need this process without a Ray session (the CLI would use it).
The scheduling logic (dead workers, a pair that kills every worker, the replacement budget)
runs against a fake Ray in this process. The rest shares one local Ray of 2 CPUs for the whole
module (Ray's start-up takes seconds here) with the packaged MiniLM, 1 torch thread everywhere
so that the serial and the Ray run compute the same numbers.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from attribution.cli import main
from attribution.core.options import ExplainOptions
from attribution.errors import InputError, PairLensError
from attribution.workflows import corpus, distributed
from attribution.workflows.data import Pair
from attribution.workflows.distributed import Cluster, RayBackend, RayOptions, check_resources

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray

PAIRS = [
    ("A man is playing a guitar.", "A man plays the guitar.", 4.8),
    ("A woman is slicing an onion.", "A woman is cutting an onion.", 4.2),
    ("The cat sleeps on the sofa.", "Stocks fell sharply today.", 0.0),
    ("Two dogs run in the park.", "Dogs are running outside.", 3.6),
    ("A child reads a book.", "A kid is reading.", 3.9),
    ("Three men are playing chess in a quiet room near the window.", "Two men play chess.", 2.6),
    ("A plane is taking off.", "An air plane is taking off.", 5.0),
    ("A man is slicing a tomato.", "A man is slicing a bun.", 2.0),
    ("The boy rides his bicycle down the long hill after school.", "A boy is biking.", 3.2),
    ("Rain.", "It is raining heavily in the city tonight, and the streets are flooded.", 1.4),
]
FAST: dict[str, Any] = {
    "steps": 4,
    "convergence_pairs": 2,
    "convergence_steps": (1, 2),
    "png": False,
    "progress": False,
}


def write_pairs(path: Path, pairs: list[tuple[str, str, float]] = PAIRS) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for a, b, gold in pairs:
            handle.write(json.dumps({"text_a": a, "text_b": b, "score": gold}) + "\n")
    return path


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def one_line_error(capsys: pytest.CaptureFixture[str], code: int, *needles: str) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("pairlens: error: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err
    return err


# ----------------------------------------------------------------------------- bad input (no Ray session yet)


def test_ray_not_installed_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    data = write_pairs(tmp_path / "pairs.jsonl")
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    code = main(["analyze", "--data", str(data), "--out", str(tmp_path / "run"), "--ray"])
    one_line_error(capsys, code, "needs Ray", "pairlens[ray]")
    assert not (tmp_path / "run").exists()


def test_unreachable_or_malformed_address_is_one_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert not ray.is_initialized(), "bad-input tests must run before the module's Ray session starts"
    data = write_pairs(tmp_path / "pairs.jsonl")
    base = ["analyze", "--data", str(data), "--out", str(tmp_path / "run"), "--no-progress", "--ray"]
    started = time.perf_counter()
    code = main([*base, "127.0.0.1:1"])  # nothing listens on port 1
    one_line_error(capsys, code, "Cannot reach a Ray cluster at '127.0.0.1:1'", "ray start --head")
    assert time.perf_counter() - started < 30  # ray.init alone would wait minutes
    one_line_error(capsys, main([*base, "no-port-here"]), "is not a Ray address")
    one_line_error(capsys, main([*base, "ray://host:99999"]), "is not a Ray address")
    assert not (tmp_path / "run").exists() and not ray.is_initialized()


def test_ray_flags_without_ray_are_refused(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    data = write_pairs(tmp_path / "pairs.jsonl")
    base = ["analyze", "--data", str(data), "--out", str(tmp_path / "run")]
    one_line_error(capsys, main([*base, "--workers", "2"]), "--workers applies to Ray runs")
    one_line_error(capsys, main([*base, "--ray", "--workers", "0"]), "--workers must be")
    one_line_error(capsys, main([*base, "--ray", "--gpus-per-worker", "-1"]), "--gpus-per-worker must be")
    one_line_error(capsys, main([*base, "--ray", "--gpus-per-worker", "nan"]), "--gpus-per-worker must be")
    one_line_error(capsys, main([*base, "--ray", "--batch-size", "0"]), "--batch-size must be")
    assert not (tmp_path / "run").exists() and not ray.is_initialized()


def test_more_gpus_than_a_local_ray_has_is_one_line_and_the_local_ray_is_gone(  # type: ignore[no-untyped-def]
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """The CLI starts a local Ray, finds too few GPUs, and leaves nothing: no folder, no Ray, no temp dir."""
    assert not ray.is_initialized(), "bad-input tests must run before the module's Ray session starts"
    data = write_pairs(tmp_path / "pairs.jsonl")
    made: list[str] = []
    real_mkdtemp = tempfile.mkdtemp

    def recording_mkdtemp(*args: Any, **kwargs: Any) -> str:
        path = real_mkdtemp(*args, **kwargs)
        made.append(path)
        return path

    monkeypatch.setattr(tempfile, "mkdtemp", recording_mkdtemp)
    base = ["analyze", "--data", str(data), "--out", str(tmp_path / "run"), "--no-progress", "--ray"]
    code = main([*base, "--gpus-per-worker", "1000"])  # more GPUs than any machine running this test has
    one_line_error(capsys, code, "ask for 1000 GPUs, but the local Ray has", "--gpus-per-worker")
    assert not (tmp_path / "run").exists()
    assert not ray.is_initialized()  # the local Ray this run started was shut down
    assert len(made) == 1 and not Path(made[0]).exists()  # and its log folder removed


def test_check_resources() -> None:
    cpu_only = {"CPU": 4.0}
    assert check_resources(cpu_only, RayOptions(), "c") == 4
    assert check_resources(cpu_only, RayOptions(threads=2), "c") == 2
    assert check_resources(cpu_only, RayOptions(workers=3), "c") == 3
    with pytest.raises(InputError, match=r"3 worker\(s\) x 2 thread\(s\) ask for 6 CPUs, but the c has 4"):
        check_resources(cpu_only, RayOptions(workers=3, threads=2), "c")
    with pytest.raises(InputError, match=r"ask for 1 GPUs, but the c has 0: lower --workers or --gpus-per-worker"):
        check_resources(cpu_only, RayOptions(gpus_per_worker=1), "c")
    gpus = {"CPU": 16.0, "GPU": 2.0}
    assert check_resources(gpus, RayOptions(gpus_per_worker=1), "c") == 2
    assert check_resources(gpus, RayOptions(gpus_per_worker=0.5), "c") == 4  # two actors per GPU
    with pytest.raises(InputError, match=r"3 worker\(s\) x --gpus-per-worker 1 ask for 3 GPUs, but the c has 2"):
        check_resources(gpus, RayOptions(workers=3, gpus_per_worker=1), "c")


def test_record_writer_writes_each_key_once(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    corpus.append_line(path, {"key": "1:a", "result": 1})
    calls: list[tuple[int, int, str]] = []
    writer = corpus.RecordWriter(
        path, {"1:a"}, 3, "test", progress=False, on_progress=lambda *a: calls.append(a), phase="pairs"
    )
    assert writer.add("2:b", {"key": "2:b", "result": 2})
    assert not writer.add("2:b", {"key": "2:b", "result": "again"})  # a batch sent twice
    assert not writer.add("1:a", {"key": "1:a", "result": "again"})  # finished before this call
    assert writer.add("3:c", {"key": "3:c", "error": "refused"})
    assert [r["key"] for r in lines(path)] == ["1:a", "2:b", "3:c"] and lines(path)[1]["result"] == 2
    assert (writer.computed, writer.failed, calls) == (1, 1, [(2, 3, "pairs"), (3, 3, "pairs")])


# ----------------------------------------------------------------------------- scheduling, on a fake Ray


class FakeRef:
    def __init__(self, value: Any) -> None:
        self.value = value


class FakeRay:
    """Just what RayBackend uses of ray: actors run each call at once, `behaviour` decides what it returns."""

    exceptions = ray.exceptions

    def __init__(self, behaviour: Any) -> None:
        self.behaviour = behaviour  # (actor number, method, jobs) -> records, or raises a Ray error
        self.spawned = 0
        self.killed: list[int] = []
        self.sent: list[tuple[int, int]] = []  # (actor, batch length)

    def remote(self, **options: Any) -> Any:
        fake = self

        class ActorClass:
            @staticmethod
            def remote(*args: Any) -> Any:
                fake.spawned += 1
                return FakeActor(fake, fake.spawned)

        return lambda cls: ActorClass

    def wait(self, refs: list[FakeRef], num_returns: int = 1) -> tuple[list[FakeRef], list[FakeRef]]:
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref: FakeRef) -> Any:
        if isinstance(ref.value, BaseException):
            raise ref.value
        return ref.value

    def kill(self, actor: FakeActor) -> None:
        self.killed.append(actor.number)


class FakeActor:
    def __init__(self, fake: FakeRay, number: int) -> None:
        self.fake, self.number = fake, number

    def __getattr__(self, method: str) -> Any:
        actor = self

        class Method:
            @staticmethod
            def remote(jobs: list[Any], argument: Any) -> FakeRef:
                actor.fake.sent.append((actor.number, len(jobs)))
                try:
                    return FakeRef(actor.fake.behaviour(actor.number, method, jobs))
                except Exception as exc:
                    return FakeRef(exc)

        return Method


def fake_backend(behaviour: Any, workers: int = 2, batch_size: int = 3) -> tuple[RayBackend, FakeRay]:
    fake = FakeRay(behaviour)
    spec = RayOptions(workers=workers, batch_size=batch_size)
    return RayBackend(Cluster(fake, spec, "model", workers, "fake Ray", time.perf_counter())), fake


def jobs_of(n: int) -> list[tuple[Pair, str]]:
    return [(Pair(f"text {i} " + "x" * i, "other", None, i + 1), f"{i + 1}:k") for i in range(n)]


def records(jobs: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(key, {"key": key, "result": "ok"}) for _, key in jobs]


def test_batches_go_longest_first_to_the_least_busy_worker() -> None:
    backend, fake = fake_backend(lambda actor, method, jobs: records(jobs), workers=2, batch_size=3)
    out = list(backend.attributions(jobs_of(8), ExplainOptions()))
    assert [key for key, _ in out] == ["8:k", "7:k", "6:k", "5:k", "4:k", "3:k", "2:k", "1:k"]
    assert fake.sent == [(1, 3), (2, 3), (1, 2)]
    assert (backend.deaths, backend.resent, fake.spawned) == (0, 0, 2)
    backend.close()
    assert sorted(fake.killed) == [1, 2]


def test_a_dead_worker_is_replaced_and_its_batch_sent_again_as_single_pairs() -> None:
    died: list[int] = []

    def behaviour(actor: int, method: str, jobs: list[Any]) -> Any:
        if actor == 1 and not died:
            died.append(actor)
            raise ray.exceptions.ActorDiedError()
        return records(jobs)

    backend, fake = fake_backend(behaviour, workers=2, batch_size=4)
    out = list(backend.attributions(jobs_of(8), ExplainOptions()))
    assert sorted(key for key, _ in out) == sorted(f"{i}:k" for i in range(1, 9))  # each pair once
    assert (backend.deaths, backend.resent, fake.spawned, fake.killed) == (1, 1, 3, [1])
    assert fake.sent[0] == (1, 4) and fake.sent.count((3, 1)) + fake.sent.count((2, 1)) == 4  # 4 singles again


def test_a_pair_that_kills_every_worker_is_refused_after_max_attempts() -> None:
    def behaviour(actor: int, method: str, jobs: list[Any]) -> Any:
        if any(pair.text_a.startswith("text 2 ") for pair, _ in jobs):
            raise ray.exceptions.ActorDiedError()
        return records(jobs)

    backend, _ = fake_backend(behaviour, workers=2, batch_size=3)
    out = dict(backend.attributions(jobs_of(6), ExplainOptions()))
    assert sorted(out) == sorted(f"{i}:k" for i in range(1, 7))
    refused = out["3:k"]
    assert refused["row"] == 3 and "result" not in refused
    assert refused["error"].startswith(f"A Ray worker died on this pair {distributed.MAX_ATTEMPTS} times")
    assert backend.deaths == distributed.MAX_ATTEMPTS
    assert all(out[k]["result"] == "ok" for k in out if k != "3:k")


def test_when_every_replacement_dies_too_the_run_stops_with_one_message() -> None:
    def behaviour(actor: int, method: str, jobs: list[Any]) -> Any:
        raise ray.exceptions.ActorDiedError()

    backend, fake = fake_backend(behaviour, workers=2, batch_size=1)
    with pytest.raises(PairLensError, match="Every Ray worker died and 7 replacements too") as info:
        list(backend.attributions(jobs_of(10), ExplainOptions()))
    assert not isinstance(info.value, ray.exceptions.RayError)
    assert fake.spawned == 2 + 7


def test_errors_raised_by_pairlens_code_in_a_worker_come_back_as_themselves() -> None:
    def raising(error: Exception) -> Any:
        def behaviour(actor: int, method: str, jobs: list[Any]) -> Any:
            raise ray.exceptions.RayTaskError("attributions", "traceback", error)

        return behaviour

    backend, _ = fake_backend(raising(InputError("a clear message")))
    with pytest.raises(InputError, match=r"^a clear message$"):
        list(backend.attributions(jobs_of(2), ExplainOptions()))
    backend, _ = fake_backend(raising(ZeroDivisionError("a bug")))
    with pytest.raises(ray.exceptions.RayTaskError):  # a bug keeps its (remote) traceback
        list(backend.attributions(jobs_of(2), ExplainOptions()))


# ----------------------------------------------------------------------------- a real local Ray


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    """One local Ray (2 CPUs) for the module; its folder is short (Ray's socket paths are limited)."""
    temp = tempfile.mkdtemp(prefix="pairlens-ray-test-")
    ray.init(**distributed.local_init_kwargs(2, temp))
    try:
        yield
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def wait_for_free_cpus(expected: float, seconds: float = 30.0) -> bool:
    """True once the Ray session has `expected` CPUs free again (killed actors return theirs)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ray.available_resources().get("CPU", 0.0) >= expected:
            return True
        time.sleep(0.5)
    return False


def numbers_close(a: Any, b: Any, path: str = "", rel: float = 1e-9) -> list[str]:
    """Paths where two JSON-like values differ (floats by more than `rel` relative)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(a)} != {sorted(b)}"]
        return [d for k in a for d in numbers_close(a[k], b[k], f"{path}.{k}", rel)]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in numbers_close(x, y, f"{path}[{i}]", rel)]
    if isinstance(a, float) and isinstance(b, float):
        return [] if math.isclose(a, b, rel_tol=rel, abs_tol=1e-12) else [f"{path}: {a} != {b}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def test_ray_run_gives_the_serial_results(minilm, ray_session, one_thread, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = write_pairs(tmp_path / "pairs.jsonl")
    serial = corpus.analyze(minilm, data, tmp_path / "serial", **FAST, cache=False)  # like Ray: computed here
    spread = corpus.analyze(
        "all-MiniLM-L6-v2", data, tmp_path / "ray", **FAST, ray=RayOptions(workers=2, batch_size=3, threads=1)
    )
    assert (spread.computed, spread.skipped, spread.failed) == (len(PAIRS), 0, 0)
    by_key = {r["key"]: r for r in lines(tmp_path / "serial" / "attributions.jsonl")}
    ray_records = lines(tmp_path / "ray" / "attributions.jsonl")
    assert sorted(r["key"] for r in ray_records) == sorted(by_key)  # every pair exactly once
    worst = 0.0
    for record in ray_records:
        expected = by_key[record["key"]]
        assert (record["row"], record["gold"]) == (expected["row"], expected["gold"])
        got, want = record["result"], expected["result"]
        assert (got["tokens_a"], got["tokens_b"], got["pos_a"]) == (want["tokens_a"], want["tokens_b"], want["pos_a"])
        matrix, reference = torch.tensor(got["matrix"]), torch.tensor(want["matrix"])
        assert matrix.shape == reference.shape
        worst = max(worst, float((matrix - reference).abs().max()))
        for name in ("score", "target", "attribution_sum", "relative_error"):
            assert got[name] == pytest.approx(want[name], abs=1e-6), name
    assert worst <= 1e-6
    conv = {(r["key"], r["layer"]): r["errors"] for r in lines(tmp_path / "serial" / "convergence.jsonl")}
    ray_conv = {(r["key"], r["layer"]): r["errors"] for r in lines(tmp_path / "ray" / "convergence.jsonl")}
    assert ray_conv.keys() == conv.keys() and len(conv) == 2 * 3
    assert not numbers_close(ray_conv, conv)

    def comparable(summary: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in summary.items() if k not in ("run", "plots", "seconds_per_pair")}

    # Serial and Ray batches group the pairs differently for explain_many (32 vs 3 per call), so the
    # batched forwards round differently: scores agree to ~1e-8, relative errors (small differences of
    # large sums) to ~1e-6 relative; the matrices are checked to 1e-6 above.
    assert not numbers_close(comparable(spread.summary), comparable(serial.summary), rel=1e-4)
    run = spread.summary["run"]["ray"]
    assert (run["workers"], run["batch_size"], run["worker_deaths"], run["where"]) == (
        2,
        3,
        0,
        "Ray session of this process",
    )
    settings = [json.loads((tmp_path / name / "run.json").read_text())["settings"] for name in ("serial", "ray")]
    assert settings[0] == settings[1]  # a serial re-run could resume the Ray run's folder, and back


def test_a_worker_killed_mid_run_is_replaced_and_every_pair_written_once(ray_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = write_pairs(tmp_path / "pairs.jsonl")
    marker = tmp_path / "crashed"
    victim = PAIRS[5][0]

    def crash_once(model: Any, pairs: Any, options: Any) -> Any:
        """The worker process exits on the victim's batch, the first time only."""
        if any(pair.text_a == victim for pair in pairs) and not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(1)
        return distributed._explain_batch(model, pairs, options)

    spec = RayOptions(workers=2, batch_size=3, batch_fn=crash_once)
    report = corpus.analyze("all-MiniLM-L6-v2", data, tmp_path / "run", **{**FAST, "convergence_pairs": 0}, ray=spec)
    assert marker.exists()
    written = lines(tmp_path / "run" / "attributions.jsonl")
    assert sorted(r["row"] for r in written) == list(range(1, len(PAIRS) + 1))  # each exactly once
    assert all("result" in r for r in written)
    info = report.summary["run"]["ray"]
    assert info["worker_deaths"] >= 1 and info["resent_batches"] >= 1
    assert (report.computed, report.failed, report.summary["pairs"]) == (len(PAIRS), 0, len(PAIRS))
    assert wait_for_free_cpus(2.0)  # the replacement and the other actor are gone after the run


def test_resume_after_the_driver_is_interrupted(ray_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = write_pairs(tmp_path / "pairs.jsonl")
    out = tmp_path / "run"
    log = tmp_path / "computed.txt"

    def logged(model: Any, pairs: Any, options: Any) -> Any:
        with log.open("a", encoding="utf-8") as handle:
            handle.write("".join(f"{pair.row}\n" for pair in pairs))
        return distributed._explain_batch(model, pairs, options)

    spec = RayOptions(workers=2, batch_size=2, batch_fn=logged)
    fast = {**FAST, "convergence_pairs": 0}
    seen: list[int] = []

    def interrupt(done: int, total: int, phase: str) -> None:
        seen.append(done)
        if done == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        corpus.analyze("all-MiniLM-L6-v2", data, out, **fast, ray=spec, on_progress=interrupt)
    first = (out / "attributions.jsonl").read_bytes()
    first_rows = [r["row"] for r in lines(out / "attributions.jsonl")]
    assert seen == [1, 2, 3, 4] and len(first_rows) == 4
    assert wait_for_free_cpus(2.0)  # the interrupted run's actors were killed
    log.write_text("")

    progress: list[int] = []
    report = corpus.analyze(
        "all-MiniLM-L6-v2", data, out, **fast, ray=spec, on_progress=lambda d, t, p: progress.append(d)
    )
    assert (report.skipped, report.computed) == (4, len(PAIRS) - 4)
    recomputed = [int(x) for x in log.read_text().split()]
    assert sorted(recomputed) == sorted(set(range(1, len(PAIRS) + 1)) - set(first_rows))  # none twice, none lost
    assert (out / "attributions.jsonl").read_bytes().startswith(first)  # the finished lines are untouched
    assert sorted(r["row"] for r in lines(out / "attributions.jsonl")) == list(range(1, len(PAIRS) + 1))
    assert progress == list(range(5, len(PAIRS) + 1))
    assert report.summary["pairs"] == len(PAIRS)


def test_more_gpus_than_the_cluster_has_is_one_line(ray_session, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    data = write_pairs(tmp_path / "pairs.jsonl")
    base = ["analyze", "--data", str(data), "--out", str(tmp_path / "run"), "--ray"]
    code = main([*base, "--gpus-per-worker", "1"])
    one_line_error(capsys, code, "ask for 1 GPUs, but the Ray session of this process has 0", "--gpus-per-worker")
    code = main([*base, "--workers", "3"])
    one_line_error(capsys, code, "ask for 3 CPUs, but the Ray session of this process has 2")
    assert not (tmp_path / "run").exists()
    assert ray.is_initialized()  # a session this process started is left running
