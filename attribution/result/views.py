"""Read-only views of an Attribution: strongest pairs, POS summary, coverage, special (and prompt) rows hidden.

All are pure functions of an `Attribution` (also exposed as its methods): none annotates,
loads a tagger or computes. Values are in the units of the score (cosine or dot product);
shares are fractions of `attribution_sum`.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError, ModelError
from ..jsonable import json_ready
from .linguistics import UPOS_ORDER

if TYPE_CHECKING:
    from .record import Attribution

# ----------------------------------------------------------------------------- top pairs


@dataclass(frozen=True)
class TopPair:
    """One cell of the matrix: row i (text A) x column j (text B).

    value is in score units; share = value / attribution_sum; cumulative_share is the sum of
    the shares of this pair and all stronger ones.
    """

    i: int
    j: int
    token_a: str
    token_b: str
    pos_a: str | None
    pos_b: str | None
    value: float
    share: float
    cumulative_share: float

    def to_dict(self) -> dict[str, Any]:
        return dict(json_ready(asdict(self)))


def strength_order(matrix: np.ndarray) -> np.ndarray:
    """Flat cell indices by descending |value|, ties by (i, j); NaN cells last."""
    flat = np.asarray(matrix, dtype=np.float64).ravel()
    strength = np.where(np.isnan(flat), -np.inf, np.abs(flat))
    return np.lexsort((np.arange(flat.size), -strength))


def top_pairs(result: Attribution, k: int) -> list[TopPair]:
    """The k cells with the largest |value| (all cells if fewer), strongest first."""
    if k < 0:
        raise InputError(f"top k must be 0 or more, not {k}.")
    matrix = np.asarray(result.matrix, dtype=np.float64)
    order = strength_order(matrix)[:k]
    n_cols = matrix.shape[1]
    values = matrix.ravel()[order]
    cumulative = np.cumsum(values)
    pairs = []
    for rank, flat in enumerate(order):
        i, j = divmod(int(flat), n_cols)
        pairs.append(
            TopPair(
                i=i,
                j=j,
                token_a=result.a.tokens[i],
                token_b=result.b.tokens[j],
                pos_a=result.a.pos[i] if result.a.pos is not None else None,
                pos_b=result.b.pos[j] if result.b.pos is not None else None,
                value=float(values[rank]),
                share=ratio(float(values[rank]), result.attribution_sum),
                cumulative_share=ratio(float(cumulative[rank]), result.attribution_sum),
            )
        )
    return pairs


# ----------------------------------------------------------------------------- POS summary


@dataclass(frozen=True)
class PosSummary:
    """Attributions summed by part of speech.

    matrix[p, q]: sum of the cells whose row has UPOS labels_a[p] and column labels_b[q]
    (score units), shape (len(labels_a), len(labels_b)). share_a[p]: that row sum divided by
    attribution_sum; token_share_a[p]: fraction of the rows of A with that UPOS. A POS
    "carries more than its share" when lift_a[p] = share_a[p] / token_share_a[p] > 1.
    matrix.sum() + special_share * attribution_sum == attribution_sum (special_share is 0
    unless special tokens were dropped by to_words()).
    """

    labels_a: list[str]
    labels_b: list[str]
    matrix: np.ndarray
    share_a: np.ndarray
    share_b: np.ndarray
    token_share_a: np.ndarray
    token_share_b: np.ndarray
    count_a: list[int]  # rows of A per label
    count_b: list[int]
    attribution_sum: float
    special_share: float
    level: str  # "token" or "word": what the rows and columns are

    @property
    def total(self) -> float:
        return float(self.matrix.sum())

    @property
    def lift_a(self) -> np.ndarray:
        return _safe_divide(self.share_a, self.token_share_a)

    @property
    def lift_b(self) -> np.ndarray:
        return _safe_divide(self.share_b, self.token_share_b)

    def to_frame(self) -> Any:
        """The POS x POS matrix as a pandas DataFrame (rows: text A, columns: text B)."""
        pandas = importlib.import_module("pandas")
        return pandas.DataFrame(self.matrix, index=self.labels_a, columns=self.labels_b)

    def to_dict(self) -> dict[str, Any]:
        return dict(json_ready({**asdict(self), "lift_a": self.lift_a, "lift_b": self.lift_b}))


def pos_summary(result: Attribution) -> PosSummary:
    """Sum the matrix by (UPOS of row, UPOS of column).

    Needs POS tags (`attribution.annotate`, or explain(..., pos=True)): ModelError with what to
    install when the result was annotated without a tagger, InputError when not annotated.
    """
    pos_a, pos_b = result.a.pos, result.b.pos
    if pos_a is None or pos_b is None:
        if result.pos_note:
            raise ModelError(result.pos_note)
        raise InputError("This result has no POS tags: annotate it first (attribution.annotate(result)).")
    labels_a, labels_b = _ordered(pos_a), _ordered(pos_b)
    group_a = np.array([[p == label for p in pos_a] for label in labels_a], dtype=np.float64)
    group_b = np.array([[p == label for p in pos_b] for label in labels_b], dtype=np.float64)
    group_a = group_a.reshape(len(labels_a), len(pos_a))
    group_b = group_b.reshape(len(labels_b), len(pos_b))
    matrix = group_a @ np.asarray(result.matrix, dtype=np.float64) @ group_b.T
    count_a, count_b = group_a.sum(axis=1), group_b.sum(axis=1)
    return PosSummary(
        labels_a=labels_a,
        labels_b=labels_b,
        matrix=matrix,
        share_a=_safe_divide(matrix.sum(axis=1), np.full(len(labels_a), result.attribution_sum)),
        share_b=_safe_divide(matrix.sum(axis=0), np.full(len(labels_b), result.attribution_sum)),
        token_share_a=count_a / max(len(pos_a), 1),
        token_share_b=count_b / max(len(pos_b), 1),
        count_a=[int(c) for c in count_a],
        count_b=[int(c) for c in count_b],
        attribution_sum=result.attribution_sum,
        special_share=result.special_share or 0.0,
        level=result.level,
    )


def _ordered(labels: Sequence[str]) -> list[str]:
    present = set(labels)
    known = [label for label in UPOS_ORDER if label in present]
    return known + sorted(present.difference(UPOS_ORDER))


# ----------------------------------------------------------------------------- coverage


@dataclass(frozen=True)
class CoverageLevel:
    """How many of the strongest cells it takes to reach `level` of attribution_sum.

    pairs: smallest k such that the signed sum of the k cells with the largest |value|
    (order of top_pairs) reaches level * attribution_sum (>= when the sum is positive,
    <= when negative); None when no k does (or the sum is 0). fraction = pairs / cells.
    """

    level: float
    pairs: int | None
    fraction: float | None
    cells: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def coverage(result: Attribution, levels: Sequence[float] = (0.5, 0.8, 0.9)) -> list[CoverageLevel]:
    """For each level, the number (and fraction) of strongest pairs that reach it; see CoverageLevel.

    "Reaches" allows a rounding slack of 1e-12 x sum(|cells|), so level 1.0 is reached by
    all cells even though their sum is accumulated in another order than attribution_sum's.
    """
    matrix = np.asarray(result.matrix, dtype=np.float64)
    cells = int(matrix.size)
    values = matrix.ravel()[strength_order(matrix)]
    values = np.where(np.isnan(values), 0.0, values)
    total = result.attribution_sum
    sign = math.copysign(1.0, total) if math.isfinite(total) else 0.0
    reached_sum = np.cumsum(values) * sign  # in the direction of the total
    slack = 1e-12 * float(np.abs(values).sum())
    out = []
    for level in levels:
        if not math.isfinite(level) or level <= 0:
            raise InputError(f"coverage levels must be positive fractions such as 0.8, not {level}.")
        pairs: int | None = None
        if total != 0 and sign != 0 and cells:
            hit = np.flatnonzero(reached_sum >= level * abs(total) - slack)
            pairs = int(hit[0]) + 1 if hit.size else None
        out.append(CoverageLevel(float(level), pairs, pairs / cells if pairs is not None else None, cells))
    return out


# ----------------------------------------------------------------------------- special rows


def without_special_tokens(result: Attribution) -> Attribution:
    """The result without its special-token rows and columns ([CLS], [SEP], <s>, ...) and prompt tokens.

    attribution_sum is unchanged (shares stay shares of the full sum); no value is changed.
    """
    keep_a = [not s for s in result.a.special_or_prompt()]
    keep_b = [not s for s in result.b.special_or_prompt()]
    if all(keep_a) and all(keep_b):
        return result
    matrix = np.asarray(result.matrix)[np.ix_(np.array(keep_a, dtype=bool), np.array(keep_b, dtype=bool))]
    return result.replace(matrix=matrix, a=result.a.select(keep_a), b=result.b.select(keep_b))


# ----------------------------------------------------------------------------- helpers


def ratio(part: float, whole: float) -> float:
    """part / whole, NaN when whole is 0 or not finite."""
    return part / whole if whole != 0 and math.isfinite(whole) else math.nan


def _safe_divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    out = np.full(a.shape, np.nan)
    np.divide(a, b, out=out, where=b != 0)
    return out
