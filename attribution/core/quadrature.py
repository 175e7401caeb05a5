"""Quadrature rules on [0, 1] for the path integral of integrated Jacobians (pure NumPy)."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .options import RULES


def quadrature_nodes(rule: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes a_n in [0, 1] and weights w_n (summing to 1) of an N-point rule, both shape (N,).

    riemann-right: a_n = n/N, w_n = 1/N (the reference implementation's rule; error ~ 1/N).
    midpoint:      a_n = (n - 1/2)/N, w_n = 1/N (error ~ 1/N^2).
    gauss-legendre: Legendre roots mapped to [0, 1] (exact for polynomials of degree 2N - 1).
    """
    if rule not in RULES:
        raise InputError(f"Unknown rule '{rule}': choose one of {', '.join(RULES)}.")
    if steps < 1:
        raise InputError(f"steps must be at least 1 (got {steps}).")
    n = np.arange(1, steps + 1, dtype=np.float64)
    if rule == "riemann-right":
        return n / steps, np.full(steps, 1.0 / steps)
    if rule == "midpoint":
        return (n - 0.5) / steps, np.full(steps, 1.0 / steps)
    roots, weights = np.polynomial.legendre.leggauss(steps)
    return (roots + 1.0) / 2.0, weights / 2.0


def auto_start(rule: str, layer: int) -> int:
    """First node count steps="auto" tries.

    Nested rules (midpoint, riemann-right) reuse every earlier node, so a small start costs
    them nothing. Gauss-Legendre reuses none, so its start is the smallest N that meets the
    default tolerance for nearly every pair (MiniLM on STS-B, benchmarks/corpus_results.md):
    8 from the first layer up (198 of 200 pairs at the last layer's input), 32 at the
    embedding output, where the median error at N = 16 is still 1e-2 (smaller rounds
    almost never stop there).
    """
    if rule == "gauss-legendre":
        return 32 if layer == 0 else 8
    return 3 if rule == "midpoint" else 4


def auto_schedule(rule: str, max_steps: int, layer: int) -> list[int]:
    """Node counts tried by steps="auto", chosen so nested rules reuse earlier nodes.

    riemann-right nests under doubling, midpoint under tripling; Gauss-Legendre never nests,
    so it doubles (the work of all rounds is then below twice that of the last).
    """
    factor = 3 if rule == "midpoint" else 2
    first = min(auto_start(rule, layer), max_steps)
    schedule = []
    n = first
    while n < max_steps:
        schedule.append(n)
        n *= factor
    return [*schedule, max_steps]


def node_key(a: float) -> float:
    """Key under which a node's evaluation is cached (so nested rules find earlier nodes)."""
    return round(float(a), 12)
