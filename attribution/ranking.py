"""Explain a ranking: one query against many candidates, "why did B outrank A?".

    ranking = explain_ranking(model, "how do cats sleep?", ["Cats nap all day.", "Dogs bark."])
    ranking.entries[0].text, ranking.entries[0].score   # the model's best candidate and its own score
    ranking.entries[0].attribution.matrix               # (query tokens, candidate tokens)
    ranking.contrast(0, 1).pulled_up()                  # query tokens that favour #1 over #2

The query is encoded with the model's query prompt and the candidates with its document prompt
(role_a="query", role_b="document", as sentence-transformers' encode_query / encode_document), unless
the options name prompts. Scores come first from the pooled embeddings alone (`rank_scores`: encoder
forwards only, texts of one token length in one batch). Maps: the query's path is prepared once; its
node slices (S JVPs per node) are computed once and handed to every candidate's integration, while
each pair's own rule still decides which nodes it uses (the adaptive rule refines per pair), so every
map equals explain(query, candidate)'s up to float rounding. Candidates of equal length share the
first round's calls (attribution.core.many).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .core.completeness import completeness
from .core.engine import explain_prepared, resolve
from .core.execution import Run
from .core.options import ExplainOptions, Limits, RunOptions, given_options
from .core.paths import NodeEvaluator, PairPaths, TextPath, evaluate_first_round, prepare_paths, side_models
from .core.quadrature import node_key
from .core.tokens import TokenizedText, check_text, encode_text
from .errors import InputError
from .jsonable import json_ready
from .models import LoadedModel
from .result import Attribution
from .settings import get_settings
from .workflows.evaluate import embed_ids  # batched by equal length, at most 64 a pass

MAX_RANKED = 1000  # candidates one ranking scores
MAX_EXPLAINED = 100  # attribution maps one ranking computes
CandidateProgress = Callable[[int, int], None]  # (maps finished, maps in all)


@dataclass(frozen=True)
class RankedCandidate:
    """One candidate in the model's order. index: its position in the input list; rank: 1 = best."""

    rank: int
    index: int
    text: str
    score: float  # the model's own similarity to the query (cosine or dot product of its embeddings)
    truncated: bool = False  # longer than the model's token limit: the tail was cut (scores and map alike)
    attribution: Attribution | None = None  # (query tokens, candidate tokens); None when not explained

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("rank", "index", "text", "score", "truncated")}
        out["attribution"] = None if self.attribution is None else self.attribution.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RankedCandidate:
        found = data.get("attribution")
        return cls(
            rank=int(data["rank"]),
            index=int(data["index"]),
            text=str(data["text"]),
            score=math.nan if data.get("score") is None else float(data["score"]),
            truncated=bool(data.get("truncated", False)),
            attribution=None if found is None else Attribution.from_dict(found),
        )


