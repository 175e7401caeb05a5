"""The model's score of a text pair with some tokens masked or dropped, many edited pairs per forward pass.

An edit removes a set of token positions from one text, in one of two ways:

- mask: each removed position gets the tokenizer's PAD token id (its UNK id where it has no pad), the
  token the reference input has at every non-special position (attribution.core.tokens.pad_id). Every
  other token keeps its position, and a text with all its tokens masked IS its reference input. The
  [MASK] token is not used: the attributions measure each token against the pad token, so the pad token
  is the edit they speak about. It is still a token the model reads, not "nothing".
- drop: the removed positions are deleted from the token ids (not from the characters: the text is not
  tokenized again), so the text gets shorter and the tokens after them move up.

Special tokens ([CLS], [SEP], <s>, ...) and prompt tokens are never removed. Edited versions of a text
are embedded in batches of equal length (no padding, so no attention mask enters the numbers), at most
`chunk` sequences per forward pass (fewer where the options' memory budget asks for it), and each distinct
version once (`PairScorer` caches embeddings).

The score is the one the attribution explains (Attribution.score): the similarity ("cos" or "dot") of
f(x) in approximate mode, of f(x) - f(r_x) in exact mode, r_x the edited text's own reference input.
A zero shifted embedding (exact mode, every token masked) scores 0. The target is what the attributions of
the edited pair would sum to, (f(a) - f(r_a)) . (f(b) - f(r_b)) / norm: in approximate mode the score also
holds the reference terms, which removing a token changes too (masking moves f(x) towards f(r_x)).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch

from ..core.tokens import TokenizedText, pad_id, reference_token_ids
from ..errors import InputError
from ..models import LoadedModel

Op = Literal["mask", "drop"]
OPS: tuple[Op, ...] = get_args(Op)
DEFAULT_CHUNK = 64  # edited sequences per forward pass


def check_op(op: object) -> Op:
    if op not in OPS:
        raise InputError(f"Unknown edit {op!r}: choose 'mask' (replace by the pad token) or 'drop' (delete).")
    return op


def check_chunk(chunk: object) -> int:
    if isinstance(chunk, bool) or not isinstance(chunk, int) or not 1 <= chunk <= 4096:
        raise InputError(f"chunk must be a whole number from 1 to 4096 sequences per forward pass (got {chunk!r}).")
    return chunk


@dataclass(frozen=True)
class TextIds:
    """One tokenized text as the scorer edits it: ids, which positions are fixed (special or prompt)."""

    ids: tuple[int, ...]
    special: tuple[bool, ...]
    prompt: tuple[bool, ...]  # empty: no prompt

    @classmethod
    def of(cls, tokens: TokenizedText) -> TextIds:
        return cls(tuple(int(i) for i in tokens.input_ids[0].tolist()), tuple(tokens.special), tuple(tokens.prompt))

    @property
    def fixed(self) -> tuple[bool, ...]:
        """True where a position may never be removed."""
        prompt = self.prompt if self.prompt else (False,) * len(self.ids)
        return tuple(s or p for s, p in zip(self.special, prompt, strict=True))

    def edited(self, removed: Iterable[int], op: Op, pad: int) -> TextIds:
        """This text with the positions in `removed` masked (pad id) or dropped."""
        gone = set(removed)
        fixed = self.fixed
        if any(fixed[i] for i in gone):
            raise ValueError("special and prompt tokens are never removed")
        if op == "mask":
            return TextIds(tuple(pad if i in gone else t for i, t in enumerate(self.ids)), self.special, self.prompt)
        keep = [i for i in range(len(self.ids)) if i not in gone]
        return TextIds(
            tuple(self.ids[i] for i in keep),
            tuple(self.special[i] for i in keep),
            tuple(self.prompt[i] for i in keep) if self.prompt else (),
        )


def similarity_score(e_a: np.ndarray, e_b: np.ndarray, similarity: str) -> np.ndarray:
    """Row-wise similarity of (N, D) float64 arrays: dot products, or cosines (0 where a norm is 0)."""
    dots = np.einsum("nd,nd->n", e_a, e_b)
    if similarity == "dot":
        return dots
    norms = np.linalg.norm(e_a, axis=1) * np.linalg.norm(e_b, axis=1)
    safe = np.where(norms > 0, norms, 1.0)
    return np.where(norms > 0, dots / safe, 0.0)


class PairScorer:
    """The explained score of edited versions of one text pair, batched, each version embedded once.

    model: the prompted LoadedModel the pair was tokenized with; mode "approximate" | "exact";
    similarity "cos" | "dot"; `forwards` counts the batched forward passes run so far.
    """

    def __init__(
        self,
        model: LoadedModel,
        a: TextIds,
        b: TextIds,
        *,
        mode: str,
        similarity: str,
        chunk: int = DEFAULT_CHUNK,
        budget_bytes: int | None = None,
    ) -> None:
        self.model = model
        self.texts = {"a": a, "b": b}
        self.mode = mode
        self.similarity = similarity
        self.chunk = check_chunk(chunk)
        self.budget_bytes = budget_bytes
        self.pad = pad_id(model.tokenizer)
        self._embedded: dict[tuple[int, ...], np.ndarray] = {}
        self.forwards = 0

    def version(self, side: str, removed: Iterable[int], op: Op) -> TextIds:
        return self.texts[side].edited(removed, op, self.pad)

    def _reference(self, text: TextIds) -> tuple[int, ...]:
        return tuple(reference_token_ids(text.ids, text.special, self.model.tokenizer, text.prompt))

    def batch_size(self, length: int) -> int:
        """Sequences of this length per forward pass: `chunk`, fewer where the memory budget asks for it."""
        if self.budget_bytes is None:
            return self.chunk
        return max(1, min(self.chunk, self.budget_bytes // max(1, self.model.sequence_bytes(length))))

    def embed(self, id_lists: Sequence[tuple[int, ...]]) -> None:
        """Embed the id sequences not seen yet: equal lengths together, `chunk` per forward pass."""
        todo = sorted({ids for ids in id_lists if ids not in self._embedded}, key=len)
        by_length: dict[int, list[tuple[int, ...]]] = {}
        for ids in todo:
            by_length.setdefault(len(ids), []).append(ids)
        with torch.inference_mode():
            for length, group in by_length.items():
                size = self.batch_size(length)
                for start in range(0, len(group), size):
                    batch = group[start : start + size]
                    out = self.model.embed_ids(torch.tensor(batch, dtype=torch.long))
                    self.forwards += 1
                    for ids, row in zip(batch, out.double().cpu().numpy(), strict=True):
                        self._embedded[ids] = row

    def embeddings(self, versions: Sequence[TextIds]) -> tuple[np.ndarray, np.ndarray]:
        """f and f(reference) of each version, both (N, D) float64 (embedded where not yet)."""
        needed = [v.ids for v in versions]
        refs = [self._reference(v) for v in versions]
        self.embed(needed + refs)
        return np.stack([self._embedded[ids] for ids in needed]), np.stack([self._embedded[ids] for ids in refs])

    def evaluate(
        self, removals: Sequence[tuple[Iterable[int], Iterable[int]]], op: Op
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, targets), each (N,), of the edited pairs: `removals` holds (positions removed from A, from B).

        score: what Attribution.score is for the edited pair; target: what its attributions would sum to,
        (f(a) - f(r_a)) . (f(b) - f(r_b)) / norm with the score's norm (attribution.core.completeness).
        """
        if not removals:
            return np.zeros(0), np.zeros(0)
        versions_a = [self.version("a", ra, op) for ra, _ in removals]
        versions_b = [self.version("b", rb, op) for _, rb in removals]
        f, r = self.embeddings(versions_a + versions_b)  # both texts' versions share the forward passes
        n = len(versions_a)
        f_a, r_a, f_b, r_b = f[:n], r[:n], f[n:], r[n:]
        shift_a, shift_b = f_a - r_a, f_b - r_b
        compared_a, compared_b = (shift_a, shift_b) if self.mode == "exact" else (f_a, f_b)
        scores = similarity_score(compared_a, compared_b, self.similarity)
        dots = np.einsum("nd,nd->n", shift_a, shift_b)
        if self.similarity == "dot":
            return scores, dots
        norms = np.linalg.norm(compared_a, axis=1) * np.linalg.norm(compared_b, axis=1)
        return scores, np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), 0.0)

    def scores(self, removals: Sequence[tuple[Iterable[int], Iterable[int]]], op: Op) -> np.ndarray:
        """The score of each edited pair, (N,) (see `evaluate`)."""
        return self.evaluate(removals, op)[0]
