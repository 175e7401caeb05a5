"""Run: progress, cancellation and the differentiation gate around the engine's chunks of work."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from attribution import Cancelled, Progress, Run, explain
from attribution.core.engine import NodeEvaluator
from attribution.core.execution import FifoGate

A, B = "A man is playing a guitar on stage.", "Someone performs music with an instrument."


def test_progress_counts_every_tangent_pass(minilm: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Progress] = []
    res = explain(minilm, A, B, steps=4, pos=False, memory_budget_mb=1, run=Run(on_progress=seen.append))
    tokens = len(res.a) + len(res.b)
    assert seen[-1].done == seen[-1].planned == 4 * tokens  # S passes per node and text (structured path)
    assert [p.done for p in seen] == sorted(p.done for p in seen)
    assert seen[-1].fraction == 1.0 and seen[0].seconds_left is not None
    seen.clear()
    monkeypatch.setattr(NodeEvaluator, "use_structured", False)  # the generic path chunks by the budget
    res = explain(minilm, A, B, steps=4, pos=False, memory_budget_mb=1, run=Run(on_progress=seen.append))
    assert seen[-1].done == seen[-1].planned == 4 * tokens
    assert [p.done for p in seen] == sorted(p.done for p in seen) and len(seen) == 4 * tokens  # 1 per chunk


def test_auto_plans_each_round_before_spending_it(minilm: Any) -> None:
    seen: list[Progress] = []
    res = explain(minilm, A, B, layer=3, rule="midpoint", pos=False, run=Run(on_progress=seen.append))
    rounds = [n for n, _ in res.error_by_steps]
    assert len(rounds) >= 2 and seen[-1].planned == seen[-1].done == rounds[-1] * (len(res.a) + len(res.b))
    assert all(p.done <= p.planned for p in seen)  # midpoint: every round's new nodes planned first
    seen.clear()
    res = explain(minilm, A, B, layer=3, pos=False, run=Run(on_progress=seen.append))  # adaptive
    assert len(res.error_by_steps) >= 2 and seen[-1].planned == seen[-1].done >= res.steps * min(len(res.a), len(res.b))
    assert all(p.done <= p.planned for p in seen)


def test_cancel_stops_before_the_next_chunk(minilm: Any) -> None:
    cancel = threading.Event()
    chunks: list[int] = []

    def on_progress(progress: Progress) -> None:
        chunks.append(progress.done)
        cancel.set()  # as if the user closed the tab after the first chunk

    with pytest.raises(Cancelled):
        explain(minilm, A, B, steps=8, pos=False, memory_budget_mb=1, run=Run(cancel, on_progress))
    assert len(chunks) == 1


def test_every_chunk_passes_the_gate_once() -> None:
    class CountingGate(FifoGate):
        def __init__(self) -> None:
            super().__init__()
            self.inside = 0
            self.entries = 0
            self.overlap = False

        def enter(self, run: Run) -> None:
            super().enter(run)
            self.entries += 1
            self.inside += 1
            self.overlap |= self.inside > 1

        def leave(self, run: Run) -> None:
            self.inside -= 1
            super().leave(run)

    from attribution import load_model

    model = load_model("all-MiniLM-L6-v2")
    gate = CountingGate()
    runs = [Run(gate=gate, on_progress=None) for _ in range(3)]
    threads = [
        threading.Thread(target=explain, args=(model, A, B), kwargs={"steps": 2, "pos": False, "run": run})
        for run in runs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
        assert not thread.is_alive(), "a thread still runs after 600 s"
    assert gate.entries == 6  # one chunk per text and run (the default budget holds a whole text)
    assert not gate.overlap and gate.inside == 0
    assert all(run.done == run.planned > 0 for run in runs)
