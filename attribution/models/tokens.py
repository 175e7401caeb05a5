"""Text -> model tokens (with display strings and character offsets) and the reference input.

Tokenization lives next to the model it needs (a LoadedModel's tokenizer and bound prompt); the
engine (attribution.core) imports it from here.

The reference input of a text, defined once for every model: special tokens ([CLS], [SEP], <s>,
</s>, <bos>, <eos>, ...: what the tokenizer's template adds) and prompt tokens keep their place,
every other token becomes the pad token (the unknown token where the tokenizer has no pad).
For BERT-like tokenizers that is [CLS] + [PAD] x (S - 2) + [SEP].
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from ..errors import InputError

# Fast tokenizers of tokenizers < 0.20 (transformers 4.4x) reconfigure their Rust state (truncation) on every
# call and raise "RuntimeError: Already borrowed" when two threads call one tokenizer at once: calls take turns.
TOKENIZER_LOCK = threading.RLock()


class Tokenizing(Protocol):
    """What tokenizing needs of a model (a LoadedModel): its tokenizer, bound prompt and token limit."""

    @property
    def tokenizer(self) -> Any: ...

    @property
    def prompt(self) -> str | None: ...

    @property
    def max_tokens(self) -> int: ...


_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class TokenizedText:
    text: str  # the input with lone surrogates replaced by U+FFFD (the prompt, if any, is not part of it)
    input_ids: torch.Tensor  # (1, S) int64, special tokens and prompt tokens included
    tokens: list[str]  # display strings: the text each token covers, no '##' / 'Ġ' / '▁'
    offsets: list[tuple[int, int]]  # character span of each token in `text`, (0, 0) for special and prompt tokens
    special: list[bool]  # the tokenizer's special-tokens mask (what its template adds)
    full_length: int  # tokens before truncation, special tokens included
    repaired: bool  # lone surrogates (broken UTF-8) were replaced by U+FFFD before tokenizing
    prompt: list[bool] = field(default_factory=list)  # True for the prompt's tokens (empty: no prompt)

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


def encode_text(model: Tokenizing, text: str, label: str = "", max_tokens: int | None = None) -> TokenizedText:
    """Tokenize one text as sentence-transformers' encode does, truncated to `max_tokens` (None: the model's
    maximum length; flagged, see `notes`). With a prompt bound to the model (`LoadedModel.prompted`) the
    prompt string is prepended to the text and the whole is tokenized; the prompt's tokens are flagged in
    `prompt`.

    No warnings are emitted here: the warnings module is process-global, and the page
    tokenizes for many sessions at once.
    """
    tok = model.tokenizer
    max_tokens = model.max_tokens if max_tokens is None else max_tokens
    repaired = repair_surrogates(text)
    is_repaired, text = repaired != text, repaired
    prompt = repair_surrogates(model.prompt or "")
    full = prompt + text
    with TOKENIZER_LOCK:
        enc = tok(
            full,
            truncation=True,
            max_length=max_tokens,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
            return_overflowing_tokens=False,
            return_length=True,
        )
        ids: list[int] = list(enc["input_ids"])
        special = [bool(s) for s in enc["special_tokens_mask"]]
        in_prompt = prompt_flags(tok, prompt, ids, special, max_tokens)
        full_length = len(tok(full, truncation=False, add_special_tokens=True)["input_ids"])
    spans = [(int(s), int(e)) for s, e in enc["offset_mapping"]]
    raw = tok.convert_ids_to_tokens(ids)
    tokens = [_display(full, raw_tok, span, sp) for raw_tok, span, sp in zip(raw, spans, special, strict=True)]
    shift = len(prompt)
    offsets = [
        (0, 0) if sp or pr else (max(s - shift, 0), max(e - shift, 0))
        for (s, e), sp, pr in zip(spans, special, in_prompt, strict=True)
    ]
    if not any(not s and not p for s, p in zip(special, in_prompt, strict=True)):
        if prompt and any(not s for s in special):
            raise InputError(
                f"Text {label} has no room left after the prompt ({sum(in_prompt)} tokens of the model's maximum "
                f"of {max_tokens}): use a shorter prompt."
            )
        raise InputError(f"Text {label} produced no tokens the model can read: type words, not only symbols.")
    input_ids = torch.tensor([ids], dtype=torch.long)
    return TokenizedText(
        text, input_ids, tokens, offsets, special, full_length, is_repaired, in_prompt if prompt else []
    )


def prompt_flags(
    tokenizer: Any, prompt: str, ids: Sequence[int], special: Sequence[bool], max_tokens: int
) -> list[bool]:
    """Which of a prompted text's tokens are the prompt's: the common prefix of its ids with the prompt's
    ids tokenized alone, special tokens apart (they keep their own flag).

    The prefix, not sentence-transformers' prompt length: where the tokenizer merges the prompt's trailing
    space into the text's first word (byte-level BPE, SentencePiece: 'Ġ' alone vs 'ĠA'), that word is the
    text's, though Pooling(include_prompt=False) leaves it out as sentence-transformers counts it.
    """
    flags = [False] * len(ids)
    if not prompt:
        return flags
    alone = tokenizer(prompt, truncation=True, max_length=max_tokens)["input_ids"]
    span = 0
    while span < min(len(alone), len(ids)) and alone[span] == ids[span]:
        span += 1
    for i in range(span):
        flags[i] = not special[i]
    return flags


def _display(text: str, raw: str, span: tuple[int, int], special: bool) -> str:
    if special:
        return raw
    piece = text[span[0] : span[1]].strip()
    if piece:
        return piece
    cleaned = raw.removeprefix("##").replace("Ġ", "").replace("▁", "").strip()
    return cleaned or "␣"  # a token that covers only a space (SentencePiece '▁', byte-level 'Ġ')


def pad_id(tokenizer: Any) -> int:
    """The id that stands for "no token" in the reference input: pad, else unk."""
    for candidate in (tokenizer.pad_token_id, tokenizer.unk_token_id):
        if candidate is not None:
            return int(candidate)
    raise InputError(
        "The tokenizer has neither a pad nor an unknown token, so no reference input can be built: set "
        "tokenizer.pad_token (e.g. to its EOS token) and save the model again."
    )


def reference_token_ids(
    ids: Sequence[int], special: Sequence[bool], tokenizer: Any, prompt: Sequence[bool] = ()
) -> list[int]:
    """The reference input of a text: special tokens and prompt tokens keep their place, every other token is
    the pad token (the unknown token where there is no pad).

    For BERT-like tokenizers that is [CLS] + [PAD] x (S - 2) + [SEP].
    """
    if len(ids) != len(special):
        raise ValueError(f"{len(ids)} ids but {len(special)} special flags")
    if prompt and len(prompt) != len(ids):
        raise ValueError(f"{len(ids)} ids but {len(prompt)} prompt flags")
    keep = [s or (bool(prompt[i]) if prompt else False) for i, s in enumerate(special)]
    blank = pad_id(tokenizer)
    return [int(i) if k else blank for i, k in zip(ids, keep, strict=True)]


def reference_ids(tokens: TokenizedText, tokenizer: Any) -> torch.Tensor:
    """The reference input of a tokenized text, shape (1, S)."""
    ids = reference_token_ids(tokens.input_ids[0].tolist(), tokens.special, tokenizer, tokens.prompt)
    return torch.tensor([ids], dtype=torch.long)