@dataclass(frozen=True)
class Contrast:
    """Why `higher` outranks `lower`: per query token, what each candidate's map gives that token.

    query_rows_*: (S_q,) row totals of each map (the query is tokenized once, so rows align); their
    difference says which query tokens pulled `higher` up (positive) or `lower` up (negative).
    words_*: per word of each candidate (tokens where there is no word alignment), its total and the
    query token it draws most on. score_gap = attribution_gap + rest_gap, where rest_gap is what the maps
    cannot explain (reference terms and integration error; see Attribution.reference_terms).
    """

    higher: RankedCandidate
    lower: RankedCandidate
    query_tokens: list[str]
    query_hidden: list[bool]  # special and prompt tokens (views hide them by default)
    query_rows_higher: np.ndarray
    query_rows_lower: np.ndarray
    words_higher: list[tuple[str, float, str]]  # (word, total, the query token it draws most on)
    words_lower: list[tuple[str, float, str]]
    score_gap: float
    attribution_gap: float

    @property
    def rest_gap(self) -> float:
        return self.score_gap - self.attribution_gap

    @property
    def query_difference(self) -> np.ndarray:
        """(S_q,) per query token: its contribution to `higher` minus to `lower`."""
        return self.query_rows_higher - self.query_rows_lower

    def pulled_up(self, k: int = 5, hidden: bool = False) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        """The k query tokens that favour `higher` most, and the k that favour `lower` most: (token, difference).

        hidden: include special and prompt tokens.
        """
        diff = self.query_difference
        rows = [i for i in range(len(diff)) if hidden or not self.query_hidden[i]]
        up = sorted((i for i in rows if diff[i] > 0), key=lambda i: -diff[i])[:k]
        down = sorted((i for i in rows if diff[i] < 0), key=lambda i: diff[i])[:k]
        return [(self.query_tokens[i], float(diff[i])) for i in up], [
            (self.query_tokens[i], float(diff[i])) for i in down
        ]

    def to_dict(self) -> dict[str, Any]:
        favour_higher, favour_lower = self.pulled_up(k=len(self.query_tokens))
        return json_ready(
            {
                "higher": {"rank": self.higher.rank, "index": self.higher.index, "text": self.higher.text,
                           "score": self.higher.score},
                "lower": {"rank": self.lower.rank, "index": self.lower.index, "text": self.lower.text,
                          "score": self.lower.score},
                "query_tokens": self.query_tokens,
                "query_hidden": self.query_hidden,
                "query_rows_higher": self.query_rows_higher.tolist(),
                "query_rows_lower": self.query_rows_lower.tolist(),
                "favour_higher": favour_higher,
                "favour_lower": favour_lower,
                "words_higher": [list(w) for w in self.words_higher],
                "words_lower": [list(w) for w in self.words_lower],
                "score_gap": self.score_gap,
                "attribution_gap": self.attribution_gap,
                "rest_gap": self.rest_gap,
            }
        )  # fmt: skip


