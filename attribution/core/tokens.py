"""The checks a text passes before it is explained; tokenization itself is attribution.models.tokens.

The tokenization names are re-exported here for the engine's callers (TokenizedText, encode_text,
reference_ids, ...).
"""

from __future__ import annotations

import unicodedata

from ..errors import InputError
from ..models.tokens import (
    TokenizedText,
    encode_text,
    pad_id,
    prompt_flags,
    reference_ids,
    reference_token_ids,
    repair_surrogates,
)

__all__ = [
    "TokenizedText", "check_text", "encode_text", "pad_id", "prompt_flags", "reference_ids", "reference_token_ids",
    "repair_surrogates",
]  # fmt: skip


def check_text(text: object, label: str, max_chars: int) -> str:
    """`text` when it can be explained; else InputError saying what to do instead. max_chars: the operator's
    limit on characters (`Limits.max_text_chars`, PAIRLENS_MAX_TEXT_CHARS)."""
    if not isinstance(text, str):
        raise InputError(f"Text {label} must be a string, not {type(text).__name__}.")
    if not text.strip() or all(unicodedata.category(c)[0] in "CZ" for c in text):
        raise InputError(f"Text {label} is empty: type a sentence to compare.")
    limit = max_chars
    if len(text) > limit:
        raise InputError(
            f"Text {label} has {len(text):,} characters, more than the limit of {limit:,}: shorten it "
            "(only the first few hundred tokens are used anyway)."
        )
    return text
