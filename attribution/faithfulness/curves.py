"""Deletion and insertion curves of one pair: the score as units are removed in a given order.

An order is a sequence of growing sets of units S_0 = {} < S_1 < ... < S_m = every unit of both texts.
Deletion: the score with S_k removed; insertion: the score with everything but S_k removed (starting from
both texts fully removed, which under "mask" is the pair of reference inputs). x = |S_k| / (units of both
texts).

Orders:
- by a method, order "unit": units by their attribution (row / column total), most positive first;
- by a method, order "pair": the matrix's cells (unit x unit) most positive first, each step removing the
  A unit and the B unit behind the next cell that still holds one not yet removed (both at once);
- random: the units (or cells) shuffled, `draws` seeded draws; its curve is the draws' mean score at each
  x = k / n (draws interpolated there in pair order), its area the mean of the draws' areas.

Area: trapezoid rule over x in [0, 1], in score units. `between` is the area gained over random order:
random - method for deletion (a faithful order deletes score faster), method - random for insertion.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np

from ..core.options import ExplainOptions, Limits, RunOptions
from ..errors import InputError
from ..models import LoadedModel
from ..result import Attribution
from .methods import method_label
from .scoring import DEFAULT_CHUNK, Op, check_op
from .units import PreparedPair, Unit, prepare, unit_attributions, unit_matrix

Order = Literal["unit", "pair"]
ORDERS: tuple[Order, ...] = get_args(Order)
Kind = Literal["deletion", "insertion"]
RANDOM = "random"
DEFAULT_DRAWS = 5


def check_order(order: object) -> Order:
    if order not in ORDERS:
        raise InputError(f"Unknown order {order!r}: choose 'unit' (by row and column totals) or 'pair' (by cells).")
    return order


def check_draws(draws: object) -> int:
    if isinstance(draws, bool) or not isinstance(draws, int) or not 1 <= draws <= 100:
        raise InputError(f"draws must be a whole number of random orders from 1 to 100 (got {draws!r}).")
    return draws


def area(fractions: np.ndarray, scores: np.ndarray) -> float:
    """Trapezoid area under score(x), x from 0 to 1."""
    x, y = np.asarray(fractions, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    return float(((y[1:] + y[:-1]) * np.diff(x)).sum() / 2) if len(x) > 1 else 0.0


@dataclass(frozen=True)
class Curve:
    """One curve: `method` (a method name or "random"), `kind`, the score at each fraction removed (deletion)
    or inserted (insertion), and its area. Random: `spread` is the draws' standard deviation per point."""

    method: str
    kind: Kind
    fractions: np.ndarray
    scores: np.ndarray
    area: float
    steps: list[list[str]] = field(default_factory=list)  # labels of the units each step takes ("a:guitar")
    spread: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "method_label": "random order" if self.method == RANDOM else method_label(self.method),
            "kind": self.kind,
            "fractions": [float(x) for x in self.fractions],
            "scores": [float(y) for y in self.scores],
            "area": self.area,
            "steps": self.steps,
            "spread": None if self.spread is None else [float(s) for s in self.spread],
        }


@dataclass(frozen=True)
class Curves:
    """Deletion and insertion curves of one pair for each method and for random order."""

    op: Op
    level: str
    order: Order
    score: float  # unedited
    empty_score: float  # every unit of both texts removed
    curves: list[Curve]
    draws: int
    seed: int
    forwards: int
    seconds: float

    def curve(self, method: str, kind: Kind) -> Curve:
        for c in self.curves:
            if c.method == method and c.kind == kind:
                return c
        raise KeyError((method, kind))

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(c.method for c in self.curves if c.method != RANDOM))

    def between(self, method: str, kind: Kind = "deletion", baseline: str = RANDOM) -> float:
        """Area gained over `baseline`'s order: positive when `method`'s order removes (inserts) score faster."""
        gap = self.curve(baseline, kind).area - self.curve(method, kind).area
        return gap if kind == "deletion" else -gap

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "level": self.level,
            "order": self.order,
            "score": self.score,
            "empty_score": self.empty_score,
            "draws": self.draws,
            "seed": self.seed,
            "forwards": self.forwards,
            "seconds": self.seconds,
            "curves": [c.to_dict() for c in self.curves],
            "between": {f"{m}/{kind}": self.between(m, kind) for m in self.methods for kind in get_args(Kind)},
        }


def unit_order(values: np.ndarray) -> list[int]:
    """Unit indices, most positive value first (ties in text order, A before B)."""
    return [int(k) for k in np.argsort(-np.asarray(values, dtype=np.float64), kind="stable")]


def steps_by_units(order: Sequence[int]) -> list[list[int]]:
    """One step per unit: [[u0], [u1], ...]."""
    return [[int(u)] for u in order]


def steps_by_cells(cells: Sequence[tuple[int, int]], n_a: int) -> list[list[int]]:
    """Steps of the pair order: per cell (i of A, j of B), the units (i and n_a + j) not yet removed; cells
    that remove nothing new make no step."""
    taken: set[int] = set()
    steps = []
    for i, j in cells:
        new = [u for u in (i, n_a + j) if u not in taken]
        if new:
            taken.update(new)
            steps.append(new)
    return steps


