"""Adaptive, self-certifying integration for steps="auto" with the Gauss-Legendre rule.

For one text, x(a) = r + a (h - r), f(a) = tail(x(a)) (D,), the integrand at a node is the slice
phi(a) (D, S) (column i: J_f(x(a)) applied to (h - r) on row i only), and E = int_0^1 phi(a) da.

The certificate. The columns of phi sum to d f(x(a)) / da, so for an interval [a0, a1] and a rule
(x_j, w_j) on it,

    res = f(a1) - f(a0) - sum_j w_j sum_i phi(x_j)[:, i]                  (D,)

is EXACTLY that rule's error on the column sums, for two primal forwards. Over a partition of [0, 1],
sum_i E[:, i] = Delta - R (Delta = f(1) - f(0), R = sum of the residuals), and with A = E_a^T E_b / norm,
target = Delta_a . Delta_b / norm:

    sum(A) - target = -(R_a . Delta_b + Delta_a . R_b - R_a . R_b) / norm            (exact)
    |sum(A) - target| <= (|R_a| |Delta_b| + |Delta_a| |R_b| + |R_a| |R_b|) / norm    (bound)

The exact form is the completeness error every rule reports; the bound does not rely on R_a happening
to be orthogonal to Delta_b and is reported as `error_bound` (relative to |target|). The stopping test
(criterion "exact") is the completeness error within tol AND the bound within GUARD x tol: the exact
error alone can pass by a lucky cancellation (R_a nearly orthogonal to Delta_b) while the matrix is
still far off (all-mpnet-base-v2 layer 6: exact error 8e-4 at 12 nodes with a bound of 1.4, i.e. 140 %);
the guard keeps such a run going. Criterion "bound" stops on the bound alone (stricter, more nodes).

The algorithm (per text a mesh of intervals, each with G_m or its Kronrod extension K_{2m+1}):
  0. round 0: G_m0 on [0, 1] with m0 = auto_start("gauss-legendre", layer): the nodes of
     quadrature_nodes("gauss-legendre", m0) exactly, looked up in `TextPath.evaluated` first;
  1. while the test fails: every interval whose weighted residual |res| |Delta_other| / norm is at
     least `select` x the largest is refined: G_m -> K_{2m+1} (its m nodes reused, m + 1 new) when it
     looks resolved (|res| <= rough |f(a1) - f(a0)|), else bisected into two G_4 halves; the cut is a
     sharp transition inside it, found with primal-only forwards (nested 8-way scans), or is pulled
     toward a transition at an end (a graded mesh), else the midpoint;
  2. the nodes of a Kronrod extension are S-tangent slices evaluated through the engine's NodeEvaluator
     at once (cached in `TextPath.evaluated`, so progress, cancellation and the structured path apply; an
     extended interval is cut again less often). The children of a bisection are often cut again, so their
     nodes first get only d f / da (one full-direction JVP, what a slice's columns sum to: all the
     residuals need, for 1/S of a slice's tangent passes; all-mpnet-base-v2 at layer 6 measured 1/3 of a
     slice's time at S = 9, 1/12 at S = 27);
  3. when the test holds on those, the nodes of the final mesh that lack a slice get one (one call per
     text), the residuals are recomputed from the slices alone and the test is run again (refining on
     if rounding moved it): the certificate is always the slices' own. E of the final mesh sums cached
     slices: nothing is recomputed, and no slice is spent on a bisection parent that is cut again.
All new nodes of a round go in one call per text. Stops unconverged when a text's mesh would need
more than `max_nodes` slices.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import torch
from numpy.polynomial import legendre

from .quadrature import auto_start, node_key, quadrature_nodes

if TYPE_CHECKING:
    from .paths import NodeEvaluator, PairPaths, TextPath

CRITERIA = ("exact", "bound")
# criterion "exact" also asks the certified bound to be within GUARD x tolerance (see the module doc)
GUARD = 10.0
DERIVE = ("children", "all", "none")


def gauss_legendre(m: int) -> tuple[np.ndarray, np.ndarray]:
    """m-point Gauss-Legendre nodes and weights on [0, 1]: exactly quadrature_nodes' floats."""
    return quadrature_nodes("gauss-legendre", m)


