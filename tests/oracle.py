"""The exact oracle: one backward pass per embedding dimension (the reference implementation's
approach). Slow; used by the tests and as the benchmark baseline (benchmarks put tests/ on the path).
"""

from __future__ import annotations

import numpy as np
import torch

from attribution.core.jacobian import Tail


def per_dimension_integrated_jacobian(
    tail: Tail, h: torch.Tensor, r: torch.Tensor, nodes: np.ndarray, weights: np.ndarray
) -> torch.Tensor:
    """E (D, S) by D separate `torch.autograd.grad` calls over all nodes at once."""
    delta = h - r
    alphas = torch.as_tensor(nodes, dtype=h.dtype)
    w = torch.as_tensor(weights, dtype=h.dtype)
    with torch.enable_grad():
        points = (r + alphas[:, None, None] * delta).detach().requires_grad_(True)  # (N, S, H)
        out = tail(points)  # (N, D)
        rows = []
        for d in range(out.shape[1]):
            (grad,) = torch.autograd.grad(out[:, d].sum(), points, retain_graph=d + 1 < out.shape[1])
            rows.append(torch.einsum("n,nsk,sk->s", w, grad, delta))
    return torch.stack(rows).detach()
