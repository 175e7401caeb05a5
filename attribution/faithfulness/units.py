"""What a faithfulness check removes: units (tokens or words) of each text, with the map's attribution.

A unit is one token (level "token") or all tokens of one word (level "word", words as
attribution.annotate cuts them) of text A or B; special and prompt tokens are never units. The
attribution of a unit of text A is its row total of the matrix (the columns of text B summed,
special tokens included); of text B its column total. At word level the rows (columns) of the word's
tokens are summed first.

`prepare` checks a result against the model: the model must tokenize the result's texts into the
same tokens, or the positions would not match.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from ..core.engine import resolve
from ..core.options import ExplainOptions, Limits, RunOptions
from ..core.tokens import encode_text
from ..errors import InputError
from ..models import LoadedModel
from ..result import Attribution, TextSide
from ..result.linguistics import annotate_side
from ..settings import get_settings
from .scoring import DEFAULT_CHUNK, PairScorer, TextIds

Level = Literal["token", "word"]
LEVELS: tuple[Level, ...] = get_args(Level)


def check_level(level: object) -> Level:
    if level not in LEVELS:
        raise InputError(f"Unknown level {level!r}: choose 'token' or 'word'.")
    return level


@dataclass(frozen=True)
class Unit:
    """One removable unit: text `side` ("a" | "b"), its token positions, its label and its index in that text's
    list of units."""

    side: str
    positions: tuple[int, ...]
    label: str
    index: int


def text_units(side: TextSide, label: str, level: Level) -> list[Unit]:
    """The units of one token-level text side, in text order."""
    fixed = side.special_or_prompt()
    free = [i for i in range(len(side.tokens)) if not fixed[i]]
    if level == "token":
        return [Unit(label, (i,), side.tokens[i], k) for k, i in enumerate(free)]
    if side.word_index is None or side.words is None:
        side = annotate_side(side)
    assert side.word_index is not None and side.words is not None
    groups: dict[int, list[int]] = {}
    for i in free:
        groups.setdefault(side.word_index[i], []).append(i)
    units = []
    for k, (word, positions) in enumerate(sorted(groups.items(), key=lambda item: item[1][0])):
        text = side.words[word] if 0 <= word < len(side.words) else " ".join(side.tokens[i] for i in positions)
        units.append(Unit(label, tuple(positions), text, k))
    return units


def unit_matrix(matrix: np.ndarray, units_a: list[Unit], units_b: list[Unit]) -> np.ndarray:
    """The matrix summed over each unit's rows (A) and columns (B): (len(units_a), len(units_b))."""
    values = np.nan_to_num(np.asarray(matrix, dtype=np.float64))
    rows = np.stack([values[list(u.positions)].sum(axis=0) for u in units_a])
    return np.stack([rows[:, list(u.positions)].sum(axis=1) for u in units_b], axis=1)


def unit_attributions(matrix: np.ndarray, units_a: list[Unit], units_b: list[Unit]) -> np.ndarray:
    """Row totals of A's units then column totals of B's units (every column / row included), (n_a + n_b,)."""
    values = np.nan_to_num(np.asarray(matrix, dtype=np.float64))
    rows = values.sum(axis=1)
    cols = values.sum(axis=0)
    return np.array([rows[list(u.positions)].sum() for u in units_a] + [cols[list(u.positions)].sum() for u in units_b])


@dataclass
class PreparedPair:
    """A result's pair ready for edits: its units, the scorer and the unedited score."""

    result: Attribution
    units_a: list[Unit]
    units_b: list[Unit]
    scorer: PairScorer
    level: Level

    @property
    def units(self) -> list[Unit]:
        return self.units_a + self.units_b


def operator_limits(limits: Limits | None) -> Limits:
    """`limits`, or the operator's (PAIRLENS_*) as attribution.explain reads them: this package is a library
    edge like attribution.api."""
    if limits is not None:
        return limits
    return get_settings().limits


def prepare(
    model: LoadedModel | str,
    result: Attribution,
    options: ExplainOptions | RunOptions | None = None,
    *,
    level: str = "token",
    chunk: int = DEFAULT_CHUNK,
    limits: Limits | None = None,
    **option_values: object,
) -> PreparedPair:
    """Units and scorer of `result`'s pair under `model` with the options it was explained with (the prompt,
    token limit, memory budget and device matter here; mode and similarity are the result's own).
    limits: the operator's (None: PAIRLENS_*)."""
    if not isinstance(result, Attribution):
        raise InputError(f"Give an Attribution from attribution.explain, not {type(result).__name__}.")
    if result.level != "token":
        raise InputError("Faithfulness checks need a token-level result (the one explain returns, not to_words()).")
    unit_level = check_level(level)
    loaded, resolved = resolve(model, options, dict(option_values), operator_limits(limits))
    prompted = loaded.prompted(prompt=resolved.prompt)
    tokenized = {}
    for label, side in (("A", result.a), ("B", result.b)):
        tokens = encode_text(prompted, side.text, label, resolved.max_tokens)
        if tokens.tokens != side.tokens:
            raise InputError(
                f"{loaded.name} tokenizes text {label} of this result differently ({len(tokens.tokens)} tokens, the "
                f"result has {len(side.tokens)}): check it with the model and prompt it was explained with."
            )
        tokenized[label] = tokens
    units_a = text_units(result.a, "a", unit_level)
    units_b = text_units(result.b, "b", unit_level)
    scorer = PairScorer(
        prompted,
        TextIds.of(tokenized["A"]),
        TextIds.of(tokenized["B"]),
        mode=result.mode,
        similarity=result.similarity,
        chunk=chunk,
        budget_bytes=resolved.budget_bytes,
    )
    return PreparedPair(result, units_a, units_b, scorer, unit_level)
