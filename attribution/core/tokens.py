"""Text -> model tokens (with display strings and character offsets) and the reference input."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ..errors import InputError
from ..settings import get_settings

if TYPE_CHECKING:
    from ..models import LoadedModel


_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class TokenizedText:
    text: str  # what was tokenized: the input with lone surrogates replaced by U+FFFD
    input_ids: torch.Tensor  # (1, S) int64, special tokens included
    tokens: list[str]  # display strings: the text each token covers, no '##' / 'Ġ' / '▁'
    offsets: list[tuple[int, int]]  # character span of each token in the text, (0, 0) for special tokens
    special: list[bool]
    full_length: int  # tokens before truncation, special tokens included
    repaired: bool  # lone surrogates (broken UTF-8) were replaced by U+FFFD before tokenizing

    @property
    def truncated(self) -> bool:
        return self.full_length > len(self.tokens)

    def notes(self, label: str) -> list[str]:
        """User-facing sentences on what was changed in text `label` before explaining it."""
        notes = []
        if self.truncated:
            notes.append(
                f"Text {label} has {self.full_length} tokens; it was truncated to the maximum of "
                f"{len(self.tokens)} (the model's limit, or PAIRLENS_MAX_TOKENS if lower)."
            )
        if self.repaired:
            notes.append(f"Text {label} had invalid characters (broken UTF-8); they were replaced by \ufffd.")
        return notes


def repair_surrogates(text: str) -> str:
    """`text` with each lone surrogate (what invalid UTF-8 decodes to under surrogateescape) as U+FFFD.

    Same length, so character offsets into the repaired text are offsets into the original.
    """
    return _SURROGATE.sub("\ufffd", text)


def check_text(text: object, label: str) -> str:
    """Refuse what cannot be explained, with what to do instead."""
    if not isinstance(text, str):
        raise InputError(f"Text {label} must be a string, not {type(text).__name__}.")
    if not text.strip() or all(unicodedata.category(c)[0] in "CZ" for c in text):
        raise InputError(f"Text {label} is empty: type a sentence to compare.")
    limit = get_settings().max_text_chars
    if len(text) > limit:
        raise InputError(
            f"Text {label} has {len(text):,} characters, more than the limit of {limit:,}: shorten it "
            "(only the first few hundred tokens are used anyway)."
        )
    return text


def encode_text(model: LoadedModel, text: str, label: str = "") -> TokenizedText:
    """Tokenize one text, truncated to the model's maximum length (flagged, see `notes`).

    No warnings are emitted here: the warnings module is process-global, and the page
    tokenizes for many sessions at once.
    """
    tok = model.tokenizer
    repaired = repair_surrogates(text)
    is_repaired, text = repaired != text, repaired
    enc = tok(
        text,
        truncation=True,
        max_length=model.max_tokens,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        return_overflowing_tokens=False,
        return_length=True,
    )
    ids: list[int] = list(enc["input_ids"])
    special = [bool(s) for s in enc["special_tokens_mask"]]
    offsets = [
        (int(s), int(e)) if not sp else (0, 0) for (s, e), sp in zip(enc["offset_mapping"], special, strict=True)
    ]
    full_length = len(tok(text, truncation=False, add_special_tokens=True)["input_ids"])
    raw = tok.convert_ids_to_tokens(ids)
    tokens = [_display(text, raw_tok, span, sp) for raw_tok, span, sp in zip(raw, offsets, special, strict=True)]
    if not any(not s for s in special):
        raise InputError(f"Text {label} produced no tokens the model can read: type words, not only symbols.")
    input_ids = torch.tensor([ids], dtype=torch.long)
    return TokenizedText(text, input_ids, tokens, offsets, special, full_length, is_repaired)


def _display(text: str, raw: str, span: tuple[int, int], special: bool) -> str:
    if special:
        return raw
    piece = text[span[0] : span[1]].strip()
    if piece:
        return piece
    cleaned = raw.removeprefix("##").replace("Ġ", "").replace("▁", "").strip()
    return cleaned or raw


def pad_id(tokenizer: Any) -> int:
    """The id that stands for "no token" in the reference input: pad, else unk."""
    for candidate in (tokenizer.pad_token_id, tokenizer.unk_token_id):
        if candidate is not None:
            return int(candidate)
    raise InputError("The tokenizer has neither a pad nor an unk token, so no reference input can be built.")


def reference_token_ids(ids: Sequence[int], special: Sequence[bool], tokenizer: Any) -> list[int]:
    """The reference input of a text: special tokens keep their place, every other token is pad.

    For BERT-like tokenizers that is [CLS] + [PAD] x (S - 2) + [SEP].
    """
    if len(ids) != len(special):
        raise ValueError(f"{len(ids)} ids but {len(special)} special flags")
    blank = pad_id(tokenizer)
    return [int(i) if s else blank for i, s in zip(ids, special, strict=True)]


def reference_ids(tokens: TokenizedText, tokenizer: Any) -> torch.Tensor:
    """The reference input of a tokenized text, shape (1, S)."""
    ids = reference_token_ids(tokens.input_ids[0].tolist(), tokens.special, tokenizer)
    return torch.tensor([ids], dtype=torch.long)
