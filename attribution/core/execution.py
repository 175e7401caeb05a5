"""How one explain() call runs: cancellation, progress, and its turn at the differentiation gate.

Work is counted in units: one tangent pass (one token at one quadrature node, or one output
dimension in reverse mode). The engine plans units before it spends them and runs them in
chunks, each inside `Run.unit`, which checks for cancellation, waits for its turn at the gate
and reports progress. torch's forward-mode AD levels are process-global, not per thread, so
chunks of different calls must never overlap: a gate lets one chunk through at a time. The
default gate is first come, first served; a scheduler (attribution.service) may order waiting
chunks otherwise, for example shortest remaining work first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from ..errors import PairLensError


class Cancelled(PairLensError):
    """The caller cancelled the computation (nothing is returned)."""


@dataclass(frozen=True)
class Progress:
    """Units done of those planned so far (planned grows when steps="auto" adds a round)."""

    done: int
    planned: int
    seconds: float  # since the run started

    @property
    def fraction(self) -> float:
        return self.done / self.planned if self.planned else 0.0

    @property
    def seconds_left(self) -> float | None:
        """A linear estimate from the rate so far; None before the first unit."""
        if self.done == 0:
            return None
        return self.seconds / self.done * max(self.planned - self.done, 0)


class Gate(Protocol):
    """Lets one chunk of differentiation through at a time."""

    def enter(self, run: Run) -> None: ...

    def leave(self, run: Run) -> None: ...


class FifoGate:
    """First come, first served: a plain lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def enter(self, run: Run) -> None:
        self._lock.acquire()

    def leave(self, run: Run) -> None:
        self._lock.release()


DEFAULT_GATE: Gate = FifoGate()  # one per process: dual levels are process-global


class Run:
    """One computation's execution state. Create one per call; pass it to explain(run=...).

    cancel: set it (from any thread) to stop the computation before its next chunk.
    on_progress: called after each chunk with a Progress (from the computing thread).
    gate: where chunks wait for their turn (default: the process-wide first-come gate).
    """

    def __init__(
        self,
        cancel: threading.Event | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        gate: Gate | None = None,
    ) -> None:
        self.cancel = cancel or threading.Event()
        self.on_progress = on_progress
        self.gate = gate or DEFAULT_GATE
        self.started = time.perf_counter()
        self.done = 0
        self.planned = 0

    @property
    def remaining(self) -> int:
        return max(self.planned - self.done, 0)

    def progress(self) -> Progress:
        return Progress(self.done, self.planned, time.perf_counter() - self.started)

    def plan(self, units: int) -> None:
        """Announce `units` more units of work."""
        self.planned += units

    def check(self) -> None:
        """Raise Cancelled when the caller asked to stop."""
        if self.cancel.is_set():
            raise Cancelled("The computation was cancelled.")

    @contextmanager
    def unit(self, units: int) -> Iterator[None]:
        """Run a chunk of `units` units: cancellation check, the gate, then progress."""
        self.check()
        self.gate.enter(self)
        try:
            self.check()  # it may have been cancelled while waiting
            yield
        finally:
            self.gate.leave(self)
        self.done += units
        if self.on_progress is not None:
            self.on_progress(self.progress())