@lru_cache(maxsize=64)
def gauss_kronrod(m: int) -> tuple[np.ndarray, np.ndarray]:
    """(2m+1)-point Kronrod extension of G_m on [0, 1], exact to degree 3m+1; holds G_m's nodes (same floats).

    Kronrod nodes are the zeros of the Stieltjes polynomial E_{m+1} (orthogonal to P_m x^k, k <= m),
    found in the Legendre basis; the weights solve the moment equations.
    """
    xg, _ = legendre.leggauss(m)
    xq, wq = legendre.leggauss(3 * m + 4)
    basis = np.stack([legendre.legval(xq, [0] * j + [1]) for j in range(m + 2)])  # (m+2, q)
    pm = basis[m]
    lhs = np.stack([(basis[: m + 1] * pm * xq**k * wq).sum(1) for k in range(m + 1)])
    rhs = -np.array([(basis[m + 1] * pm * xq**k * wq).sum() for k in range(m + 1)])
    coef = np.linalg.solve(lhs, rhs)
    extra = np.sort(np.real(legendre.legroots(np.append(coef, 1.0))))
    x = np.sort(np.concatenate([xg, extra]))
    vander = np.stack([legendre.legval(x, [0] * k + [1]) for k in range(len(x))])
    moments = np.zeros(len(x))
    moments[0] = 2.0
    w = np.linalg.solve(vander, moments)
    x01 = (x + 1.0) / 2.0
    for g in gauss_legendre(m)[0]:  # G_m's nodes at exactly the floats the cache holds
        x01[np.argmin(np.abs(x01 - g))] = g
    return x01, w / 2.0


@dataclass
class Interval:
    """A mesh interval, its rule (G_m or K_{2m+1}) and its exact residual vector (D,), float64."""

    lo: float
    hi: float
    m: int
    kronrod: bool
    residual: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    increment: float = 0.0  # |f(hi) - f(lo)|

    @property
    def error(self) -> float:
        return float(self.residual.norm())

    @property
    def size(self) -> int:
        return 2 * self.m + 1 if self.kronrod else self.m

    def rule(self) -> tuple[np.ndarray, np.ndarray]:
        """Absolute nodes and weights, shape (size,). [0, 1] keeps the reference rule's exact floats."""
        x, w = gauss_kronrod(self.m) if self.kronrod else gauss_legendre(self.m)
        if self.lo == 0.0 and self.hi == 1.0:
            return x, w
        return self.lo + (self.hi - self.lo) * x, (self.hi - self.lo) * w


