"""Which rows and columns of a result the page shows: token or word level, special tokens or not."""

from __future__ import annotations

from attribution.result import Attribution, without_special_tokens

LEVELS = ("token", "word")


def display_view(result: Attribution, level: str = "token", show_special: bool = True) -> Attribution:
    """The result as shown: `level` "token" or "word" (words via the library's to_words)."""
    if level not in LEVELS:
        raise ValueError(f"level must be 'token' or 'word', not {level!r}")
    if level == "word":
        return result.to_words(keep_special=show_special)
    return result if show_special else without_special_tokens(result)
