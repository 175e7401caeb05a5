"""Integrated Jacobians of the embedding with respect to the hidden states at one layer.

For one text, with h, r of shape (S, H) (hidden states of the text and of the reference at the
input of layer L) and f the pooled embedding computed from there on (`LoadedModel.tail`):

    E[d, i] = sum_k (h - r)[i, k] * integral_0^1 d f_d / d h[i, k] (r + a (h - r)) da.

Column E[:, i] at one node a is a Jacobian-vector product of f with the tangent (h - r) kept
on row i only, so forward mode needs S JVPs per node (batched with vmap, primal shared);
reverse mode needs D vector-Jacobian products and is used where S > D.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.func import jvp, vjp, vmap

from .execution import Run

Tail = Callable[[torch.Tensor], torch.Tensor]


def node_contributions(
    tail: Tail,
    h: torch.Tensor,
    r: torch.Tensor,
    nodes: np.ndarray,
    *,
    direction: str,
    budget_bytes: int,
    bytes_per_sequence: int,
    run: Run,
) -> torch.Tensor:
    """J_f(r + a_n (h - r)) applied to (h - r) row by row, shape (N, D, S), one slice per node.

    Weighting these slices with quadrature weights and summing over n gives E. Each chunk of
    tangent passes runs inside `run.unit` (cancellation, the differentiation gate, progress):
    S units per node forward, D per node in reverse.
    """
    delta = h - r
    alphas = torch.as_tensor(nodes, dtype=h.dtype, device=h.device)
    if direction == "forward":
        return _forward(tail, r, delta, alphas, budget_bytes, bytes_per_sequence, run)
    return _reverse(tail, r, delta, alphas, budget_bytes, bytes_per_sequence, run)


def _forward(
    tail: Tail, r: torch.Tensor, delta: torch.Tensor, alphas: torch.Tensor, budget: int, per_seq: int, run: Run
) -> torch.Tensor:
    seq_len = delta.shape[0]
    # A chunk holds n_nodes primal sequences and n_nodes * n_tokens tangent sequences.
    capacity = max(1, budget // max(1, per_seq))
    n_tokens = max(1, min(seq_len, capacity))
    n_nodes = max(1, min(len(alphas), capacity // n_tokens))
    blocks = []
    with torch.no_grad():
        for n0 in range(0, len(alphas), n_nodes):
            a = alphas[n0 : n0 + n_nodes]
            points = r + a[:, None, None] * delta  # (n, S, H)
            columns = []
            for t0 in range(0, seq_len, n_tokens):
                idx = torch.arange(t0, min(seq_len, t0 + n_tokens), device=delta.device)
                tangents = torch.zeros(len(idx), len(a), *delta.shape, dtype=delta.dtype, device=delta.device)
                tangents[torch.arange(len(idx), device=delta.device), :, idx] = delta[idx][:, None, :]
                with run.unit(len(idx) * len(a)):
                    out = vmap(lambda t, p=points: jvp(tail, (p,), (t,))[1])(tangents)  # (t, n, D)
                columns.append(out.permute(1, 2, 0))  # (n, D, t)
            blocks.append(torch.cat(columns, dim=2))
    return torch.cat(blocks, dim=0)


def _reverse(
    tail: Tail, r: torch.Tensor, delta: torch.Tensor, alphas: torch.Tensor, budget: int, per_seq: int, run: Run
) -> torch.Tensor:
    blocks = []
    # Reverse mode keeps every layer's activations of the primal batch; cotangents batch over D.
    n_nodes = max(1, min(len(alphas), budget // max(1, 4 * per_seq)))
    with torch.enable_grad():
        for n0 in range(0, len(alphas), n_nodes):
            a = alphas[n0 : n0 + n_nodes]
            points = r + a[:, None, None] * delta
            with run.unit(0):
                out, pullback = vjp(tail, points)[:2]  # out (n, D)
            dim = out.shape[1]
            n_dims = max(1, min(dim, budget // max(1, per_seq * len(a))))
            rows = []
            for d0 in range(0, dim, n_dims):
                d_idx = torch.arange(d0, min(dim, d0 + n_dims), device=out.device)
                cot = torch.zeros(len(d_idx), *out.shape, dtype=out.dtype, device=out.device)
                cot[torch.arange(len(d_idx), device=out.device), :, d_idx] = 1.0
                with run.unit(len(d_idx) * len(a)):
                    grads = vmap(pullback)(cot)[0]  # (d, n, S, H)
                rows.append((grads * delta).sum(-1).permute(1, 0, 2).detach())  # (n, d, S)
            blocks.append(torch.cat(rows, dim=1))
    return torch.cat(blocks, dim=0)


def path_derivative(
    tail: Tail,
    h: torch.Tensor,
    r: torch.Tensor,
    nodes: np.ndarray,
    *,
    budget_bytes: int,
    bytes_per_sequence: int,
    run: Run,
) -> torch.Tensor:
    """d f(r + a (h - r)) / da = J_f (h - r) at each node, shape (N, D): one full-direction JVP per node.

    The column sums of a node's slice, for 1/S of its tangent passes (`run.unit`: one unit per node).
    """
    delta = h - r
    alphas = torch.as_tensor(nodes, dtype=h.dtype, device=h.device)
    per_call = max(1, budget_bytes // max(1, bytes_per_sequence))
    out = []
    with torch.no_grad():
        for n0 in range(0, len(alphas), per_call):
            a = alphas[n0 : n0 + per_call]
            with run.unit(len(a)):
                out.append(jvp(tail, (r + a[:, None, None] * delta,), (delta.expand(len(a), -1, -1),))[1])
    return torch.cat(out, dim=0)


def integrated_jacobian(node_slices: torch.Tensor, weights: np.ndarray) -> torch.Tensor:
    """E = sum_n w_n * slice_n: (N, D, S) and (N,) -> (D, S)."""
    w = torch.as_tensor(weights, dtype=node_slices.dtype, device=node_slices.device)
    return torch.einsum("n,nds->ds", w, node_slices)