def cell_order(matrix: np.ndarray) -> list[tuple[int, int]]:
    """Cells of a (n_a, n_b) unit matrix, most positive first (ties row-major)."""
    flat = np.argsort(-np.asarray(matrix, dtype=np.float64).ravel(), kind="stable")
    n_b = matrix.shape[1]
    return [(int(k) // n_b, int(k) % n_b) for k in flat]


def _removals(units: list[Unit], sets: Sequence[set[int]]) -> list[tuple[list[int], list[int]]]:
    out = []
    for chosen in sets:
        a = sorted(p for u in chosen for p in units[u].positions if units[u].side == "a")
        b = sorted(p for u in chosen for p in units[u].positions if units[u].side == "b")
        out.append((a, b))
    return out


def curve_scores(pair: PreparedPair, steps: list[list[int]], op: Op) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fractions, deletion scores, insertion scores) of one order given as steps of unit indices."""
    units = pair.units
    everything = set(range(len(units)))
    taken: set[int] = set()
    sets: list[set[int]] = [set()]
    for step in steps:
        taken = taken | set(step)
        sets.append(taken)
    if sets[-1] != everything:
        raise ValueError("an order must end with every unit removed")
    removed = _removals(units, sets)
    kept_out = _removals(units, [everything - s for s in sets])
    scores = pair.scorer.scores(removed + kept_out, op)
    fractions = np.array([len(s) for s in sets], dtype=np.float64) / max(len(units), 1)
    return fractions, scores[: len(sets)], scores[len(sets) :]


def method_steps(pair: PreparedPair, matrix: np.ndarray, order: Order) -> list[list[int]]:
    if order == "unit":
        return steps_by_units(unit_order(unit_attributions(matrix, pair.units_a, pair.units_b)))
    return steps_by_cells(cell_order(unit_matrix(matrix, pair.units_a, pair.units_b)), len(pair.units_a))


def random_steps(pair: PreparedPair, order: Order, rng: np.random.Generator) -> list[list[int]]:
    n_a, n_b = len(pair.units_a), len(pair.units_b)
    if order == "unit":
        return steps_by_units(rng.permutation(n_a + n_b).tolist())
    cells = [(int(k) // n_b, int(k) % n_b) for k in rng.permutation(n_a * n_b)]
    return steps_by_cells(cells, n_a)


def curves_prepared(
    pair: PreparedPair,
    matrices: Mapping[str, np.ndarray],
    *,
    op: str = "mask",
    order: str = "unit",
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
) -> Curves:
    """Deletion and insertion curves for each method's matrix (token level, the result's shape) and random."""
    edit, kind_order, n_draws = check_op(op), check_order(order), check_draws(draws)
    if not pair.units_a or not pair.units_b:
        raise InputError("Both texts need at least one token that is not special to draw curves.")
    started, forwards = time.perf_counter(), pair.scorer.forwards
    units = pair.units
    labels = [f"{u.side}:{u.label}" for u in units]
    curves: list[Curve] = []
    for method, matrix in matrices.items():
        steps = method_steps(pair, np.asarray(matrix, dtype=np.float64), kind_order)
        fractions, deletion, insertion = curve_scores(pair, steps, edit)
        named = [[labels[u] for u in step] for step in steps]
        curves.append(Curve(method, "deletion", fractions, deletion, area(fractions, deletion), named))
        curves.append(Curve(method, "insertion", fractions, insertion, area(fractions, insertion), named))
    rng = np.random.default_rng(seed)
    grid = np.arange(len(units) + 1, dtype=np.float64) / len(units)
    drawn: dict[str, list[np.ndarray]] = {"deletion": [], "insertion": []}
    areas: dict[str, list[float]] = {"deletion": [], "insertion": []}
    for _ in range(n_draws):
        fractions, deletion, insertion = curve_scores(pair, random_steps(pair, kind_order, rng), edit)
        for kind, scores in (("deletion", deletion), ("insertion", insertion)):
            drawn[kind].append(np.interp(grid, fractions, scores))
            areas[kind].append(area(fractions, scores))
    for kind in ("deletion", "insertion"):
        stacked = np.stack(drawn[kind])
        curves.append(
            Curve(RANDOM, kind, grid, stacked.mean(axis=0), float(np.mean(areas[kind])), [], stacked.std(axis=0))  # type: ignore[arg-type]
        )
    first = curves[0]
    return Curves(
        op=edit,
        level=pair.level,
        order=kind_order,
        score=float(first.scores[0]),
        empty_score=float(first.scores[-1]),
        curves=curves,
        draws=n_draws,
        seed=seed,
        forwards=pair.scorer.forwards - forwards,
        seconds=time.perf_counter() - started,
    )


def deletion_curves(
    model: LoadedModel | str,
    results: Attribution | Mapping[str, Attribution],
    options: ExplainOptions | RunOptions | None = None,
    *,
    op: str = "mask",
    level: str = "token",
    order: str = "unit",
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    chunk: int = DEFAULT_CHUNK,
    limits: Limits | None = None,
    **option_values: object,
) -> Curves:
    """Deletion and insertion curves of one pair for each result (by method name: {"integrated-jacobians": r1,
    "hessian-x-input": r2}; a bare Attribution counts as integrated Jacobians) and for `draws` random orders.

    The results must be of the same texts, explained with `options` (prompt, device) on `model`.
    """
    given = {"integrated-jacobians": results} if isinstance(results, Attribution) else dict(results)
    if not given:
        raise InputError("Give at least one result to draw curves for.")
    first = next(iter(given.values()))
    for name, result in given.items():
        if (
            not isinstance(result, Attribution)
            or result.a.tokens != first.a.tokens
            or result.b.tokens != first.b.tokens
        ):
            raise InputError(f"The result for {name!r} is not of the same pair of texts as the others.")
    pair = prepare(model, first, options, level=level, chunk=chunk, limits=limits, **option_values)
    return curves_prepared(
        pair, {name: r.matrix for name, r in given.items()}, op=op, order=order, draws=draws, seed=seed
    )
