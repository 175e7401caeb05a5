"""Fairness that covers the queue (issue 27, finding 3): workers take queued jobs shortest first, and a
short job overtakes long ones that occupy every worker (they are preempted at chunk boundaries)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from attribution.service import ExplainRequest, FairGate, JobManager, JobState

A, B = "A man is playing a guitar on stage.", "Someone performs music with an instrument."
LONG = " ".join(["the musician plays a loud song on the old guitar"] * 6)


def long_request() -> ExplainRequest:
    return ExplainRequest.create(LONG, LONG, options={"steps": 64, "memory_budget_mb": 1}, pos=False)


def short_request() -> ExplainRequest:
    return ExplainRequest.create(A, B, options={"steps": 2}, pos=False)


def wait_for(predicate: Any, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_short_job_overtakes_workers_plus_two_long_ones(minilm: Any, workers: int) -> None:
    jobs = JobManager(workers=workers, max_jobs=16, cache=None, max_work=None)
    try:
        longs = [jobs.submit(long_request()) for _ in range(workers + 2)]
        wait_for(lambda: all(jobs.status(j).done > 0 for j in longs[:workers]))
        short = jobs.submit(short_request())
        assert jobs.wait(short, timeout=120).state is JobState.DONE
        states = [jobs.status(j) for j in longs]
        assert all(s.state is JobState.RUNNING and s.done < s.planned for s in states[:workers])
        assert all(s.state is JobState.QUEUED for s in states[workers:])  # no long one started meanwhile
    finally:
        for job in jobs.statuses():
            jobs.cancel(job.id)
        jobs.shutdown()


def test_fifo_policy_keeps_arrival_order_for_comparison(minilm: Any) -> None:
    jobs = JobManager(workers=1, max_jobs=8, gate=FairGate("fifo"), cache=None, max_work=None)
    try:
        first = jobs.submit(long_request())
        wait_for(lambda: jobs.status(first).done > 0)
        short = jobs.submit(short_request())
        time.sleep(1.0)
        assert jobs.status(short).state is JobState.QUEUED  # the old behaviour: it waits for a worker
    finally:
        for job in jobs.statuses():
            jobs.cancel(job.id)
        jobs.shutdown()


def test_queued_jobs_are_taken_shortest_first_with_the_starvation_limit(minilm: Any) -> None:
    gate = FairGate("shortest", max_wait=30.0)
    jobs = JobManager(workers=1, max_jobs=8, gate=gate, cache=None, max_work=None)
    try:
        blocker = jobs.submit(long_request())
        wait_for(lambda: jobs.status(blocker).done > 0)
        medium_text = " ".join(["a song on the old guitar"] * 10)  # over half the long one
        medium = jobs.submit(ExplainRequest.create(medium_text, medium_text, options={"steps": 64}, pos=False))
        longer = jobs.submit(long_request())
        with jobs._lock:  # what a freed worker would take now
            assert jobs._next_job(time.perf_counter()) is None  # neither is short enough to overtake
            jobs._running.clear()
            assert jobs._next_job(time.perf_counter()).id == medium  # type: ignore[union-attr]
            gate.max_wait = 0.0  # both starved: the oldest first
            jobs._pending.reverse()
            assert jobs._next_job(time.perf_counter()).id == medium  # type: ignore[union-attr]
            jobs._pending.reverse()
            jobs._running.add(jobs._jobs[blocker])
        assert jobs.status(longer).state is JobState.QUEUED
    finally:
        for job in jobs.statuses():
            jobs.cancel(job.id)
        jobs.shutdown()
