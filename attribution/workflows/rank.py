"""`pairlens rank QUERY --candidates FILE|-`: the model's ranking of candidates and why (attribution.ranking).

Candidates: a JSON list (of texts, or of objects with a "text" field), a CSV/TSV file with a column
(--column, default "text"; a one-column file needs none), or plain text with one candidate per line;
--format says which, else the file name or the first character decides. Output as `explain`'s:
a readable summary by default, one JSON object with --json (--pos adds POS tags, --words word-level
maps), --scores-only for the ranking without maps.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import warnings
from pathlib import Path
from typing import Any

from ..core.options import add_explain_options, options_from_args
from ..errors import InputError
from ..models import load_model
from ..ranking import MAX_EXPLAINED, MAX_RANKED, check_candidates, explain_ranking, rank_scores
from ..result.output import explain_json
from ..settings import DEFAULT_MODEL

FORMATS = ("auto", "json", "csv", "tsv", "lines")


def add_parser(sub: Any) -> None:
    rank = sub.add_parser("rank", help="rank candidates against a query and explain why (one map per candidate)")
    rank.add_argument("query")
    rank.add_argument(
        "--candidates",
        required=True,
        metavar="FILE",
        help="JSON list, CSV/TSV (see --column) or one per line; - for stdin",
    )
    rank.add_argument("--format", choices=FORMATS, default="auto", help="how to read --candidates (default: guess)")
    rank.add_argument("--column", default=None, metavar="NAME", help="the CSV/TSV column of the texts (default 'text')")
    rank.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"built-in name, folder or hub id (default {DEFAULT_MODEL})"
    )
    add_explain_options(rank)
    rank.add_argument("--top", type=int, default=None, metavar="K", help="show and explain the best K only")
    rank.add_argument("--scores-only", action="store_true", help="the ranking by the model's scores, no maps")
    rank.add_argument("--json", action="store_true", help="print one JSON object")
    rank.add_argument("--pos", action="store_true", help="add POS tags and words to the JSON")
    rank.add_argument("--words", action="store_true", help="word-level maps (subword cells summed)")
    rank.set_defaults(func=run_rank)


def read_candidates(source: str, fmt: str = "auto", column: str | None = None) -> list[str]:
    """The candidate texts of a file (or '-' for stdin) in one of FORMATS; InputError with what to fix."""
    if source == "-":
        raw = sys.stdin.read()
        name = ""
    else:
        path = Path(source)
        if not path.is_file():
            raise InputError(f"No candidates file at {source!r}: give a JSON, CSV or text file, or - for stdin.")
        try:
            raw = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise InputError(f"{source} is not UTF-8 text: save it as UTF-8.") from None
        name = path.name.lower()
    return parse_candidates(raw, fmt, column, name)


def parse_candidates(raw: str, fmt: str = "auto", column: str | None = None, name: str = "") -> list[str]:
    """Candidate texts from the text of a file (see read_candidates); `name` helps guess the format."""
    if fmt == "auto":
        if name.endswith(".json") or raw.lstrip().startswith("["):
            fmt = "json"
        elif name.endswith(".tsv"):
            fmt = "tsv"
        elif name.endswith(".csv") or column is not None:
            fmt = "csv"
        else:
            fmt = "lines"
    if fmt == "json":
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InputError(f"The candidates are not valid JSON ({exc.msg}, line {exc.lineno}).") from None
        if not isinstance(data, list):
            raise InputError('The candidates JSON must be a list: ["first text", "second text", ...].')
        key = column or "text"
        texts = []
        for index, item in enumerate(data):
            if isinstance(item, dict):
                item = item.get(key)
            if not isinstance(item, str):
                raise InputError(
                    f'Candidate {index} in the JSON is not a text (give strings, or objects with "{key}").'
                )
            texts.append(item)
        return texts
    if fmt in ("csv", "tsv"):
        rows = list(csv.reader(io.StringIO(raw), delimiter="\t" if fmt == "tsv" else ","))
        rows = [r for r in rows if any(cell.strip() for cell in r)]
        if not rows:
            return []
        header = [h.strip() for h in rows[0]]
        wanted = column or "text"
        if wanted in header:
            at = header.index(wanted)
        elif column is None and len(header) == 1:
            at = 0
        else:
            raise InputError(
                f"The {fmt.upper()} has no column {wanted!r} (its columns: {', '.join(map(repr, header))}): "
                "name the one with the texts with --column."
            )
        return [r[at] for r in rows[1:] if at < len(r) and r[at].strip()]
    return [line for line in raw.splitlines() if line.strip()]


def run_rank(args: argparse.Namespace) -> int:
    candidates = read_candidates(args.candidates, args.format, args.column)
    check_candidates(args.query, candidates, MAX_RANKED)  # every check before the model loads
    options = options_from_args(args)
    if args.top is not None and args.top < 1:
        raise InputError(f"--top must be 1 or more (got {args.top}).")
    if not args.scores_only and min(args.top or len(candidates), len(candidates)) > MAX_EXPLAINED:
        raise InputError(
            f"{len(candidates)} maps are more than the {MAX_EXPLAINED} one ranking computes: add --top K "
            f"(K <= {MAX_EXPLAINED}) to explain the best K, or --scores-only for the ranking alone."
        )
    model = load_model(args.model, device=options.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # collected in ranking.warnings and printed below
        if args.scores_only:
            ranking = rank_scores(model, args.query, candidates, options)
        else:
            pos = bool(args.pos or args.words)
            ranking = explain_ranking(model, args.query, candidates, options, top=args.top, pos=pos)
    for message in ranking.warnings:
        print(f"pairlens: warning: {message}", file=sys.stderr)
    shown = ranking.entries[: args.top] if args.top is not None else ranking.entries
    if args.json:
        payload = ranking_json(ranking, pos=args.pos, words=args.words, top=args.top)
        json.dump(payload, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0
    print(ranking_text(ranking, len(shown)))
    return 0


def ranking_json(ranking: Any, pos: bool, words: bool, top: int | None) -> dict[str, Any]:
    """Ranking.to_dict() with the best `top` entries, each map as `explain --json` gives it."""
    payload = ranking.to_dict()
    entries = ranking.entries[:top] if top is not None else ranking.entries
    payload["entries"] = [
        {
            **{k: v for k, v in entry.to_dict().items() if k != "attribution"},
            "attribution": None
            if entry.attribution is None
            else explain_json(entry.attribution, pos=pos, words=words, top=None),
        }
        for entry in entries
    ]
    payload["candidates"] = len(ranking.entries)
    if len(ranking.explained) >= 2:
        payload["contrast"] = ranking.contrast(0, 1).to_dict()
    return payload


def ranking_text(ranking: Any, shown: int) -> str:
    """Readable: one line per candidate (rank, score, text), the strongest pair of each map, why #1 over #2."""
    prompts = f"query prompt {ranking.query_prompt!r}, document prompt {ranking.document_prompt!r}"
    lines = [f"model      {ranking.model_name}  ({ranking.similarity}; {prompts})", f"query      {ranking.query}"]
    for entry in ranking.entries[:shown]:
        flag = "  [truncated]" if entry.truncated else ""
        lines.append(f"{entry.rank:>4}. {entry.score:+.4f}  {_cut(entry.text)}{flag}")
        if entry.attribution is not None:
            top = entry.attribution.top_pairs(1)
            if top:
                pair = top[0]
                lines.append(f"{'':>15}strongest pair: {pair.token_a} - {pair.token_b} {pair.value:+.4f}")
    if len(ranking.explained) >= 2 and ranking.entries[0].attribution and ranking.entries[1].attribution:
        contrast = ranking.contrast(0, 1)
        up, down = contrast.pulled_up(k=3)
        lines.append(f"why #1 over #2 (score gap {contrast.score_gap:+.4f}, maps {contrast.attribution_gap:+.4f}):")
        lines.append("  query tokens for #1: " + (", ".join(f"{t} {d:+.4f}" for t, d in up) or "none"))
        lines.append("  query tokens for #2: " + (", ".join(f"{t} {d:+.4f}" for t, d in down) or "none"))
    if shown < len(ranking.entries):
        lines.append(f"({len(ranking.entries) - shown} more candidates ranked below; --top shows more)")
    return "\n".join(lines)


def _cut(text: str, width: int = 90) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
