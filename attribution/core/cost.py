"""How long a request will take on this server: its work units (core.work) times a measured rate.

A server measures its own rate from the maps it has computed (work units per second of
compute, model loading excluded) and uses the fastest of recent ones per model: a small map's
time is mostly fixed overhead (11 tokens: about 700 units/s on all-MiniLM-L6-v2; 60 tokens:
about 10,000 units/s, measured on this 2-core machine), and the maps worth warning about are
large, where the rate of the larger maps applies. Pure: numbers
in, numbers and sentences out; the page says them beside the layer menu and the Explain button.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .work import WorkEstimate, node_work


@dataclass(frozen=True)
class CostEstimate:
    """Seconds a request should take here: `seconds` for its nodes (N, or the first round of
    steps="auto"), `most_seconds` at its step cap (auto may refine up to it; = seconds for a fixed N)."""

    seconds: float
    most_seconds: float
    units: int
    auto: bool

    def describe(self) -> str:
        """'about 2 min on this server' (auto: 'about 3 s on this server, up to 1 min if it refines')."""
        text = f"{duration_words(self.seconds)} on this server"
        if self.auto and self.most_seconds > 1.5 * self.seconds and duration_words(self.most_seconds) != text:
            text += f", up to {duration_words(self.most_seconds).removeprefix('about ')} if it refines"
        return text


def result_units(tokens: tuple[int, int], num_layers: int, layer: int, embedding_dim: int, steps: int) -> int:
    """Work units a finished result took: nodes x node_work of its texts from its layer up."""
    return node_work(tokens, max(num_layers - layer, 1), embedding_dim) * max(steps, 1)


def measured_rate(samples: Sequence[tuple[int, float]]) -> float | None:
    """The fastest work units per second among (units, seconds) samples (None without a usable one)."""
    rates = [units / seconds for units, seconds in samples if seconds > 0 and units > 0 and math.isfinite(seconds)]
    return max(rates) if rates else None


def estimate_cost(estimate: WorkEstimate, rate: float, auto: bool) -> CostEstimate:
    """Seconds for `estimate` at `rate` work units per second."""
    rate = max(rate, 1e-9)
    most = estimate.per_node * max(estimate.step_cap, estimate.nodes) if auto else estimate.units
    return CostEstimate(estimate.units / rate, most / rate, estimate.units, auto)


def duration_words(seconds: float) -> str:
    """'under a second', 'about 8 s', 'about 2 min', 'about 1.5 h'."""
    if not math.isfinite(seconds):
        return "unknown"
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"about {seconds:.0f} s"
    if seconds < 90 * 60:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"
