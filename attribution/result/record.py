"""The one result type that every view (CLI, page, corpus analysis, exports) reads.

`Attribution` holds the matrix, one `TextSide` per text and the numbers of the run. Its JSON
form (`to_dict` / `from_dict`) is described by `attribution.result.schema`; the keys are the
flat ones of the CLI contract (`tokens_a`, `pos_b`, ...), so old files and scripts keep working.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from . import schema, views, words
from .schema import SCHEMA_VERSION
from .views import CoverageLevel, PosSummary, TopPair

__all__ = ["SCHEMA_VERSION", "Attribution", "Level", "TextSide"]

Level = Literal["token", "word"]


@dataclass(frozen=True)
class TextSide:
    """One text of the pair and everything known per row (token or word) of it.

    Per-row lists have one entry per row of the matrix (text A) or column (text B).
    The linguistic fields are None until the result is annotated (`attribution.annotate`).
    """

    text: str  # what was tokenized (lone surrogates replaced by U+FFFD)
    tokens: list[str]  # display strings, no '##' / 'Ġ' / '▁'
    offsets: list[tuple[int, int]] = field(default_factory=list)  # character span per row, (0, 0) for specials
    special: list[bool] = field(default_factory=list)  # True for [CLS], [SEP], <s>, ...
    truncated: bool = False  # the text had more tokens than the model's limit
    pos: list[str] | None = None  # UPOS per row ("SPECIAL" for special tokens)
    tags: list[str] | None = None  # fine-grained tag per row
    word_index: list[int] | None = None  # index into `words` per row, -1 for special tokens
    words: list[str] | None = None  # the spaCy words of the text
    word_pos: list[str] | None = None  # UPOS per word of `words`
    prompt: list[bool] = field(default_factory=list)  # True for the prompt's rows (empty: no prompt)

    def __len__(self) -> int:
        return len(self.tokens)

    def replace(self, **changes: Any) -> TextSide:
        return dataclasses.replace(self, **changes)

    def special_or_prompt(self) -> list[bool]:
        """Per row: True for special tokens and prompt tokens, the rows views hide by default (not the text's own)."""
        special = self.special if len(self.special) == len(self.tokens) else [False] * len(self.tokens)
        prompt = self.prompt if len(self.prompt) == len(self.tokens) else [False] * len(self.tokens)
        return [s or p for s, p in zip(special, prompt, strict=True)]

    def select(self, keep: Sequence[bool]) -> TextSide:
        """The rows where `keep` is True (per-row lists only; words and word_pos stay whole)."""
        if len(keep) != len(self.tokens):
            raise ValueError(f"{len(keep)} flags for {len(self.tokens)} rows")

        def pick(values: list[Any] | None) -> list[Any] | None:
            if values is None or len(values) != len(keep):
                return values
            return [v for v, k in zip(values, keep, strict=True) if k]

        return self.replace(
            tokens=pick(self.tokens),
            offsets=pick(self.offsets),
            special=pick(self.special),
            pos=pick(self.pos),
            tags=pick(self.tags),
            word_index=pick(self.word_index),
            prompt=pick(self.prompt),
        )


@dataclass(frozen=True, eq=False)
class Attribution:
    """Token-pair attributions of one text pair.

    `matrix[i, j]` is the contribution of (row i of text A, column j of text B) to the
    similarity, in units of the score (cosine or dot product); shape (len(a), len(b)).
    Special tokens are included at token level.
    """

    matrix: np.ndarray
    a: TextSide
    b: TextSide
    score: float  # the similarity that is explained: of f (approximate) or of the shifted f - f(ref) (exact)
    target: float  # (f(a) - f(r_a)) . (f(b) - f(r_b)) [/ |f(a)| |f(b)|]: what sum(matrix) converges to
    attribution_sum: float
    integration_error: float  # attribution_sum - target
    relative_error: float  # integration_error / |target|
    reference_terms: float  # score - target: the part the attributions cannot explain
    layer: int
    num_layers: int
    steps: int  # quadrature nodes used
    rule: str
    mode: str  # "approximate" | "exact"
    similarity: str  # "cos" | "dot"
    model_name: str
    seconds: float  # compute time, model loading excluded
    tolerance: float | None = None  # the steps="auto" tolerance; None for a fixed N
    converged: bool = True  # False when auto stopped at the step cap above tolerance
    error_by_steps: list[tuple[int, float]] = field(default_factory=list)  # (N, relative error) tried
    level: Level = "token"
    warnings: list[str] = field(default_factory=list)
    pos_note: str | None = None  # why POS fields are empty, when they are
    special_share: float | None = None  # share of the sum on special rows dropped at word level
    model_score: float | None = None  # the model's own similarity of f(a), f(b) (= score in approximate mode)
    exact_model: bool | None = None  # the model was trained for exact mode (None: not recorded)
    error_bound: float | None = None  # adaptive steps="auto": certified bound on |relative_error| (None otherwise)
    step_cap: int | None = None  # steps="auto": the most nodes per text it was allowed (None for a fixed N)
    run_options: dict[str, Any] | None = None  # the resolved options it ran under (RunOptions.to_dict(); None: older)

    @property
    def own_score(self) -> float:
        """The model's own similarity of the two texts: what users of the model see.

        Equal to `score` in approximate mode; in exact mode `score` is the similarity of the
        shifted embeddings, which only an exact model makes equal to its own similarity.
        """
        if self.model_score is not None and math.isfinite(self.model_score):
            return self.model_score
        return self.score

    @property
    def explains_other_score(self) -> bool:
        """True when the map explains a number that is not the model's own similarity.

        That is exact mode on a model not trained for it: the map explains the similarity of
        the shifted embeddings f(x) - f(reference), which can be far from the model's score.
        """
        return self.mode == "exact" and self.exact_model is False

    def show(self, **options: Any) -> Any:
        """The heatmap as a plotly figure, displayed in a notebook (`attribution.viz.heatmap.build_heatmap` options)."""
        from ..viz.notebook import show

        return show(self, **options)

    def _repr_html_(self) -> str:
        """Jupyter's rich display: the same heatmap as the page (plotly)."""
        from ..viz.notebook import repr_html

        return repr_html(self)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.a), len(self.b))

    @property
    def sides(self) -> tuple[TextSide, TextSide]:
        return (self.a, self.b)

    @property
    def is_annotated(self) -> bool:
        """True when both texts carry their word alignment (POS may still be None: no tagger)."""
        return self.a.word_index is not None and self.b.word_index is not None

    @property
    def has_pos(self) -> bool:
        return self.a.pos is not None and self.b.pos is not None

    def replace(self, **changes: Any) -> Attribution:
        return dataclasses.replace(self, **changes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Attribution):
            return NotImplemented
        for f in dataclasses.fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if f.name == "matrix":
                mine, theirs = np.asarray(mine, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
                if mine.shape != theirs.shape or not np.array_equal(mine, theirs, equal_nan=True):
                    return False
            elif not _same(mine, theirs):
                return False
        return True

    __hash__ = None  # type: ignore[assignment]

    # Views (attribution.result.views, .words) and the JSON form (.schema): those modules know this one
    # only by its type, so they are imported at the top and the methods are one line each.
    def to_words(self, keep_special: bool = False) -> Attribution:
        """Word-level result (subword cells summed per word pair); needs an annotated result."""
        return words.to_words(self, keep_special=keep_special)

    def top_pairs(self, k: int) -> list[TopPair]:
        """The k cells with the largest |value|, with shares of attribution_sum."""
        return views.top_pairs(self, k)

    def pos_summary(self) -> PosSummary:
        """Attributions summed by UPOS of row x UPOS of column; needs POS tags."""
        return views.pos_summary(self)

    def coverage(self, levels: Sequence[float] = (0.5, 0.8, 0.9)) -> list[CoverageLevel]:
        """Strongest pairs needed to reach each fraction of attribution_sum."""
        return views.coverage(self, levels)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (schema `SCHEMA_VERSION`; see attribution.result.schema)."""
        return schema.encode(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Attribution:
        """Read a `to_dict()` dictionary of schema 1 or 2 (ValueError or KeyError when it is not one)."""
        fields, sides = schema.decode_fields(data)
        return cls(a=TextSide(**sides["a"]), b=TextSide(**sides["b"]), **fields)


def _same(x: Any, y: Any) -> bool:
    """Equality that counts NaN as equal to NaN, through lists, tuples and TextSides."""
    if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
        return True
    if isinstance(x, TextSide) and isinstance(y, TextSide):
        return all(_same(getattr(x, f.name), getattr(y, f.name)) for f in dataclasses.fields(TextSide))
    if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
        return len(x) == len(y) and all(_same(u, v) for u, v in zip(x, y, strict=True))
    return isinstance(x, bool) == isinstance(y, bool) and bool(x == y)