class AdaptivePath:
    """One text's path for the adaptive rule: primal values f(a) cached here, slices in `path.evaluated`."""

    def __init__(self, path: TextPath, evaluator: NodeEvaluator, batch: int = 32) -> None:
        self.path = path
        self.evaluator = evaluator
        self.batch = batch
        # node_key(a) -> f(a), float64 (D,); f(0), f(1) are the pooled embeddings of the reference and the text
        self.values: dict[float, torch.Tensor] = {
            node_key(0.0): path.f_ref.detach().double().cpu(),
            node_key(1.0): path.f.detach().double().cpu(),
        }
        self.features: list[float] = []  # located sharp transitions
        self.n_primal = 0
        self.derivatives: dict[float, torch.Tensor] = {}  # node_key(a) -> d f / da (D,) float64, nodes without a slice
        self.slice_sums: dict[float, torch.Tensor] = {}  # node_key(a) -> column sums of the slice, float64

    @property
    def n_nodes(self) -> int:
        """S-tangent nodes evaluated for this text so far (round 0's included, whoever evaluated them)."""
        return len(self.path.evaluated)

    def column_sums(self, a: float) -> torch.Tensor:
        """d f / da at node a (D,) float64: the slice's column sums where it has a slice, else its JVP."""
        key = node_key(a)
        piece = self.path.evaluated.get(key)
        if piece is None:
            return self.derivatives[key]
        if key not in self.slice_sums:
            self.slice_sums[key] = piece.double().sum(1).cpu()
        return self.slice_sums[key]

    def derive(self, alphas: np.ndarray) -> None:
        """d f / da at the nodes that have neither a slice nor a derivative yet (one evaluator call)."""
        missing = sorted({node_key(a) for a in alphas} - self.path.evaluated.keys() - self.derivatives.keys())
        if missing:
            out = self.evaluator.derivative(self.path, np.asarray(missing)).double().cpu()
            self.derivatives.update(zip(missing, out, strict=True))

    def value(self, alphas: list[float]) -> list[torch.Tensor]:
        """f(a) (D,) float64 per a: cached, the missing ones in batched primal forwards."""
        missing = sorted({node_key(a) for a in alphas} - self.values.keys())
        h, r = self.path.h, self.path.r
        delta = h - r
        for k in range(0, len(missing), self.batch):
            self.evaluator.run.check()
            part = missing[k : k + self.batch]
            a = torch.tensor(part, dtype=h.dtype, device=h.device)
            with torch.no_grad():
                out = self.evaluator.tail(r + a[:, None, None] * delta).double().cpu()
            self.values.update(zip(part, out, strict=True))
        self.n_primal += len(missing)
        return [self.values[node_key(a)] for a in alphas]

    def residual(self, iv: Interval) -> None:
        """Fill iv.residual and iv.increment from cached slices (evaluate its nodes first)."""
        x, w = iv.rule()
        sums = torch.stack([self.column_sums(a) for a in x])  # (n, D)
        f_lo, f_hi = self.value([iv.lo, iv.hi])
        iv.residual = f_hi - f_lo - torch.as_tensor(w) @ sums
        iv.increment = float((f_hi - f_lo).norm())

    def build(self, slices: Sequence[Interval], derived: Sequence[Interval] = ()) -> None:
        """Give the new nodes of `slices` an S-tangent slice and those of `derived` d f / da (one evaluator call
        each), then fill every interval's residual."""
        specs = [*slices, *derived]
        self.value([a for iv in specs for a in (iv.lo, iv.hi)])
        if slices:
            self.evaluator.evaluate(self.path, np.concatenate([iv.rule()[0] for iv in slices]))
        if derived:
            self.derive(np.concatenate([iv.rule()[0] for iv in derived]))
        for iv in specs:
            self.residual(iv)

    def new_nodes(self, specs: list[Interval]) -> int:
        """Nodes of these intervals without an S-tangent slice."""
        return len(_node_keys(specs) - self.path.evaluated.keys())

    def new_derived(self, specs: list[Interval]) -> int:
        """Nodes of these intervals with neither a slice nor d f / da."""
        return len(_node_keys(specs) - self.path.evaluated.keys() - self.derivatives.keys())

    def integrated(self, mesh: list[Interval]) -> torch.Tensor:
        """E (D, S) of a mesh from cached slices."""
        nodes, weights = (np.concatenate(parts) for parts in zip(*(iv.rule() for iv in mesh), strict=True))
        return self.evaluator.integrated(self.path, nodes, weights)

    def locate_in(self, lo: float, hi: float, ratio: float, min_width: float, sub: int = 8) -> float | None:
        """Primal-only: a sharp transition inside [lo, hi], or None where f looks smooth.

        f at sub + 1 points (one batched forward); while the largest sub-cell increment exceeds `ratio` x the
        median, recurse into that sub-cell (down to `min_width`). Two levels or more: the last cell's centre
        (recorded in `features` for graded cuts later); fewer: a smooth hump of |f'|, None.
        """
        levels = 0
        while hi - lo > min_width:
            pts = [lo + (hi - lo) * j / sub for j in range(sub + 1)]
            fv = self.value(pts)
            inc = np.array([float((fv[i + 1] - fv[i]).norm()) for i in range(sub)])
            j = int(np.argmax(inc))
            if inc[j] <= ratio * max(float(np.median(inc)), 1e-300):
                break
            levels += 1
            lo, hi = pts[j], pts[j + 1]
        if levels < 2:
            return None
        c = 0.5 * (lo + hi)
        self.features = sorted({*self.features, c})
        return c


def _node_keys(specs: list[Interval]) -> set[float]:
    return {node_key(a) for iv in specs for a in iv.rule()[0]}


def split_point(lo: float, hi: float, features: list[float], grading: float) -> float:
    """Where to cut [lo, hi]: at an interior transition; toward a transition at (or just outside) an end,
    at fraction `grading` of the width (a geometric mesh toward it); else the midpoint."""
    width = hi - lo
    inner = [c for c in features if lo + grading * width < c < hi - grading * width]
    if inner:
        return min(inner, key=lambda c: abs(c - 0.5 * (lo + hi)))
    near_lo = [c for c in features if abs(c - lo) <= grading * width]
    near_hi = [c for c in features if abs(c - hi) <= grading * width]
    if near_lo and not near_hi:
        return lo + grading * width
    if near_hi and not near_lo:
        return hi - grading * width
    return 0.5 * (lo + hi)


