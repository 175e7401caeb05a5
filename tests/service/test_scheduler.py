"""FairGate: which waiting chunk runs next; JobManager: jobs, progress, cancellation, limits."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from helpers import wait_until

from attribution import Cancelled, Run, explain
from attribution.core.execution import FifoGate
from attribution.errors import InputError, ModelError
from attribution.service import (
    Busy,
    ExplainRequest,
    FairGate,
    JobFailed,
    JobManager,
    JobState,
    NotFinished,
    UnknownJob,
)
from attribution.service.scheduler import check_model_name

A, B = "A man is playing a guitar on stage.", "Someone performs music with an instrument."


class Workload:
    """A fake computation: `chunks` chunks of `units` units, each `delay` seconds inside the gate."""

    def __init__(self, name: str, gate: Any, chunks: int, units: int, delay: float, log: list[str]) -> None:
        self.name, self.chunks, self.units, self.delay, self.log = name, chunks, units, delay, log
        self.run = Run(gate=gate)
        self.error: BaseException | None = None
        self.finished_at: float | None = None
        self.thread = threading.Thread(target=self._work, daemon=True)

    def _work(self) -> None:
        self.run.plan(self.chunks * self.units)
        try:
            for _ in range(self.chunks):
                with self.run.unit(self.units):
                    self.log.append(self.name)
                    time.sleep(self.delay)
        except BaseException as exc:
            self.error = exc
        self.finished_at = time.perf_counter()

    def start(self) -> Workload:
        self.thread.start()
        return self


def long_then_short(gate: Any, long_chunks: int = 60) -> tuple[list[str], int]:
    """A long workload, then (after its 5th chunk) a short one: the log and where the short arrived."""
    log: list[str] = []
    long = Workload("long", gate, long_chunks, 10, 0.01, log).start()
    wait_until(lambda: len(log) >= 5, "the long workload's 5th chunk")
    arrived = len(log)
    short = Workload("short", gate, 3, 10, 0.01, log).start()
    short.thread.join(10)
    long.thread.join(10)
    assert long.error is None and short.error is None
    return log, arrived


def long_chunks_before_short_ends(log: list[str], arrived: int) -> int:
    last_short = max(i for i, name in enumerate(log) if name == "short")
    return sum(1 for name in log[arrived : last_short + 1] if name == "long")


def test_shortest_first_lets_a_short_run_through_at_once() -> None:
    log, arrived = long_then_short(FairGate("shortest"))
    assert long_chunks_before_short_ends(log, arrived) <= 2  # at most the chunk it arrived during
    assert log.count("long") == 60 and log.count("short") == 3


def test_fifo_would_keep_the_short_run_behind_the_long_one() -> None:
    """The comparison that makes the test above meaningful: whole computations in arrival order."""
    log, arrived = long_then_short(FairGate("fifo"))
    assert long_chunks_before_short_ends(log, arrived) >= 50


def test_round_robin_alternates() -> None:
    log, arrived = long_then_short(FairGate("round-robin"))
    assert long_chunks_before_short_ends(log, arrived) <= 4


def test_a_starved_run_goes_first_after_max_wait() -> None:
    """Short runs arriving back to back cannot hold a long one off for more than max_wait."""
    gate = FairGate("shortest", max_wait=0.05)
    log: list[str] = []
    long = Workload("long", gate, 3, 1000, 0.01, log)
    short = Workload("short", gate, 40, 1, 0.01, log)
    short.start()
    wait_until(lambda: log, "the short workload's first chunk", poll=0.001)
    long.start()
    long.thread.join(10)
    short.thread.join(10)
    first_long = log.index("long")
    assert first_long < 20, log  # without the limit the long run would wait for all 40 short chunks


def test_one_chunk_inside_at_a_time() -> None:
    gate = FairGate("shortest")
    inside = 0
    overlap = False
    lock = threading.Lock()

    class Probe(list):  # type: ignore[type-arg]
        def append(self, item: object) -> None:
            nonlocal inside, overlap
            with lock:
                inside += 1
                overlap |= inside > 1
            time.sleep(0.002)
            with lock:
                inside -= 1
            super().append(item)

    log = Probe()
    workloads = [Workload(f"w{i}", gate, 10 + 3 * i, 5, 0.0, log).start() for i in range(5)]
    for w in workloads:
        w.thread.join(10)
    assert not overlap and len(log) == sum(10 + 3 * i for i in range(5))


def test_cancel_while_waiting_raises_promptly() -> None:
    gate = FairGate("shortest")
    log: list[str] = []
    long = Workload("long", gate, 1, 10, 1.0, log).start()
    wait_until(lambda: log, "the long workload's first chunk", poll=0.001)
    waiter = Workload("waiter", gate, 3, 1, 0.0, log).start()
    time.sleep(0.05)
    cancelled_at = time.perf_counter()
    waiter.run.cancel.set()
    waiter.thread.join(2)
    assert isinstance(waiter.error, Cancelled)
    assert waiter.finished_at is not None and waiter.finished_at - cancelled_at < 0.5  # not after the 1 s chunk
    long.thread.join(5)
    assert gate.waiting == 0


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(InputError, match="policy"):
        FairGate("lottery")  # type: ignore[arg-type]


def test_engine_runs_interleave_through_the_fair_gate(minilm: Any) -> None:
    """Real explain() calls: a short pair that arrives during a long one finishes first."""
    gate = FairGate("shortest")
    long_text = " ".join(["the musician plays a loud song on the old guitar"] * 4)
    finished: list[str] = []
    order: list[str] = []
    long_run = Run(gate=gate, on_progress=lambda p: order.append("long"))
    short_run = Run(gate=gate, on_progress=lambda p: order.append("short"))

    def work(name: str, a: str, b: str, run: Run) -> None:
        try:
            explain(minilm, a, b, steps=4, pos=False, memory_budget_mb=1, run=run)
            finished.append(name)
        except Cancelled:
            finished.append(f"{name} cancelled")

    long = threading.Thread(target=work, args=("long", long_text, long_text, long_run))
    long.start()
    wait_until(lambda: len(order) >= 3, "the long computation's third chunk", timeout=300, poll=0.005)
    short = threading.Thread(target=work, args=("short", A, B, short_run))
    short.start()
    short.join(60)
    long_left = long_run.remaining
    long_run.cancel.set()
    long.join(60)
    assert finished == ["short", "long cancelled"] and long_left > 0  # the long one was still far from done


def test_fifo_gate_is_still_the_engine_default(minilm: Any) -> None:
    assert isinstance(Run().gate, FifoGate)


# ----------------------------------------------------------------------------- jobs


@pytest.fixture
def manager() -> Any:
    jobs = JobManager(workers=2, max_jobs=3, cache=None)
    yield jobs
    jobs.shutdown()


def test_job_runs_and_reports_progress(manager: JobManager, minilm: Any) -> None:
    request = ExplainRequest.create(A, B, options={"steps": 4, "memory_budget_mb": 1}, pos=False)
    job = manager.submit(request)
    status = manager.wait(job, timeout=60)
    assert status.state is JobState.DONE and status.fraction == 1.0 and status.seconds_left == 0.0
    assert status.done == status.planned > 0 and not status.cached
    result = manager.result(job)
    direct = explain(minilm, A, B, steps=4, pos=False)
    assert abs(result.matrix - direct.matrix).max() <= 1e-6
    assert status.to_dict()["progress"]["fraction"] == 1.0


def test_cancel_stops_a_running_job_within_a_chunk(manager: JobManager, minilm: Any) -> None:
    long_text = " ".join(["the musician plays a loud song on the old guitar"] * 6)
    job = manager.submit(ExplainRequest.create(long_text, long_text, options={"steps": 64, "memory_budget_mb": 1}))
    wait_until(lambda: manager.status(job).done > 0, "the job's first chunk", timeout=300, poll=0.01)
    cancelled_at = time.perf_counter()
    manager.cancel(job)
    status = manager.wait(job, timeout=10)
    assert status.state is JobState.CANCELLED and time.perf_counter() - cancelled_at < 2.0
    assert status.done < status.planned
    with pytest.raises(Cancelled):
        manager.result(job)


def test_queued_job_cancelled_never_starts(minilm: Any) -> None:
    jobs = JobManager(workers=1, max_jobs=5, cache=None)
    try:
        long_text = " ".join(["a song on the old guitar"] * 8)
        first = jobs.submit(ExplainRequest.create(long_text, long_text, options={"steps": 32, "memory_budget_mb": 1}))
        second = jobs.submit(ExplainRequest.create(A, B, options={"steps": 2}))
        assert jobs.status(second).state is JobState.QUEUED
        assert jobs.cancel(second).state is JobState.CANCELLED
        jobs.cancel(first)
        assert jobs.wait(first, 10).state is JobState.CANCELLED
        assert jobs.status(second).done == 0
    finally:
        jobs.shutdown()


def test_limits_and_unknown_jobs(manager: JobManager) -> None:
    long_text = " ".join(["a song on the old guitar"] * 8)
    request = ExplainRequest.create(long_text, long_text, options={"steps": 64, "memory_budget_mb": 1})
    ids = [manager.submit(request) for _ in range(3)]
    with pytest.raises(Busy, match="busy"):
        manager.submit(request)
    with pytest.raises(NotFinished):
        manager.result(ids[0])
    for job in ids:
        manager.cancel(job)
    with pytest.raises(UnknownJob):
        manager.status("no-such-job")


def test_failed_job_says_why(manager: JobManager) -> None:
    job = manager.submit(ExplainRequest.create(A, B, options={"layer": 40}))
    status = manager.wait(job, timeout=60)
    assert status.state is JobState.FAILED and "layer" in (status.error or "")
    with pytest.raises(JobFailed, match="layer"):
        manager.result(job)


def test_request_validation() -> None:
    with pytest.raises(InputError, match="Text A"):
        ExplainRequest.create("", B)
    with pytest.raises(InputError, match="Unknown option"):
        ExplainRequest.create(A, B, options={"stepz": 3})
    with pytest.raises(InputError, match="steps"):
        ExplainRequest.create(A, B, options={"steps": "many"})
    with pytest.raises(InputError, match="options must be"):
        ExplainRequest.create(A, B, options=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="Unknown model"):
        ExplainRequest.create(A, B, model="no-such-model")


def test_custom_models_need_the_operators_consent(tiny_models: dict[str, Any]) -> None:
    folder = str(tiny_models["bert"])
    with pytest.raises(ModelError, match="PAIRLENS_ALLOW_CUSTOM_MODELS"):
        check_model_name(folder, allow_custom=False)
    assert check_model_name(folder, allow_custom=True) == folder
    assert check_model_name("sentence-transformers/all-MiniLM-L6-v2", allow_custom=False)
