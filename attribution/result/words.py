"""Word level: a token-level Attribution with subword cells summed per word pair (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError
from .linguistics import SPECIAL_POS
from .views import ratio

if TYPE_CHECKING:
    from .record import Attribution, TextSide


def to_words(result: Attribution, keep_special: bool = False) -> Attribution:
    """Word-level Attribution: cell (u, v) sums the token cells of words u of A and v of B.

    Rows/columns are the words that have at least one token, in text order (a truncated
    text's untokenized tail has none); each side's `tokens` are the word texts, `pos` their
    UPOS, `offsets` their character spans, `word_index` their index into `words`.
    keep_special=True keeps each special token and each prompt token as its own row/column
    (POS "SPECIAL"), so matrix.sum() == attribution_sum. keep_special=False drops them and
    `special_share` = (their cells' sum) / attribution_sum, so matrix.sum() + special_share *
    attribution_sum == attribution_sum (attribution_sum stays the full token-level sum).
    Needs the word alignment (`attribution.annotate`); without a spaCy model the words are the
    whitespace-separated chunks of the text and the POS fields stay None.
    """
    if result.level == "word":
        return result if keep_special else _drop_special_words(result)
    index_a, index_b = result.a.word_index, result.b.word_index
    if index_a is None or index_b is None:
        raise InputError(
            "This result has no word alignment: annotate it first (attribution.annotate(result)), "
            "or compute it with pos=True."
        )
    rows = _word_groups(index_a, result.a.special_or_prompt(), keep_special)
    cols = _word_groups(index_b, result.b.special_or_prompt(), keep_special)
    matrix = np.asarray(result.matrix, dtype=np.float64)
    group_a = _indicator(rows, matrix.shape[0])
    group_b = _indicator(cols, matrix.shape[1])
    word_matrix = group_a @ matrix @ group_b.T
    kept = group_a.sum(axis=0).astype(bool), group_b.sum(axis=0).astype(bool)
    dropped = float(matrix.sum() - matrix[np.ix_(kept[0], kept[1])].sum())
    return result.replace(
        matrix=word_matrix,
        level="word",
        special_share=0.0 if keep_special else ratio(dropped, result.attribution_sum),
        a=_word_side(result.a, rows),
        b=_word_side(result.b, cols),
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


def _word_side(side: TextSide, groups: list[list[int]]) -> TextSide:
    """One text's per-row fields at word level: one row per group of tokens."""
    token_words = side.word_index or []
    words = side.words or []
    spans = _word_spans(side.text, words)
    tokens, special, index, offsets, prompt = [], [], [], [], []
    pos: list[str] | None = [] if side.word_pos is not None else None
    tags: list[str] | None = [] if side.tags is not None else None
    aside = side.special_or_prompt()
    in_prompt = side.prompt if len(side.prompt) == len(side.tokens) else [False] * len(side.tokens)
    for members in groups:
        first = members[0]
        w = token_words[first]
        is_special = aside[first] or w < 0  # a special or prompt token: its own row, not a word
        special.append(is_special and not in_prompt[first])
        prompt.append(in_prompt[first])
        index.append(-1 if is_special else w)
        tokens.append(side.tokens[first] if is_special else words[w])
        if is_special:
            offsets.append((0, 0))
        else:
            offsets.append(spans[w] if spans else _union(side.offsets, members))
        if pos is not None and side.word_pos is not None:
            pos.append(SPECIAL_POS if is_special else side.word_pos[w])
        if tags is not None and side.tags is not None:
            tags.append(side.tags[first])
    return side.replace(
        tokens=tokens,
        special=special,
        word_index=index,
        offsets=offsets,
        pos=pos,
        tags=tags,
        prompt=prompt if any(prompt) else [],
    )


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
    """A word-level result without its special and prompt rows/columns (their sum joins special_share)."""
    keep_a = np.array([not s for s in result.a.special_or_prompt()], dtype=bool)
    keep_b = np.array([not s for s in result.b.special_or_prompt()], dtype=bool)
    if keep_a.all() and keep_b.all():
        return result
    matrix = np.asarray(result.matrix, dtype=np.float64)
    dropped = float(matrix.sum() - matrix[np.ix_(keep_a, keep_b)].sum())
    previous = (result.special_share or 0.0) * result.attribution_sum
    return result.replace(
        matrix=matrix[np.ix_(keep_a, keep_b)],
        a=result.a.select(keep_a.tolist()),
        b=result.b.select(keep_b.tolist()),
        special_share=ratio(previous + dropped, result.attribution_sum),
    )