def pair_error(
    r_a: torch.Tensor, r_b: torch.Tensor, d_a: torch.Tensor, d_b: torch.Tensor, norm: float
) -> tuple[float, float]:
    """(exact error of sum(A), bound on its magnitude) from residual sums R and Deltas (all (D,), float64)."""
    exact = float(-(r_a @ d_b) - (d_a @ r_b) + (r_a @ r_b)) / norm
    na, nb = float(r_a.norm()), float(r_b.norm())
    bound = (na * float(d_b.norm()) + float(d_a.norm()) * nb + na * nb) / norm
    return exact, bound


def within_tolerance(exact: float, bound: float, goal: float, criterion: str = "exact") -> bool:
    """The stopping test: "exact": |exact| <= goal and bound <= GUARD x goal; "bound": bound <= goal.

    goal = tolerance x |target|; exact and bound as `pair_error` gives them (absolute).
    """
    if criterion == "bound":
        return bound <= goal
    return abs(exact) <= goal and bound <= GUARD * goal


@dataclass
class AdaptiveResult:
    """What `integrate_adaptive` gives: both texts' E (D, S), meshes and the certificate."""

    e_a: torch.Tensor
    e_b: torch.Tensor
    mesh_a: list[Interval]
    mesh_b: list[Interval]
    target: float  # Delta_a . Delta_b / norm, Delta from the tail
    error: float  # sum(A) - target from the residuals (exact up to rounding)
    bound: float  # bound on |error|
    converged: bool
    nodes_a: int  # S-tangent nodes evaluated (round 0's discarded by bisection included)
    nodes_b: int
    derived: int  # nodes given d f / da first, both texts (full-direction JVPs; some got a slice later)
    primal: int  # primal-only points (interval ends, transition search)
    rounds: int
    history: list[tuple[int, float, float]]  # per round: (nodes per text of the mesh, |error|/|target|, bound/|target|)

    @property
    def used_a(self) -> int:
        return sum(iv.size for iv in self.mesh_a)

    @property
    def used_b(self) -> int:
        return sum(iv.size for iv in self.mesh_b)

    @property
    def relative_bound(self) -> float:
        return _relative(self.bound, self.target)


def _relative(value: float, target: float) -> float:
    if target != 0:
        return abs(value) / abs(target)
    return 0.0 if value == 0 else math.inf


def _slices_at_once(derive: str) -> Callable[[Interval], bool]:
    """Which new intervals of a refinement get S-tangent slices at once (the rest get d f / da first)."""
    if derive == "none":
        return lambda iv: True
    if derive == "children":
        return lambda iv: iv.kronrod
    return lambda iv: False


def _refined(mesh: list[Interval], plan: dict[int, list[Interval]]) -> list[Interval]:
    """The mesh with interval k replaced by plan[k] where planned."""
    return [x for k, iv in enumerate(mesh) for x in plan.get(k, [iv])]


def _residual(mesh: list[Interval]) -> torch.Tensor:
    return torch.stack([iv.residual for iv in mesh]).sum(0)


