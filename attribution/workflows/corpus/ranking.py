"""Which query tokens carry the margin? Over a set of queries with positive and negative candidates.

    pairlens margins DATA.jsonl [--model M] [--limit N] [--top K] [--json] [options as explain]

DATA.jsonl: one object per line, {"query": ..., "positives": [...], "negatives": [...]} (a single
"positive" / "negative" text is accepted too). Per query the model ranks all its candidates
(attribution.ranking.rank_scores); the best-scoring positive and the top-scoring negative are explained
against the query (explain_ranking: the query's side shared) and contrasted: each query token's
contribution to the positive minus its contribution to the negative is its share of the margin. Over the
set the report sums and averages those shares per query token (lower-cased) and per POS of the query
token, and counts how often the positive outranks the top negative.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...core.options import ExplainOptions, Limits, add_explain_options, options_from_args
from ...errors import InputError
from ...jsonable import json_ready
from ...models import LoadedModel, load_model
from ...ranking import Contrast, explain_ranking, rank_scores
from ...settings import DEFAULT_MODEL, get_settings

MAX_QUERIES = 10_000


@dataclass(frozen=True)
class RankingExample:
    """One line of the data: a query, its positive and its negative candidates."""

    query: str
    positives: list[str]
    negatives: list[str]


@dataclass(frozen=True)
class QueryMargin:
    """One query: the best positive against the top negative and what each query token gave the margin."""

    query: str
    positive: str
    negative: str
    positive_score: float
    negative_score: float
    attribution_margin: float  # sum over query tokens of (row in the positive's map - row in the negative's)
    tokens: list[str]  # the query's shown tokens (special and prompt tokens left out)
    pos: list[str]  # their UPOS ("" without a tagger)
    shares: list[float]  # each token's part of the margin

    @property
    def won(self) -> bool:
        return self.positive_score > self.negative_score


@dataclass(frozen=True)
class MarginGroup:
    """Margin shares summed over the set for one query token or one POS."""

    label: str
    count: int  # occurrences in queries
    total: float  # summed share of the margin (score units)
    mean: float

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "count": self.count, "total": self.total, "mean": self.mean}


@dataclass(frozen=True)
class MarginReport:
    """Over the set: per query token and per POS, how much of the positive-vs-top-negative margin they carry."""

    model_name: str
    queries: list[QueryMargin]
    by_token: list[MarginGroup]  # largest total first
    by_pos: list[MarginGroup]
    skipped: list[str] = field(default_factory=list)  # lines left out and why

    @property
    def won(self) -> int:
        return sum(q.won for q in self.queries)

    def to_dict(self) -> dict[str, Any]:
        return json_ready(
            {
                "model_name": self.model_name,
                "queries": len(self.queries),
                "positive_outranks_top_negative": self.won,
                "by_token": [g.to_dict() for g in self.by_token],
                "by_pos": [g.to_dict() for g in self.by_pos],
                "per_query": [
                    {
                        "query": q.query, "positive": q.positive, "negative": q.negative,
                        "positive_score": q.positive_score, "negative_score": q.negative_score,
                        "attribution_margin": q.attribution_margin,
                        "tokens": q.tokens, "pos": q.pos, "shares": q.shares,
                    }
                    for q in self.queries
                ],
                "skipped": self.skipped,
            }
        )  # fmt: skip

    def text(self, top: int = 10) -> str:
        n = len(self.queries)
        lines = [
            f"model   {self.model_name}",
            f"queries {n}; the best positive outranks the top negative in {self.won} "
            f"({100 * self.won / max(n, 1):.0f} %)",
            "query tokens carrying the margin (sum of their shares, positive minus top negative):",
        ]
        for g in self.by_token[:top]:
            lines.append(f"  {g.label:<20} {g.total:+.4f}  (mean {g.mean:+.4f} over {g.count})")
        lines.append("by POS of the query token:")
        for g in self.by_pos:
            lines.append(f"  {g.label:<20} {g.total:+.4f}  (mean {g.mean:+.4f} over {g.count})")
        for note in self.skipped:
            lines.append(f"skipped: {note}")
        return "\n".join(lines)


def read_examples(path: str | Path, limit: int | None = None) -> list[RankingExample]:
    """The query/candidates lines of a JSONL file; InputError naming the first bad line."""
    source = Path(path)
    if not source.is_file():
        raise InputError(f"No data file at {str(path)!r}: give a JSONL file of query, positives, negatives.")
    examples: list[RankingExample] = []
    with source.open(encoding="utf-8-sig") as handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"Line {number} of {source.name} is not JSON ({exc.msg}).") from None
                examples.append(_example(row, number, source.name))
                if limit is not None and len(examples) >= limit:
                    break
                if len(examples) > MAX_QUERIES:  # refused as soon as it is too many, not after reading them all
                    raise InputError(f"More than {MAX_QUERIES:,} queries: use --limit or split the file.")
        except UnicodeDecodeError:
            raise InputError(f"{source.name} is not UTF-8 text: save it as UTF-8.") from None
    if not examples:
        raise InputError(f"{source.name} has no lines: each line needs a query, positives and negatives.")
    return examples


def _texts(row: dict[str, Any], plural: str, singular: str) -> list[str]:
    value = row.get(plural, row.get(singular))
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return []


def _example(row: object, number: int, name: str) -> RankingExample:
    if not isinstance(row, dict) or not isinstance(row.get("query"), str):
        raise InputError(f'Line {number} of {name} needs a "query" text.')
    positives, negatives = _texts(row, "positives", "positive"), _texts(row, "negatives", "negative")
    if not positives or not negatives:
        raise InputError(f'Line {number} of {name} needs at least one text in "positives" and in "negatives".')
    return RankingExample(row["query"], positives, negatives)


def margin_of(
    model: LoadedModel, example: RankingExample, options: ExplainOptions, limits: Limits | None
) -> QueryMargin:
    """The best positive against the top negative for one query."""
    candidates = list(dict.fromkeys([*example.positives, *example.negatives]))  # a text in both lists: once
    scored = rank_scores(model, example.query, candidates, options, limits=limits)
    negatives = set(example.negatives) - set(example.positives)
    if not negatives:
        raise InputError("every negative is also a positive")
    best_positive = next(e for e in scored.entries if e.text in example.positives)
    top_negative = next(e for e in scored.entries if e.text in negatives)
    ranking = explain_ranking(model, example.query, [best_positive.text, top_negative.text], options, limits=limits)
    positive_at = next(k for k, e in enumerate(ranking.entries) if e.text == best_positive.text)
    contrast: Contrast = ranking.contrast(positive_at, 1 - positive_at)
    sign = 1.0 if contrast.higher.text == best_positive.text else -1.0
    shares = sign * contrast.query_difference
    side = ranking.entries[0].attribution.a  # type: ignore[union-attr]
    rows = [i for i, hidden in enumerate(contrast.query_hidden) if not hidden]
    pos = side.pos or [""] * len(side.tokens)
    return QueryMargin(
        query=example.query,
        positive=best_positive.text,
        negative=top_negative.text,
        positive_score=best_positive.score,
        negative_score=top_negative.score,
        attribution_margin=float(shares.sum()),
        tokens=[side.tokens[i] for i in rows],
        pos=[pos[i] for i in rows],
        shares=[float(shares[i]) for i in rows],
    )


def margin_report(
    model: LoadedModel,
    examples: Sequence[RankingExample],
    options: ExplainOptions | None = None,
    *,
    limits: Limits | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> MarginReport:
    """Per query token and POS, their share of the positive-vs-top-negative margin summed over `examples`.

    A line the ranking refuses (an empty query, duplicate candidates, ...) is skipped and named in `skipped`.
    """
    options = options or ExplainOptions()
    margins, skipped = [], []
    for index, example in enumerate(examples):
        try:
            margins.append(margin_of(model, example, options, limits))
        except InputError as exc:
            skipped.append(f"query {index}: {exc}")
        if progress is not None:
            progress(index + 1, len(examples))
    by_token: dict[str, list[float]] = defaultdict(list)
    by_pos: dict[str, list[float]] = defaultdict(list)
    for margin in margins:
        for token, tag, share in zip(margin.tokens, margin.pos, margin.shares, strict=True):
            by_token[token.lower()].append(share)
            by_pos[tag or "?"].append(share)
    return MarginReport(model.name, margins, _groups(by_token), _groups(by_pos), skipped)


def _groups(values: dict[str, list[float]]) -> list[MarginGroup]:
    groups = [MarginGroup(label, len(v), float(sum(v)), float(sum(v) / len(v))) for label, v in values.items()]
    return sorted(groups, key=lambda g: (-g.total, g.label))


# ----------------------------------------------------------------------------- command line


def add_parser(sub: Any) -> None:
    margins = sub.add_parser(
        "margins", help="which query tokens and POS carry the margin of positives over the top negative"
    )
    margins.add_argument("data", help="JSONL: query, positives, negatives per line")
    margins.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"built-in name, folder or hub id (default {DEFAULT_MODEL})"
    )
    margins.add_argument("--limit", type=int, default=None, metavar="N", help="the first N queries only")
    margins.add_argument("--top", type=int, default=10, metavar="K", help="query tokens listed (default 10)")
    margins.add_argument("--json", action="store_true", help="print one JSON object")
    add_explain_options(margins)
    margins.set_defaults(func=run_margins)


def run_margins(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be 1 or more (got {args.limit}).")
    examples = read_examples(args.data, args.limit)  # every check before the model loads
    options = options_from_args(args)
    limits = get_settings().limits
    model = load_model(args.model, device=options.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = margin_report(model, examples, options, limits=limits)
    if args.json:
        json.dump(report.to_dict(), sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print(report.text(args.top))
    return 0
