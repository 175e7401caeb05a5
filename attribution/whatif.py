"""What-if edits of a text pair: drop, mask or replace tokens, then compare before and after.

Edits are made on the texts, by the character span of a token, so the edited pair is an
ordinary pair: the engine explains it like any other, and it can be shared as two texts.

- drop: the token's characters are deleted (with one neighbouring space) and the text is
  tokenized again. Dropping a subword changes its word ("playing" without "ing" is "play").
- mask: the token's characters become the model's pad token ("[PAD]", "<pad>"), which the
  tokenizer reads as the pad id: at that position the model sees what the reference input has
  there, and every other token keeps its position. `mask_problem` checks this on the result.
- replace: the characters become the typed text (which may be several tokens).

`compare` puts the results before and after on one grid (rows and columns matched by token
text, in order), so the change of every cell, and of the score, can be shown.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from .errors import InputError
from .result import Attribution, TextSide

Side = Literal["a", "b"]
Op = Literal["drop", "mask", "replace"]
OPS: tuple[Op, ...] = get_args(Op)
MAX_EDITS = 20
_PARAM = re.compile(r"^(?P<side>[ab]):(?P<start>\d+)-(?P<end>\d+):(?P<op>[a-z]+)(?::(?P<rest>.*))?$", re.DOTALL)


@dataclass(frozen=True)
class Edit:
    """One edit of text `side`: characters [start, end) dropped, masked or replaced by `text`.

    tokens: how many model tokens the span covers; a mask puts that many pad tokens.
    """

    side: Side
    start: int
    end: int
    op: Op
    text: str = ""
    tokens: int = 1

    def to_param(self) -> str:
        """The URL form: 'a:10-16:drop', 'a:10-16:mask:2' (2 tokens), 'b:3-9:replace:lute'."""
        head = f"{self.side}:{self.start}-{self.end}:{self.op}"
        if self.op == "replace":
            return f"{head}:{self.text}"
        if self.op == "mask" and self.tokens != 1:
            return f"{head}:{self.tokens}"
        return head

    @classmethod
    def from_param(cls, raw: str) -> Edit:
        """The inverse of to_param; InputError for anything else."""
        match = _PARAM.match(raw)
        if match is None:
            raise InputError(f"edit={raw!r} is not side:start-end:op such as a:10-16:mask.")
        op = match["op"]
        if op not in OPS:
            raise InputError(f"edit={raw!r}: the operation must be drop, mask or replace.")
        start, end, rest = int(match["start"]), int(match["end"]), match["rest"] or ""
        tokens = 1
        if op == "mask" and rest:
            if not rest.isdigit() or not 1 <= int(rest) <= 64:
                raise InputError(f"edit={raw!r}: a mask covers 1 to 64 tokens.")
            tokens = int(rest)
        side: Side = "a" if match["side"] == "a" else "b"
        return cls(side, start, end, op, rest if op == "replace" else "", tokens)

    def describe(self, original: str, pad_token: str = "[PAD]") -> str:
        """'drop “guitar”', 'mask “guitar” → [PAD]', 'replace “guitar” → “lute”' (plain text)."""
        piece = original[self.start : self.end]
        if self.op == "drop":
            return f"text {self.side.upper()}: drop “{piece}”"
        if self.op == "mask":
            return f"text {self.side.upper()}: mask “{piece}” → {pad_token * self.tokens}"
        return f"text {self.side.upper()}: replace “{piece}” → “{self.text}”"


def token_edit(side: TextSide, label: Side, row: int, op: str, text: str = "") -> Edit:
    """An edit of token `row` of a token-level TextSide (its character span), refusing special tokens."""
    if op not in OPS:
        raise InputError(f"The operation must be drop, mask or replace, not {op!r}.")
    if not 0 <= row < len(side.tokens):
        raise InputError(f"Text {label.upper()} has no token {row}.")
    if side.special_or_prompt()[row]:
        raise InputError(f"{side.tokens[row]} is a special or prompt token: only tokens of the text can be edited.")
    if row >= len(side.offsets):
        raise InputError("This result has no character offsets, so its tokens cannot be edited.")
    start, end = side.offsets[row]
    if op == "replace" and not text.strip():
        raise InputError("Type the text that replaces the token (or choose drop).")
    return Edit(label, int(start), int(end), op, text if op == "replace" else "")


def check_edits(text_a: str, text_b: str, edits: Sequence[Edit]) -> None:
    """InputError unless every span lies in its text and no two edits of one text overlap."""
    if len(edits) > MAX_EDITS:
        raise InputError(f"At most {MAX_EDITS} edits at a time.")
    for label, text in (("a", text_a), ("b", text_b)):
        spans = sorted((e.start, e.end) for e in edits if e.side == label)
        for start, end in spans:
            if not 0 <= start < end <= len(text):
                raise InputError(f"An edit of text {label.upper()} lies outside the text ({start}-{end}).")
        for (_, end), (start, _) in itertools.pairwise(spans):
            if start < end:
                raise InputError(f"Two edits of text {label.upper()} overlap: undo one of them.")


def apply_edits(text: str, edits: Sequence[Edit], pad_token: str) -> str:
    """`text` with `edits` (all of this text) applied, right to left so spans stay valid."""
    out = text
    for edit in sorted(edits, key=lambda e: e.start, reverse=True):
        start, end = edit.start, edit.end
        if edit.op == "drop":
            if start > 0 and out[start - 1] == " " and (end == len(out) or out[end] in " .,;:!?"):
                start -= 1
            elif start == 0 and end < len(out) and out[end] == " ":
                end += 1
            out = out[:start] + out[end:]
        elif edit.op == "mask":
            out = out[:start] + pad_token * max(edit.tokens, 1) + out[end:]
        else:
            out = out[:start] + edit.text + out[end:]
    return out


def edited_pair(text_a: str, text_b: str, edits: Sequence[Edit], pad_token: str) -> tuple[str, str]:
    """Both texts with their edits applied (checked first)."""
    check_edits(text_a, text_b, edits)
    return (
        apply_edits(text_a, [e for e in edits if e.side == "a"], pad_token),
        apply_edits(text_b, [e for e in edits if e.side == "b"], pad_token),
    )


def mask_problem(before: TextSide, after: TextSide, edits: Sequence[Edit], pad_token: str) -> str | None:
    """None when the edited text holds exactly the pad tokens the masks put there, else why not."""
    masks = sum(e.tokens for e in edits if e.op == "mask")
    if not masks:
        return None
    expected = masks + before.tokens.count(pad_token)
    found = after.tokens.count(pad_token)
    if found == expected:
        return None
    return (
        f"The tokenizer did not read {pad_token} as its padding token here ({found} of {expected} found): "
        "the masked positions were explained as the typed characters. Use drop or replace instead."
    )


@dataclass(frozen=True)
class Alignment:
    """Rows (or columns) of the before/after grid: which row of each result, and what happened to it.

    status: "same", "changed" (same position, other token: mask, one-for-one replace),
    "removed" (only before) or "added" (only after).
    """

    before: list[int | None]
    after: list[int | None]
    labels: list[str]
    status: list[str]


def align_sides(before: TextSide, after: TextSide) -> Alignment:
    """Rows of two versions of a text matched in order by token text (difflib opcodes)."""
    matcher = difflib.SequenceMatcher(None, before.tokens, after.tokens, autojunk=False)
    rows_b: list[int | None] = []
    rows_a: list[int | None] = []
    labels: list[str] = []
    status: list[str] = []

    def add(i: int | None, j: int | None, label: str, state: str) -> None:
        rows_b.append(i)
        rows_a.append(j)
        labels.append(label)
        status.append(state)

    for tag, i0, i1, j0, j1 in matcher.get_opcodes():
        if tag == "equal":
            for i, j in zip(range(i0, i1), range(j0, j1), strict=True):
                add(i, j, before.tokens[i], "same")
            continue
        paired = min(i1 - i0, j1 - j0) if tag == "replace" else 0
        for k in range(paired):
            add(i0 + k, j0 + k, f"{before.tokens[i0 + k]} → {after.tokens[j0 + k]}", "changed")
        for i in range(i0 + paired, i1):
            add(i, None, before.tokens[i], "removed")
        for j in range(j0 + paired, j1):
            add(None, j, after.tokens[j], "added")
    return Alignment(rows_b, rows_a, labels, status)


@dataclass(frozen=True)
class Comparison:
    """Two results of one model, before and after edits, on one grid of aligned rows and columns.

    before/after: (rows, cols) matrices in score units, 0 where the row or column does not
    exist in that version (a dropped token contributes nothing after), so
    change.sum() == after.attribution_sum - before.attribution_sum up to rounding.
    """

    rows: Alignment
    cols: Alignment
    before: np.ndarray
    after: np.ndarray
    result_before: Attribution
    result_after: Attribution

    @property
    def change(self) -> np.ndarray:
        return self.after - self.before

    @property
    def score_change(self) -> float:
        """Change of the model's own similarity."""
        return self.result_after.own_score - self.result_before.own_score

    @property
    def sum_change(self) -> float:
        return self.result_after.attribution_sum - self.result_before.attribution_sum


def compare(before: Attribution, after: Attribution) -> Comparison:
    """Before and after on one grid (token level, same model and options)."""
    if before.level != "token" or after.level != "token":
        raise InputError("compare() needs token-level results.")
    rows = align_sides(before.a, after.a)
    cols = align_sides(before.b, after.b)
    return Comparison(
        rows=rows,
        cols=cols,
        before=_place(before.matrix, rows.before, cols.before),
        after=_place(after.matrix, rows.after, cols.after),
        result_before=before,
        result_after=after,
    )


def _place(matrix: np.ndarray, rows: list[int | None], cols: list[int | None]) -> np.ndarray:
    out = np.zeros((len(rows), len(cols)))
    values = np.asarray(matrix, dtype=np.float64)
    for r, i in enumerate(rows):
        if i is None:
            continue
        for c, j in enumerate(cols):
            if j is not None:
                out[r, c] = values[i, j] if math.isfinite(values[i, j]) else np.nan
    return out