@dataclass(frozen=True)
class Ranking:
    """The model's ranking of candidates against a query: `entries` best first, maps where computed."""

    query: str
    entries: list[RankedCandidate]
    model_name: str
    similarity: str  # "cos" | "dot"
    options: dict[str, Any]  # the resolved ExplainOptions (prompts per side included)
    query_prompt: str | None = None
    document_prompt: str | None = None
    query_truncated: bool = False
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def explained(self) -> list[RankedCandidate]:
        return [e for e in self.entries if e.attribution is not None]

    def by_index(self, index: int) -> RankedCandidate:
        """The entry of the candidate at position `index` of the input list."""
        for entry in self.entries:
            if entry.index == index:
                return entry
        raise InputError(
            f"There is no candidate {index}: the ranking has {len(self.entries)} (0 to {len(self.entries) - 1})."
        )

    def contrast(self, i: int, j: int) -> Contrast:
        """Why entries[i] and entries[j] (positions in the ranking, 0 = best) rank as they do; the higher one first."""
        for position in (i, j):
            if not isinstance(position, int) or not 0 <= position < len(self.entries):
                raise InputError(f"Rank position {position!r} is not in this ranking (0 to {len(self.entries) - 1}).")
        if i == j:
            raise InputError("Pick two different candidates to contrast.")
        higher, lower = (self.entries[min(i, j)], self.entries[max(i, j)])
        for entry in (higher, lower):
            if entry.attribution is None:
                raise InputError(
                    f"Candidate ranked {entry.rank} has no map: explain it first (explain_ranking with top >= "
                    f"{entry.rank}, or with top=None for every candidate)."
                )
        assert higher.attribution is not None and lower.attribution is not None
        side = higher.attribution.a
        rows_h = higher.attribution.matrix.sum(axis=1)
        rows_l = lower.attribution.matrix.sum(axis=1)
        return Contrast(
            higher=higher,
            lower=lower,
            query_tokens=list(side.tokens),
            query_hidden=side.special_or_prompt(),
            query_rows_higher=rows_h,
            query_rows_lower=rows_l,
            words_higher=_candidate_words(higher.attribution),
            words_lower=_candidate_words(lower.attribution),
            score_gap=higher.score - lower.score,
            attribution_gap=float(rows_h.sum() - rows_l.sum()),
        )

    def to_dict(self) -> dict[str, Any]:
        return json_ready(
            {
                "query": self.query,
                "model_name": self.model_name,
                "similarity": self.similarity,
                "options": self.options,
                "query_prompt": self.query_prompt,
                "document_prompt": self.document_prompt,
                "query_truncated": self.query_truncated,
                "seconds": self.seconds,
                "warnings": self.warnings,
                "entries": [e.to_dict() for e in self.entries],
            }
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Ranking:
        return cls(
            query=str(data["query"]),
            entries=[RankedCandidate.from_dict(e) for e in data["entries"]],
            model_name=str(data["model_name"]),
            similarity=str(data["similarity"]),
            options=dict(data.get("options") or {}),
            query_prompt=data.get("query_prompt"),
            document_prompt=data.get("document_prompt"),
            query_truncated=bool(data.get("query_truncated", False)),
            seconds=float(data.get("seconds", 0.0)),
            warnings=list(data.get("warnings") or []),
        )


def _candidate_words(result: Attribution) -> list[tuple[str, float, str]]:
    """Per word of the candidate (its tokens without a word alignment): total and the query token it draws most on."""
    view = result.to_words(keep_special=False) if result.b.word_index is not None else result
    hidden_b = view.b.special_or_prompt()
    hidden_a = view.a.special_or_prompt()
    out = []
    for j, word in enumerate(view.b.tokens):
        if hidden_b[j]:
            continue
        column = view.matrix[:, j]
        shown = [i for i in range(len(column)) if not hidden_a[i]] or list(range(len(column)))
        best = max(shown, key=lambda i: abs(column[i]))
        out.append((word, float(column.sum()), view.a.tokens[best]))
    return out


# ----------------------------------------------------------------------------- input


def check_candidates(
    query: object, candidates: object, limit: int = MAX_RANKED, max_chars: int | None = None
) -> tuple[str, list[str]]:
    """The query and candidate texts, or an InputError saying what to fix (nothing is computed before).

    limit: the most candidates; max_chars: characters per text (None: the documented default)."""
    max_chars = max_chars or Limits().max_text_chars
    try:
        query_text = check_text(query, "query", max_chars)
    except InputError as exc:
        raise InputError(str(exc).replace("Text query", "The query")) from None
    if isinstance(candidates, (str, bytes)) or not isinstance(candidates, Sequence):
        raise InputError("candidates must be a list of texts (one per candidate).")
    if not candidates:
        raise InputError("The candidate list is empty: give at least one candidate text to rank.")
    if len(candidates) > limit:
        raise InputError(
            f"{len(candidates):,} candidates are more than the {limit:,} one ranking takes: retrieve a shortlist "
            f"first (e.g. the model's top {limit:,} by sentence-transformers' semantic_search) and rank that."
        )
    texts = []
    seen: dict[str, int] = {}
    for index, text in enumerate(candidates):
        try:
            texts.append(check_text(text, f"of candidate {index}", max_chars))
        except InputError as exc:
            raise InputError(str(exc).replace("Text of candidate", "Candidate")) from None
        key = " ".join(str(text).split())
        if key in seen:
            raise InputError(
                f"Candidates {seen[key]} and {index} are the same text: remove the duplicate (a ranking lists each "
                "candidate once)."
            )
        seen[key] = index
    return query_text, texts


def ranking_options(options: ExplainOptions) -> ExplainOptions:
    """The options with the retrieval roles (query, document) unless prompts were asked for."""
    if options.per_side or options.prompt_name is not None or options.prompt is not None:
        return options
    return options.replace(role_a="query", role_b="document")


@dataclass
class _Prepared:
    loaded: LoadedModel
    options: RunOptions
    query: str
    texts: list[str]
    query_tokens: TokenizedText
    tokens: dict[str, TokenizedText]
    models: tuple[LoadedModel, LoadedModel]


def _prepare(
    model: LoadedModel | str, query: object, candidates: object, options: ExplainOptions, limits: Limits | None
) -> _Prepared:
    if limits is None:  # the Python API's edge: the operator's limits from PAIRLENS_* (as attribution.explain)
        limits = get_settings().limits
    query_text, texts = check_candidates(query, candidates, MAX_RANKED, limits.max_text_chars)
    loaded, resolved = resolve(model, ranking_options(options), {}, limits)
    model_q, model_c = side_models(loaded, resolved)
    query_tokens = encode_text(model_q, query_text, "query", resolved.max_tokens)
    tokens = {}
    for index, text in enumerate(texts):
        try:
            tokens[text] = encode_text(model_c, text, f"candidate {index}", resolved.max_tokens)
        except InputError as exc:
            raise InputError(f"Candidate {index}: {exc}") from None
    return _Prepared(loaded, resolved, query_text, texts, query_tokens, tokens, (model_q, model_c))


def _similarity(f_q: torch.Tensor, f_c: torch.Tensor, similarity: str) -> float:
    q, c = f_q.double(), f_c.double()
    if similarity == "dot":
        return float(q @ c)
    return float((q @ c) / (q.norm() * c.norm()).clamp_min(1e-30))


def _notes(prepared: _Prepared) -> list[str]:
    notes = prepared.query_tokens.notes("query")
    for index, text in enumerate(prepared.texts):
        notes += prepared.tokens[text].notes(f"of candidate {index}")
    return notes


def rank_scores(
    model: LoadedModel | str, query: str, candidates: Sequence[str], options: ExplainOptions | None = None,
    *, limits: Limits | None = None, **option_values: Any,
) -> Ranking:  # fmt: skip
    """The model's own ranking of `candidates` against `query`, scores only (no maps): encoder forwards only.

    Options and limits as for explain_ranking (only the prompts, similarity, tokens and device matter here).
    """
    started = time.perf_counter()
    prepared = _prepare(model, query, candidates, given_options(options, option_values), limits)
    scores = _scores(prepared)
    return _ranking(prepared, scores, {}, started)


def _scores(prepared: _Prepared) -> list[float]:
    model_q, model_c = prepared.models
    similarity = prepared.options.similarity
    (f_q,) = embed_ids(model_q.embed_ids, [prepared.query_tokens.input_ids[0].tolist()])
    f_c = embed_ids(model_c.embed_ids, [prepared.tokens[t].input_ids[0].tolist() for t in prepared.texts])
    return [_similarity(f_q, f, similarity) for f in f_c]


def _ranking(prepared: _Prepared, scores: list[float], maps: dict[int, Attribution], started: float) -> Ranking:
    order = sorted(range(len(scores)), key=lambda k: (-scores[k] if math.isfinite(scores[k]) else math.inf, k))
    entries = [
        RankedCandidate(
            rank=rank,
            index=k,
            text=prepared.texts[k],
            score=scores[k],
            truncated=prepared.tokens[prepared.texts[k]].truncated,
            attribution=maps.get(k),
        )
        for rank, k in enumerate(order, start=1)
    ]
    options = prepared.options
    query_prompt, document_prompt = options.side_prompts
    return Ranking(
        query=prepared.query,
        entries=entries,
        model_name=prepared.loaded.name,
        similarity=options.similarity,
        options=options.to_dict(),
        query_prompt=query_prompt or None,
        document_prompt=document_prompt or None,
        query_truncated=prepared.query_tokens.truncated,
        seconds=time.perf_counter() - started,
        warnings=_notes(prepared),
    )


class _SharedQueryEvaluator(NodeEvaluator):
    """A NodeEvaluator that hands the query's node slices from one pair to the next.

    Each pair integrates its own view of the query's path (its own `evaluated`, so the adaptive rule's
    per-text node count and cap are the pair's own, as in explain()); a slice any pair computed is
    copied in instead of being computed again.
    """

    def __init__(self, model: LoadedModel, options: RunOptions, run: Run, query: TextPath) -> None:
        super().__init__(model, options, run)
        self.query_h = query.h
        self.store = query.evaluated  # node key -> (D, S_q) slice, shared by every pair's view

    def _is_query(self, path: TextPath) -> bool:
        return path.h is self.query_h

    def missing(self, path: TextPath, nodes: np.ndarray) -> list[float]:
        found = super().missing(path, nodes)
        return [a for a in found if node_key(a) not in self.store] if self._is_query(path) else found

    def evaluate(self, path: TextPath, nodes: np.ndarray) -> None:
        if not self._is_query(path):
            super().evaluate(path, nodes)
            return
        for a in nodes:
            key = node_key(a)
            if key not in path.evaluated and key in self.store:
                path.evaluated[key] = self.store[key]
        super().evaluate(path, nodes)
        self.store.update(path.evaluated)


def explain_ranking(
    model: LoadedModel | str,
    query: str,
    candidates: Sequence[str],
    options: ExplainOptions | None = None,
    *,
    top: int | None = None,
    pos: bool = True,
    run: Run | None = None,
    progress: CandidateProgress | None = None,
    max_explained: int = MAX_EXPLAINED,
    limits: Limits | None = None,
    **option_values: Any,
) -> Ranking:
    """Rank `candidates` by the model's own similarity to `query` and explain each score by token pairs.

    Options as for explain() (an ExplainOptions or its fields by keyword); without prompts, the query
    gets the model's query prompt and the candidates its document prompt (see `ranking_options`).
    top: maps for the best `top` candidates only (all are ranked); None: every candidate (at most
    `max_explained`). pos: annotate words and POS tags. run: cancellation (raises Cancelled); progress:
    called with (maps finished, maps in all). limits: the operator's limits (None: PAIRLENS_*, as
    attribution.explain reads them). Refusals (empty query or list, duplicates, too many, an
    unknown prompt name) are InputErrors raised before anything is computed.
    """
    started = time.perf_counter()
    prepared = _prepare(model, query, candidates, given_options(options, option_values), limits)
    count = len(prepared.texts)
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 0):
        raise InputError(f"top must be a whole number of candidates to explain, such as 5 (got {top!r}).")
    wanted = count if top is None else min(top, count)
    if wanted > max_explained:
        raise InputError(
            f"Explaining {wanted} candidates is more than the {max_explained} maps one ranking computes: pass "
            f"top=K (K <= {max_explained}) to explain the best K only, or rank by score alone (rank_scores)."
        )
    run = run or Run()
    run.check()
    if wanted == count:  # every candidate explained: the scores come from the paths' own embeddings
        paths = _paths(prepared, list(range(count)))
        query_path = paths[0]
        scores = [_similarity(query_path.f, p.f, prepared.options.similarity) for p in paths[1:]]
        chosen = list(range(count))
    else:
        scores = _scores(prepared)
        chosen = [e.index for e in _ranking(prepared, scores, {}, started).entries[:wanted]]
        paths = _paths(prepared, chosen) if chosen else []
    maps = _explain_chosen(prepared, chosen, paths, run, progress, pos)
    return dataclasses.replace(_ranking(prepared, scores, maps, started), seconds=time.perf_counter() - started)


