"""Read-only views of an Attribution: words, strongest pairs, POS summary, coverage.

All are pure functions of an `Attribution` (also exposed as its methods). Values are in the
units of the score (cosine or dot product); shares are fractions of `attribution_sum`.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .errors import InputError, ModelError
from .result import Attribution

SPECIAL_POS = "SPECIAL"
# Universal POS tags in UD order; labels outside it are appended alphabetically.
UPOS_ORDER = (
    "ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN",
    "PUNCT", "SCONJ", "SYM", "VERB", "X", "SPACE", SPECIAL_POS,
)  # fmt: skip


# ----------------------------------------------------------------------------- words


def to_words(result: Attribution, keep_special: bool = False) -> Attribution:
    """Word-level Attribution: cell (u, v) sums the token cells of words u of A and v of B.

    Rows/columns are the words that have at least one token, in text order (a truncated
    text's untokenized tail has none); `tokens_a/b` are the word texts, `pos_a/b` their UPOS,
    `offsets_a/b` their character spans, `word_index_a/b` their index into `words_a/b`.
    keep_special=True keeps each special token as its own row/column (POS "SPECIAL"), so
    matrix.sum() == attribution_sum. keep_special=False drops them and
    `special_share` = (their cells' sum) / attribution_sum, so
    matrix.sum() + special_share * attribution_sum == attribution_sum (attribution_sum is
    unchanged: it stays the full token-level sum).
    An unannotated result is annotated first; without a spaCy model the words are the
    whitespace-separated chunks of the text and the POS fields stay None.
    """
    if result.level == "word":
        return _drop_special_words(result) if not keep_special else result
    if result.word_index_a is None or result.word_index_b is None:
        from .linguistics import annotate

        result = annotate(result)
        if result.word_index_a is None or result.word_index_b is None:
            raise InputError(f"Cannot group tokens into words. {result.pos_note or ''}".strip())
    rows = _word_groups(result.word_index_a, result.special_a, keep_special)
    cols = _word_groups(result.word_index_b, result.special_b, keep_special)
    matrix = np.asarray(result.matrix, dtype=np.float64)
    group_a = _indicator(rows, matrix.shape[0])
    group_b = _indicator(cols, matrix.shape[1])
    word_matrix = group_a @ matrix @ group_b.T
    kept = group_a.sum(axis=0).astype(bool), group_b.sum(axis=0).astype(bool)
    dropped = float(matrix.sum() - matrix[np.ix_(kept[0], kept[1])].sum())
    side_a = _word_side(result, "a", rows)
    side_b = _word_side(result, "b", cols)
    return result.replace(
        matrix=word_matrix,
        level="word",
        special_share=0.0 if keep_special else _ratio(dropped, result.attribution_sum),
        **side_a,
        **side_b,
    )


def _word_groups(word_index: Sequence[int], special: Sequence[bool], keep_special: bool) -> list[list[int]]:
    """Token positions of each output row: one group per word (-1 special tokens apart), text order."""
    groups: dict[tuple[bool, int], list[int]] = {}
    for t, (w, is_special) in enumerate(zip(word_index, special, strict=True)):
        if is_special or w < 0:
            if keep_special:
                groups[(True, t)] = [t]
        else:
            groups.setdefault((False, w), []).append(t)
    return sorted(groups.values(), key=lambda g: g[0])


def _indicator(groups: list[list[int]], n_tokens: int) -> np.ndarray:
    """(n_groups, n_tokens) 0/1 matrix: 1 where the token belongs to the group."""
    out = np.zeros((len(groups), n_tokens))
    for g, members in enumerate(groups):
        out[g, members] = 1.0
    return out


def _word_side(result: Attribution, side: str, groups: list[list[int]]) -> dict[str, Any]:
    """The per-row fields of one text at word level (`side` is "a" or "b")."""
    text: str = getattr(result, f"text_{side}")
    tokens: list[str] = getattr(result, f"tokens_{side}")
    special: list[bool] = getattr(result, f"special_{side}")
    token_words: list[int] = getattr(result, f"word_index_{side}")
    words: list[str] = getattr(result, f"words_{side}") or []
    word_pos: list[str] | None = getattr(result, f"word_pos_{side}")
    token_tags: list[str] | None = getattr(result, f"tag_{side}")
    offsets: list[tuple[int, int]] = getattr(result, f"offsets_{side}")
    spans = _word_spans(text, words)
    out_tokens, out_special, out_index, out_offsets = [], [], [], []
    out_pos: list[str] | None = [] if word_pos is not None else None
    out_tags: list[str] | None = [] if token_tags is not None else None
    for members in groups:
        first = members[0]
        w = token_words[first]
        is_special = special[first] or w < 0
        out_special.append(is_special)
        out_index.append(-1 if is_special else w)
        out_tokens.append(tokens[first] if is_special else words[w])
        if is_special:
            out_offsets.append((0, 0))
        else:
            out_offsets.append(spans[w] if spans else _union(offsets, members))
        if out_pos is not None and word_pos is not None:
            out_pos.append(SPECIAL_POS if is_special else word_pos[w])
        if out_tags is not None and token_tags is not None:
            out_tags.append(token_tags[first])
    return {
        f"tokens_{side}": out_tokens,
        f"special_{side}": out_special,
        f"word_index_{side}": out_index,
        f"offsets_{side}": out_offsets,
        f"pos_{side}": out_pos,
        f"tag_{side}": out_tags,
    }


def _word_spans(text: str, words: list[str]) -> list[tuple[int, int]]:
    """Character spans of `words`, found in order in `text`; [] if they are not all there."""
    spans: list[tuple[int, int]] = []
    position = 0
    for word in words:
        start = text.find(word, position)
        if start < 0:
            return []
        spans.append((start, start + len(word)))
        position = start + len(word)
    return spans


def _union(offsets: list[tuple[int, int]], members: list[int]) -> tuple[int, int]:
    spans = [offsets[t] for t in members if t < len(offsets)]
    return (min(s for s, _ in spans), max(e for _, e in spans)) if spans else (0, 0)


def _drop_special_words(result: Attribution) -> Attribution:
    """A word-level result without its special rows/columns (their sum joins special_share)."""
    keep_a = np.array([not s for s in result.special_a], dtype=bool)
    keep_b = np.array([not s for s in result.special_b], dtype=bool)
    if keep_a.all() and keep_b.all():
        return result
    matrix = np.asarray(result.matrix, dtype=np.float64)
    dropped = float(matrix.sum() - matrix[np.ix_(keep_a, keep_b)].sum())
    previous = (result.special_share or 0.0) * result.attribution_sum

    def pick(values: list[Any] | None, keep: np.ndarray) -> list[Any] | None:
        return None if values is None else [v for v, k in zip(values, keep, strict=True) if k]

    changes: dict[str, Any] = {"matrix": matrix[np.ix_(keep_a, keep_b)]}
    for side, keep in (("a", keep_a), ("b", keep_b)):
        for name in ("tokens", "special", "offsets", "pos", "tag", "word_index"):
            changes[f"{name}_{side}"] = pick(getattr(result, f"{name}_{side}"), keep)
    changes["special_share"] = _ratio(previous + dropped, result.attribution_sum)
    return result.replace(**changes)


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
        out = asdict(self)
        for key in ("value", "share", "cumulative_share"):
            out[key] = out[key] if math.isfinite(out[key]) else None
        return out


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
                token_a=result.tokens_a[i],
                token_b=result.tokens_b[j],
                pos_a=result.pos_a[i] if result.pos_a is not None else None,
                pos_b=result.pos_b[j] if result.pos_b is not None else None,
                value=float(values[rank]),
                share=_ratio(float(values[rank]), result.attribution_sum),
                cumulative_share=_ratio(float(cumulative[rank]), result.attribution_sum),
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
        def clean(values: np.ndarray) -> list[Any]:
            return [float(x) if math.isfinite(x) else None for x in np.asarray(values, dtype=float).ravel()]

        return {
            "labels_a": self.labels_a,
            "labels_b": self.labels_b,
            "matrix": [clean(row) for row in self.matrix],
            "share_a": clean(self.share_a),
            "share_b": clean(self.share_b),
            "token_share_a": clean(self.token_share_a),
            "token_share_b": clean(self.token_share_b),
            "lift_a": clean(self.lift_a),
            "lift_b": clean(self.lift_b),
            "count_a": self.count_a,
            "count_b": self.count_b,
            "attribution_sum": self.attribution_sum if math.isfinite(self.attribution_sum) else None,
            "special_share": self.special_share if math.isfinite(self.special_share) else None,
            "level": self.level,
        }


def pos_summary(result: Attribution) -> PosSummary:
    """Sum the matrix by (UPOS of row, UPOS of column); annotates a token-level result first.

    Raises ModelError (saying what to install) when no spaCy model is available.
    """
    if result.pos_a is None or result.pos_b is None:
        if result.level == "token":
            from .linguistics import annotate

            result = annotate(result)
        if result.pos_a is None or result.pos_b is None:
            raise ModelError(result.pos_note or "This result has no POS tags: compute it with pos=True.")
    labels_a, labels_b = _ordered(result.pos_a), _ordered(result.pos_b)
    group_a = np.array([[p == label for p in result.pos_a] for label in labels_a], dtype=np.float64)
    group_b = np.array([[p == label for p in result.pos_b] for label in labels_b], dtype=np.float64)
    group_a = group_a.reshape(len(labels_a), len(result.pos_a))
    group_b = group_b.reshape(len(labels_b), len(result.pos_b))
    matrix = group_a @ np.asarray(result.matrix, dtype=np.float64) @ group_b.T
    count_a, count_b = group_a.sum(axis=1), group_b.sum(axis=1)
    return PosSummary(
        labels_a=labels_a,
        labels_b=labels_b,
        matrix=matrix,
        share_a=_safe_divide(matrix.sum(axis=1), np.full(len(labels_a), result.attribution_sum)),
        share_b=_safe_divide(matrix.sum(axis=0), np.full(len(labels_b), result.attribution_sum)),
        token_share_a=count_a / max(len(result.pos_a), 1),
        token_share_b=count_b / max(len(result.pos_b), 1),
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


# ----------------------------------------------------------------------------- helpers


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole != 0 and math.isfinite(whole) else math.nan


def _safe_divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    out = np.full(a.shape, np.nan)
    np.divide(a, b, out=out, where=b != 0)
    return out