def integrate_adaptive(
    pair: PairPaths,
    layer: int,
    tol: float,
    max_nodes: int,
    *,
    criterion: str = "exact",
    child_order: int = 4,
    select: float = 0.25,
    rough: float = 0.1,
    locate: bool = True,
    scan_ratio: float = 3.0,
    scan_width: float = 1e-6,
    grading: float = 0.2,
    derive: str = "children",
) -> AdaptiveResult:
    """Refine both texts' meshes until the pair test holds, or no text may take more nodes (see module doc).

    tol: relative to |target|; max_nodes: S-tangent nodes per text (PAIRLENS_MAX_STEPS / auto_max_steps).
    select: a round refines every interval whose weighted residual is >= select x the largest; rough:
    relative residual above which an interval is bisected rather than Kronrod-extended; scan_ratio,
    scan_width: the primal transition search (sub-cell increment ratio, smallest cell); derive: which new
    nodes get d f / da first: "children" (of bisections), "all", or "none" (slices at once: the rule
    before d f / da; benchmarks/engine_v2_results.md C7 compares them).
    """
    if derive not in DERIVE:
        raise ValueError(f"derive must be one of {DERIVE}")
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}")
    paths = (AdaptivePath(pair.a, pair.evaluator), AdaptivePath(pair.b, pair.evaluator))
    ends = [p.value([0.0, 1.0]) for p in paths]
    d_a, d_b = (v[1] - v[0] for v in ends)
    norm = pair.completeness.norm
    target = float(d_a @ d_b) / norm
    weights = (float(d_b.norm()) / norm, float(d_a.norm()) / norm)  # d bound / d |R_text|
    m0 = min(auto_start("gauss-legendre", layer), max_nodes)
    start = [Interval(0.0, 1.0, m0, False) for _ in paths]
    evaluator = pair.evaluator
    evaluator.run.plan(sum(evaluator.units(p.path, p.new_nodes([iv])) for p, iv in zip(paths, start, strict=True)))
    for p, iv in zip(paths, start, strict=True):
        p.build([iv])
    meshes = [[iv] for iv in start]
    history: list[tuple[int, float, float]] = []

    def status() -> tuple[float, float, bool]:
        exact, bound = pair_error(_residual(meshes[0]), _residual(meshes[1]), d_a, d_b, norm)
        goal = tol * abs(target)
        ok = within_tolerance(exact, bound, goal, criterion)
        used = max(sum(iv.size for iv in mesh) for mesh in meshes)
        history.append((used, _relative(exact, target), _relative(bound, target)))
        return exact, bound, ok

    def plan_round() -> dict[int, dict[int, list[Interval]]]:
        """Which intervals of which text to refine, and into what (step 1 of the module doc)."""
        scored = [(iv.error * weights[t], t, k) for t in (0, 1) for k, iv in enumerate(meshes[t])]
        top = max(s for s, _, _ in scored)
        plans: dict[int, dict[int, list[Interval]]] = {0: {}, 1: {}}
        for s, t, k in sorted(scored, reverse=True):
            if s <= 0 or s < select * top:
                break
            path, iv = paths[t], meshes[t][k]
            inside = any(iv.lo < c < iv.hi for c in path.features)
            if not iv.kronrod and not inside and iv.error <= rough * max(iv.increment, 1e-30):
                spec = [Interval(iv.lo, iv.hi, iv.m, True)]
            else:
                if locate and not any(iv.lo <= c <= iv.hi for c in path.features):
                    path.locate_in(iv.lo, iv.hi, scan_ratio, scan_width)
                mid = split_point(iv.lo, iv.hi, path.features, grading)
                spec = [Interval(iv.lo, mid, child_order, False), Interval(mid, iv.hi, child_order, False)]
            if path.n_nodes + path.new_nodes(_refined(meshes[t], {**plans[t], k: spec})) > max_nodes:
                continue  # this text's cap (slices so far + those its mesh would still need): refine what fits
            plans[t][k] = spec
        return plans

    now = _slices_at_once(derive)
    rounds = 0
    exact, bound, ok = status()
    while True:
        while not ok:
            plans = plan_round()
            if not plans[0] and not plans[1]:
                break
            rounds += 1
            new = [[x for specs in plans[t].values() for x in specs] for t in (0, 1)]
            evaluator.run.plan(
                sum(
                    evaluator.units(p.path, p.new_nodes([x for x in specs if now(x)]))
                    + p.new_derived([x for x in specs if not now(x)])
                    for p, specs in zip(paths, new, strict=True)
                )
            )
            for t, (p, specs) in enumerate(zip(paths, new, strict=True)):
                p.build([x for x in specs if now(x)], [x for x in specs if not now(x)])
                meshes[t] = _refined(meshes[t], plans[t])
            exact, bound, ok = status()
        # the test holds on d f / da (or nothing more fits): slices for the mesh, certificate from them alone
        missing = [p.new_nodes(mesh) for p, mesh in zip(paths, meshes, strict=True)]
        if not any(missing):
            break
        evaluator.run.plan(sum(evaluator.units(p.path, n) for p, n in zip(paths, missing, strict=True)))
        for p, mesh in zip(paths, meshes, strict=True):
            p.build(mesh)
        exact, bound, ok = status()

    e_a, e_b = (p.integrated(mesh) for p, mesh in zip(paths, meshes, strict=True))
    return AdaptiveResult(
        e_a=e_a,
        e_b=e_b,
        mesh_a=meshes[0],
        mesh_b=meshes[1],
        target=target,
        error=exact,
        bound=bound,
        converged=ok,
        nodes_a=paths[0].n_nodes,
        nodes_b=paths[1].n_nodes,
        derived=len(paths[0].derivatives) + len(paths[1].derivatives),
        primal=paths[0].n_primal + paths[1].n_primal,
        rounds=rounds,
        history=history,
    )
