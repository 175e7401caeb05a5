"""How the benchmarks here time one call: wall seconds and process CPU seconds (all threads) together."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wall_and_cpu(fn: Callable[[], T]) -> tuple[float, float, T]:
    """(wall seconds, process CPU seconds of all threads, fn's result) of one call of fn()."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w0, time.process_time() - c0, out
