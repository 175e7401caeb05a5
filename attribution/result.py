"""The one result type that every view (CLI, page, corpus analysis, exports) reads."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .views import CoverageLevel, PosSummary, TopPair

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Attribution:
    """Token-pair attributions of one text pair.

    `matrix[i, j]` is the contribution of (token i of text A, token j of text B) to the
    similarity, in units of the score (cosine or dot product). Shape (len(tokens_a),
    len(tokens_b)); special tokens are included at token level.
    """

    matrix: np.ndarray
    tokens_a: list[str]
    tokens_b: list[str]
    text_a: str
    text_b: str
    score: float  # the model's similarity of the two texts (shifted embeddings in exact mode)
    target: float  # (f(a) - f(r_a)) . (f(b) - f(r_b)) [/ |f(a)| |f(b)|]: what sum(matrix) converges to
    attribution_sum: float
    integration_error: float  # attribution_sum - target
    relative_error: float  # integration_error / |target|
    reference_terms: float  # score - target: the part the attributions cannot explain
    layer: int
    num_layers: int
    steps: int
    rule: str
    mode: str  # "approximate" | "exact"
    similarity: str  # "cos" | "dot"
    model_name: str
    seconds: float  # compute time, model loading excluded
    tolerance: float | None = None  # the steps="auto" tolerance; None for a fixed N
    converged: bool = True  # False when auto stopped at the step cap above tolerance
    error_by_steps: list[tuple[int, float]] = field(default_factory=list)  # (N, relative error) tried
    truncated_a: bool = False
    truncated_b: bool = False
    special_a: list[bool] = field(default_factory=list)  # True for [CLS], [SEP], <s>, ...
    special_b: list[bool] = field(default_factory=list)
    offsets_a: list[tuple[int, int]] = field(default_factory=list)  # character span in text_a
    offsets_b: list[tuple[int, int]] = field(default_factory=list)
    level: str = "token"  # "token" | "word"
    warnings: list[str] = field(default_factory=list)
    # Linguistic annotation (attribution.linguistics); None when not annotated.
    pos_a: list[str] | None = None  # UPOS per row of the matrix ("SPECIAL" for special tokens)
    pos_b: list[str] | None = None
    tag_a: list[str] | None = None  # fine-grained tag per row
    tag_b: list[str] | None = None
    word_index_a: list[int] | None = None  # spaCy word of each row, -1 for special tokens
    word_index_b: list[int] | None = None
    words_a: list[str] | None = None  # the spaCy words of text A
    words_b: list[str] | None = None
    word_pos_a: list[str] | None = None  # UPOS of each spaCy word
    word_pos_b: list[str] | None = None
    pos_note: str | None = None  # why POS fields are empty, when they are
    special_share: float | None = None  # share of the sum on special tokens dropped by to_words()

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.tokens_a), len(self.tokens_b))

    def replace(self, **changes: Any) -> Attribution:
        return dataclasses.replace(self, **changes)

    # Views (attribution.views; imported here lazily because views imports this module).
    def to_words(self, keep_special: bool = False) -> Attribution:
        """Word-level result: subword cells summed per word pair; see views.to_words."""
        from .views import to_words

        return to_words(self, keep_special=keep_special)

    def top_pairs(self, k: int) -> list[TopPair]:
        """The k cells with the largest |value|, with shares of attribution_sum; see views.top_pairs."""
        from .views import top_pairs

        return top_pairs(self, k)

    def pos_summary(self) -> PosSummary:
        """Attributions summed by UPOS of row x UPOS of column; see views.pos_summary."""
        from .views import pos_summary

        return pos_summary(self)

    def coverage(self, levels: Sequence[float] = (0.5, 0.8, 0.9)) -> list[CoverageLevel]:
        """Strongest pairs needed to reach each fraction of attribution_sum; see views.coverage."""
        from .views import coverage

        return coverage(self, levels)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (floats that are not finite become None)."""
        out: dict[str, Any] = {"schema": SCHEMA_VERSION}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "matrix":
                value = [[_finite(x) for x in row] for row in np.asarray(value, dtype=float).tolist()]
            elif isinstance(value, float):
                value = _finite(value)
            elif f.name in ("offsets_a", "offsets_b"):
                value = [list(span) for span in value]
            elif f.name == "error_by_steps":
                value = [[n, _finite(e)] for n, e in value]
            out[f.name] = value
        out["model"] = self.model_name  # the CLI contract's name for it
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Attribution:
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        if "model_name" not in kwargs and "model" in data:
            kwargs["model_name"] = data["model"]
        kwargs["matrix"] = np.array(
            [[math.nan if x is None else x for x in row] for row in data["matrix"]], dtype=np.float64
        ).reshape(len(data["tokens_a"]), len(data["tokens_b"]))
        for key in ("offsets_a", "offsets_b"):
            if key in kwargs:
                kwargs[key] = [tuple(span) for span in kwargs[key]]
        if "error_by_steps" in kwargs:
            kwargs["error_by_steps"] = [
                (int(n), math.nan if e is None else float(e)) for n, e in kwargs["error_by_steps"]
            ]
        for key, value in list(kwargs.items()):
            if value is None and key in _FLOAT_FIELDS:
                kwargs[key] = math.nan
        return cls(**kwargs)


_FLOAT_FIELDS = {f.name for f in dataclasses.fields(Attribution) if f.type in ("float", "float | None")}


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None