def _paths(prepared: _Prepared, chosen: list[int]) -> list[TextPath]:
    """The query's path, then each chosen candidate's (input indices), at the options' layer."""
    layer = prepared.options.layer
    model_q, model_c = prepared.models
    query_path = prepare_paths(model_q, {prepared.query: prepared.query_tokens}, layer)[prepared.query]
    texts = [prepared.texts[k] for k in chosen]
    paths = prepare_paths(model_c, {t: prepared.tokens[t] for t in texts}, layer)
    return [query_path, *(paths[t] for t in texts)]


def _explain_chosen(
    prepared: _Prepared,
    chosen: list[int],
    paths: list[TextPath],
    run: Run,
    progress: CandidateProgress | None,
    pos: bool,
) -> dict[int, Attribution]:
    """The maps of the chosen candidates (input indices; `paths`: the query's, then theirs), the query's
    slices shared."""
    if not chosen:
        return {}
    options = prepared.options
    query_path, candidate_paths = paths[0], paths[1:]
    evaluator = _SharedQueryEvaluator(prepared.models[0], options, run, query_path)
    if options.precision == "fp32":  # bf16 nodes are evaluated by integrate(), under its autocast
        evaluate_first_round(evaluator, paths, options)
    maps: dict[int, Attribution] = {}
    for done, (k, path) in enumerate(zip(chosen, candidate_paths, strict=True), start=1):
        run.check()
        begin = time.perf_counter()
        view = dataclasses.replace(query_path, evaluated={})
        check = completeness(view.f, view.f_ref, path.f, path.f_ref, options.mode, options.similarity)
        pair = PairPaths(view, path, check, evaluator)
        result = explain_prepared(prepared.loaded, pair, options, started=begin, pos=pos)  # warnings: in the result
        maps[k] = result.replace(warnings=[w.replace("Text B", f"Candidate {k}").replace("Text A", "The query")
                                           for w in result.warnings])  # fmt: skip
        if progress is not None:
            progress(done, len(chosen))
    return maps
