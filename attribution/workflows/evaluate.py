"""Spearman correlation between gold scores and a model's similarity, in either mode.

    python -m attribution evaluate --model NAME|PATH --data FILE [--mode exact|approximate] [--json]

Exact mode scores a pair with the shifted similarity cos(f(a) - f(r_a), f(b) - f(r_b)) (or the
dot product), where f is the pooled embedding before Normalize and r_x the reference input of x
(`core.tokens.reference_token_ids`: special tokens kept, pad elsewhere). Each distinct reference
is embedded once. Texts are batched by token length, so no padding is needed and each
embedding equals `LoadedModel.embed` of the text alone.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from ..core.options import MODES
from ..core.tokens import reference_token_ids
from ..errors import InputError
from ..jsonable import json_ready
from ..models import LoadedModel, load_model
from .data import FORMAT_NAMES, PairFile, read_pairs

EmbedFn = Callable[[torch.Tensor], torch.Tensor]  # (B, S) token ids, all attended -> (B, D) pooled, pre-Normalize


class TokenIds(NamedTuple):
    """One tokenized text: ids with special tokens and a flag per id for the special ones."""

    ids: tuple[int, ...]
    special: tuple[bool, ...]


@dataclass(frozen=True)
class EvalReport:
    """Result of `evaluate`: correlations are x 100, like the STS literature reports them."""

    model: str
    data: str
    format: str
    mode: str  # "exact" | "approximate"
    similarity: str  # "cos" | "dot"
    spearman: float  # Spearman rank correlation x 100
    pearson: float  # Pearson correlation x 100
    pairs: int  # pairs scored
    malformed: int  # rows of the file skipped as malformed
    undefined: int  # pairs left out because an embedding was zero (cosine undefined)
    invalid_utf8: int  # lines of the file with invalid UTF-8 (replaced, still scored)
    seconds: float  # embedding and scoring time, model loading excluded

    def to_dict(self) -> dict[str, Any]:
        return dict(json_ready(asdict(self)))


def token_ids(tokenizer: Any, texts: Sequence[str], max_tokens: int) -> list[TokenIds]:
    """Token ids (special tokens included, truncated as `tokens.encode_text` does) and special flags."""
    if not texts:
        return []
    encoded = tokenizer(list(texts), truncation=True, max_length=max_tokens, return_special_tokens_mask=True)
    return [
        TokenIds(tuple(int(i) for i in ids), tuple(bool(s) for s in mask))
        for ids, mask in zip(encoded["input_ids"], encoded["special_tokens_mask"], strict=True)
    ]


def embed_ids(embed: EmbedFn, id_lists: Sequence[Sequence[int]], batch_size: int = 64) -> torch.Tensor:
    """Pooled embeddings (N, D) float32 of token-id lists, batched by equal length (no padding)."""
    by_length: dict[int, list[int]] = {}
    for index, ids in enumerate(id_lists):
        by_length.setdefault(len(ids), []).append(index)
    out: torch.Tensor | None = None
    with torch.inference_mode():
        for indices in by_length.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                batch = torch.tensor([list(id_lists[i]) for i in chunk], dtype=torch.long)
                pooled = embed(batch).float().cpu()
                if out is None:
                    out = torch.zeros(len(id_lists), pooled.shape[-1])
                out[chunk] = pooled
    return out if out is not None else torch.zeros(0, 0)


def reference_rows(texts: Sequence[TokenIds], tokenizer: Any) -> tuple[list[tuple[int, ...]], list[int]]:
    """The distinct reference inputs of `texts` and, per text, the index of its reference."""
    refs: dict[tuple[int, ...], int] = {}
    rows = []
    for text in texts:
        ref = tuple(reference_token_ids(text.ids, text.special, tokenizer))
        rows.append(refs.setdefault(ref, len(refs)))
    return list(refs), rows


def pair_scores(
    embed: EmbedFn,
    tokenizer: Any,
    max_tokens: int,
    texts_a: Sequence[str],
    texts_b: Sequence[str],
    mode: str,
    similarity: str,
    batch_size: int = 64,
) -> np.ndarray:
    """Similarity of each pair, shape (P,) float64; NaN where a cosine is undefined (zero embedding)."""
    texts = token_ids(tokenizer, [*texts_a, *texts_b], max_tokens)
    emb = embed_ids(embed, [t.ids for t in texts], batch_size)
    if mode == "exact":
        refs, rows = reference_rows(texts, tokenizer)
        emb = emb - embed_ids(embed, refs, batch_size)[rows]
    emb64 = emb.double()
    a, b = emb64[: len(texts_a)], emb64[len(texts_a) :]
    dots = (a * b).sum(dim=1)
    if similarity == "dot":
        return dots.numpy()
    norms = a.norm(dim=1) * b.norm(dim=1)
    scores = torch.where(norms > 0, dots / norms.clamp_min(1e-300), torch.full_like(dots, math.nan))
    return scores.numpy()


def correlations(gold: Sequence[float], predicted: np.ndarray) -> tuple[float, float, int]:
    """(Spearman x 100, Pearson x 100, pairs left out as undefined) over pairs with a finite score."""
    from scipy.stats import pearsonr, spearmanr

    g = np.asarray(gold, dtype=np.float64)
    keep = np.isfinite(predicted)
    undefined = int((~keep).sum())
    g, p = g[keep], predicted[keep]
    if len(g) < 2 or np.ptp(g) == 0 or np.ptp(p) == 0:
        return math.nan, math.nan, undefined
    rho = float(spearmanr(g, p).statistic)
    r = float(pearsonr(g, p).statistic)
    return 100.0 * rho, 100.0 * r, undefined


def evaluate(
    model: LoadedModel | str, data: str | Path | PairFile, mode: str | None = None, batch_size: int = 64
) -> EvalReport:
    """Spearman x 100 of the model's similarity against the gold scores of `data`.

    mode: "exact" (shifted embeddings f(x) - f(r_x)), "approximate" (f), or None for the
    model's default (exact for fine-tuned exact models). Uses the model's own similarity.
    """
    pairs = data if isinstance(data, PairFile) else read_pairs(data)
    if not pairs.has_gold:
        raise InputError(
            f"'{pairs.path}' has no gold scores: evaluation needs a score for every pair "
            "(STS Benchmark column 5, a 'score' column, or a 'score' key)."
        )
    if isinstance(model, str):
        model = load_model(model)
    mode = model.default_mode if mode is None else mode
    if mode not in MODES:
        raise InputError(f"Unknown mode '{mode}': choose 'approximate' or 'exact'.")
    started = time.perf_counter()
    scores = pair_scores(
        model.embed_ids,
        model.tokenizer,
        model.max_tokens,
        [p.text_a for p in pairs.pairs],
        [p.text_b for p in pairs.pairs],
        mode,
        model.similarity,
        batch_size,
    )
    gold = [float(p.gold) for p in pairs.pairs if p.gold is not None]
    spearman, pearson, undefined = correlations(gold, scores)
    return EvalReport(
        model=model.name,
        data=str(pairs.path),
        format=pairs.format,
        mode=mode,
        similarity=model.similarity,
        spearman=spearman,
        pearson=pearson,
        pairs=len(pairs.pairs) - undefined,
        malformed=pairs.malformed,
        undefined=undefined,
        invalid_utf8=pairs.invalid_utf8,
        seconds=time.perf_counter() - started,
    )


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `evaluate` on an argparse subparsers object; dispatch to `run(args)`."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "evaluate",
        help="Spearman x 100 of a model's similarity against gold scores",
        description="Spearman correlation (x 100) between gold scores and the model's similarity.",
    )
    parser.add_argument("--model", required=True, help="built-in name, model folder or exact model name")
    parser.add_argument("--data", required=True, help="pairs with scores: STS Benchmark file, CSV/TSV, JSONL")
    parser.add_argument("--mode", choices=MODES, default=None, help="default: the model's (exact for exact models)")
    parser.add_argument("--batch-size", type=int, default=64, help="texts per forward pass (default 64)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """CLI entry: 0 on success; PairLensError propagates (cli.main: exit 2, one line)."""
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1 (got {args.batch_size}).")
    pairs = read_pairs(args.data)
    report = evaluate(args.model, pairs, mode=args.mode, batch_size=args.batch_size)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    print(f"model       {report.model} (mode {report.mode}, similarity {report.similarity})")
    print(f"data        {report.data} ({FORMAT_NAMES[report.format]})")
    print(f"pairs       {report.pairs} scored, {report.malformed} malformed rows skipped", end="")
    print(f", {report.undefined} undefined" if report.undefined else "")
    if pairs.malformed_examples:
        print(f"malformed   {'; '.join(pairs.malformed_examples)}")
    if report.invalid_utf8:
        print(f"note        {report.invalid_utf8} lines had invalid UTF-8 (replaced by U+FFFD)")
    print(f"spearman    {report.spearman:.2f}")
    print(f"pearson     {report.pearson:.2f}")
    print(f"seconds     {report.seconds:.1f}")
    return 0
