"""Text -> model tokens (with display strings and character offsets) and the reference input."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .errors import InputError
from .settings import get_settings

if TYPE_CHECKING:
    from .models import LoadedModel


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


def reference_ids(model: LoadedModel, length: int) -> torch.Tensor:
    """[CLS] + [PAD] x (S - 2) + [SEP] from the tokenizer's own special tokens, shape (1, S)."""
    tok = model.tokenizer
    first = tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id
    last = tok.sep_token_id if tok.sep_token_id is not None else tok.eos_token_id
    if first is None or last is None or tok.pad_token_id is None:
        raise InputError(f"The tokenizer of '{model.name}' lacks CLS/SEP/PAD tokens needed for the reference input.")
    ids = torch.full((1, length), int(tok.pad_token_id), dtype=torch.long)
    ids[0, 0] = int(first)
    ids[0, -1] = int(last)
    return ids
