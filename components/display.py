"""Which rows and columns of a result the page shows: token or word level, special tokens or not."""

from __future__ import annotations

from typing import Any

import numpy as np

from attribution.result import Attribution

LEVELS = ("token", "word")
_PER_ROW = ("tokens", "special", "offsets", "pos", "tag", "word_index")


def without_special_tokens(result: Attribution) -> Attribution:
    """A token-level result without its special-token rows and columns ([CLS], [SEP], <s>, ...).

    attribution_sum is unchanged (shares stay shares of the full sum). Only rows are
    selected; no value is changed.
    """
    keep_a = np.array([not s for s in result.special_a], dtype=bool) if result.special_a else None
    keep_b = np.array([not s for s in result.special_b], dtype=bool) if result.special_b else None
    if (keep_a is None or keep_a.all()) and (keep_b is None or keep_b.all()):
        return result
    n_a, n_b = result.shape
    keep_a = keep_a if keep_a is not None else np.ones(n_a, dtype=bool)
    keep_b = keep_b if keep_b is not None else np.ones(n_b, dtype=bool)
    changes: dict[str, Any] = {"matrix": np.asarray(result.matrix)[np.ix_(keep_a, keep_b)]}
    for side, keep in (("a", keep_a), ("b", keep_b)):
        for name in _PER_ROW:
            values = getattr(result, f"{name}_{side}")
            if values is not None and len(values) == len(keep):
                changes[f"{name}_{side}"] = [v for v, k in zip(values, keep, strict=True) if k]
    return result.replace(**changes)


def display_view(result: Attribution, level: str = "token", show_special: bool = True) -> Attribution:
    """The result as shown: `level` "token" or "word" (words via the library's to_words)."""
    if level not in LEVELS:
        raise ValueError(f"level must be 'token' or 'word', not {level!r}")
    if level == "word":
        return result.to_words(keep_special=show_special)
    return result if show_special else without_special_tokens(result)
