"""Corpus statistics over many `Attribution`s, computed by streaming accumulators.

Nothing here keeps a matrix: `pair_stats` reduces one result to a few dozen numbers
(`PairStats`), `CorpusAccumulator` keeps those numbers (O(pairs x ~40) floats, needed for
quartiles and rank correlations) plus corpus-wide POS sums (O(labels^2)), and
`ConvergenceAccumulator` keeps one relative error per (pair, layer, rule, N).

Definitions (all signed, in the units of the score, on the token-level matrix with special
tokens included):

- top-k share of a pair: the signed sum of its k cells with the largest |value| divided by
  attribution_sum (`TopPair.cumulative_share`); a pair with fewer than k cells uses all.
- cells needed for level q: `Attribution.coverage` (smallest k whose top-k share reaches q),
  as a count and as a fraction of the pair's cells; None (left out of quantiles, counted in
  `unreached`) when no k reaches q.
- tokens needed for level q: the distinct rows (tokens of A) and columns (tokens of B) that
  those cells touch, divided by rows + columns. `content_tokens` is the same counting only
  non-special tokens, over the non-special tokens.
- random baseline for tokens needed: the expected share of rows + columns touched by the same
  number of cells drawn uniformly at random without replacement (what the count alone implies).
- POS share (pooled): every cell is credited half to its row token's UPOS and half to its
  column token's UPOS; share[p] = sum over pairs of that credit / sum over pairs of
  attribution_sum. token_share[p] = tokens of A and B tagged p / all tokens. lift = share /
  token_share (> 1: the UPOS carries more than its share of tokens).
- POS x POS share: sum over pairs of the cells with row UPOS p and column UPOS q / sum over
  pairs of attribution_sum; cell_share[p][q]: fraction of all cells with those tags.
- prediction error of a pair with gold g: |score - g / gold_scale| (gold_scale 5 for STS-B).
"""

from __future__ import annotations

import csv
import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...jsonable import json_ready
from ...result import Attribution
from ...result.linguistics import UPOS_ORDER
from ...result.views import ratio, strength_order
from ..evaluate import correlations
from .store import CONVERGENCE, PAIRS, PLOTS, REPORT, RESULTS, read_lines, replacing

log = logging.getLogger(__name__)

TOP_K = 20
LEVELS = (0.5, 0.8, 0.9)


@dataclass(frozen=True)
class PairStats:
    """The numbers one pair contributes to the corpus summary (no matrix, no text).

    topk_share: length TOP_K, share of attribution_sum carried by the k strongest cells,
    k = 1..TOP_K. cells_needed / cells_fraction / tokens_share / content_tokens_share: one
    entry per LEVELS value, None where the level is never reached.
    """

    row: int
    key: str
    gold: float | None
    score: float
    target: float
    attribution_sum: float
    relative_error: float
    steps: int
    converged: bool
    seconds: float
    cells: int
    tokens: int  # rows + columns of the matrix
    topk_share: list[float]
    cells_needed: list[int | None]
    cells_fraction: list[float | None]
    tokens_share: list[float | None]
    content_tokens_share: list[float | None]
    random_tokens_share: list[float | None]  # expected share for as many random cells

    def to_row(self) -> dict[str, Any]:
        """Flat, CSV-ready columns (levels as suffixes _50, _80, _90; top-k as top1, top5, top10)."""
        out: dict[str, Any] = {k: v for k, v in asdict(self).items() if not isinstance(v, list) and k not in ("key",)}
        out["key"] = self.key
        for k in (1, 5, 10):
            out[f"top{k}_share"] = self.topk_share[k - 1]
        columns = (self.cells_needed, self.cells_fraction, self.tokens_share, self.content_tokens_share)
        for level, cells, frac, tok, content, rand in zip(LEVELS, *columns, self.random_tokens_share, strict=True):
            suffix = f"{round(100 * level)}"
            out[f"cells_{suffix}"] = cells
            out[f"cells_fraction_{suffix}"] = frac
            out[f"tokens_share_{suffix}"] = tok
            out[f"content_tokens_share_{suffix}"] = content
            out[f"random_tokens_share_{suffix}"] = rand
        return out


def topk_shares(result: Attribution, k_max: int = TOP_K) -> list[float]:
    """Share of attribution_sum carried by the k strongest cells, k = 1..k_max (NaN if the sum is 0)."""
    matrix = np.asarray(result.matrix, dtype=np.float64)
    values = matrix.ravel()[strength_order(matrix)]
    values = np.where(np.isnan(values), 0.0, values)
    cumulative = np.cumsum(values)[:k_max]
    if cumulative.size == 0:
        return [math.nan] * k_max
    padded = np.concatenate([cumulative, np.full(k_max - cumulative.size, cumulative[-1])])
    total = result.attribution_sum
    if total == 0 or not math.isfinite(total):
        return [math.nan] * k_max
    return [float(x) for x in padded / total]


def tokens_touched(result: Attribution, n_cells: int) -> tuple[float, float | None]:
    """(share of all rows + columns, share of non-special ones) touched by the n strongest cells.

    The second is None when the matrix has no non-special token.
    """
    matrix = np.asarray(result.matrix, dtype=np.float64)
    n_rows, n_cols = matrix.shape
    order = strength_order(matrix)[:n_cells]
    rows, cols = np.unique(order // n_cols), np.unique(order % n_cols)
    share = (rows.size + cols.size) / max(n_rows + n_cols, 1)
    special_a = np.array(result.a.special_or_prompt(), dtype=bool)  # special and prompt tokens are not content
    special_b = np.array(result.b.special_or_prompt(), dtype=bool)
    content = int((~special_a).sum() + (~special_b).sum())
    if content == 0:
        return share, None
    touched = int((~special_a[rows]).sum() + (~special_b[cols]).sum())
    return share, touched / content


def random_tokens_touched(n_rows: int, n_cols: int, n_cells: int) -> float:
    """Expected share of the n_rows + n_cols tokens touched by n_cells distinct cells drawn at random.

    A row is missed when all cells come from the other (n_rows - 1) * n_cols cells:
    P = C(N - n_cols, k) / C(N, k) with N = n_rows * n_cols (columns alike).
    """
    total = n_rows * n_cols
    k = min(max(n_cells, 0), total)

    def missed(other: int) -> float:
        if k > other:
            return 0.0
        log_p = (
            math.lgamma(other + 1) - math.lgamma(other - k + 1) - math.lgamma(total + 1) + math.lgamma(total - k + 1)
        )
        return math.exp(log_p)

    touched = n_rows * (1 - missed(total - n_cols)) + n_cols * (1 - missed(total - n_rows))
    return touched / max(n_rows + n_cols, 1)


def pair_stats(result: Attribution, row: int, key: str, gold: float | None) -> PairStats:
    """Reduce one token-level result to its `PairStats`."""
    coverage = result.coverage(LEVELS)
    n_rows, n_cols = result.shape
    tokens_share: list[float | None] = []
    content_share: list[float | None] = []
    random_share: list[float | None] = []
    for level in coverage:
        if level.pairs is None:
            tokens_share.append(None)
            content_share.append(None)
            random_share.append(None)
        else:
            share, content = tokens_touched(result, level.pairs)
            tokens_share.append(share)
            content_share.append(content)
            random_share.append(random_tokens_touched(n_rows, n_cols, level.pairs))
    return PairStats(
        row=row,
        key=key,
        gold=gold,
        score=result.score,
        target=result.target,
        attribution_sum=result.attribution_sum,
        relative_error=result.relative_error,
        steps=result.steps,
        converged=result.converged,
        seconds=result.seconds,
        cells=n_rows * n_cols,
        tokens=n_rows + n_cols,
        topk_share=topk_shares(result),
        cells_needed=[c.pairs for c in coverage],
        cells_fraction=[c.fraction for c in coverage],
        tokens_share=tokens_share,
        content_tokens_share=content_share,
        random_tokens_share=random_share,
    )


def _order_labels(labels: Iterable[str]) -> list[str]:
    present = set(labels)
    return [lab for lab in UPOS_ORDER if lab in present] + sorted(present.difference(UPOS_ORDER))


@dataclass
class PosAccumulator:
    """Corpus-wide attribution and token counts per UPOS and per UPOS pair (score units)."""

    credit: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # half row + half column sums
    tokens: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    pair_sum: dict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    pair_cells: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    total: float = 0.0  # sum of attribution_sum over the pairs added
    pairs: int = 0

    def add(self, result: Attribution) -> bool:
        """Add one token-level result; False (nothing added) when it has no POS tags."""
        if result.a.pos is None or result.b.pos is None:
            return False
        summary = result.pos_summary()
        for p, label in enumerate(summary.labels_a):
            self.credit[label] += 0.5 * float(summary.matrix[p].sum())
            self.tokens[label] += summary.count_a[p]
        for q, label in enumerate(summary.labels_b):
            self.credit[label] += 0.5 * float(summary.matrix[:, q].sum())
            self.tokens[label] += summary.count_b[q]
        for p, la in enumerate(summary.labels_a):
            for q, lb in enumerate(summary.labels_b):
                self.pair_sum[(la, lb)] += float(summary.matrix[p, q])
                self.pair_cells[(la, lb)] += summary.count_a[p] * summary.count_b[q]
        self.total += summary.total
        self.pairs += 1
        return True

    def summary(self) -> dict[str, Any]:
        """Pooled shares (see the module docstring); empty lists when no pair had POS tags."""
        labels = _order_labels(self.tokens)
        all_tokens = sum(self.tokens.values())
        all_cells = sum(self.pair_cells.values())
        share = [_ratio(self.credit[lab], self.total) for lab in labels]
        token_share = [_ratio(self.tokens[lab], all_tokens) for lab in labels]
        rows = _order_labels(a for a, _ in self.pair_cells)
        cols = _order_labels(b for _, b in self.pair_cells)
        return {
            "pairs": self.pairs,
            "labels": labels,
            "attribution": [self.credit[lab] for lab in labels],
            "tokens": [self.tokens[lab] for lab in labels],
            "attribution_share": share,
            "token_share": token_share,
            "lift": [
                _ratio(s, t) if s is not None and t is not None else None
                for s, t in zip(share, token_share, strict=True)
            ],
            "matrix": {
                "labels_a": rows,
                "labels_b": cols,
                "share": [[_ratio(self.pair_sum.get((a, b), 0.0), self.total) for b in cols] for a in rows],
                "cell_share": [[_ratio(self.pair_cells.get((a, b), 0), all_cells) for b in cols] for a in rows],
            },
        }


def _ratio(part: float, whole: float) -> float | None:
    """ratio() for the summary's JSON: None where it is undefined."""
    return json_ready(ratio(part, whole))


def quantiles(values: Sequence[float | None]) -> dict[str, float | None]:
    """mean, q1, median, q3, min, max and n of the finite values (None when there are none)."""
    finite = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if finite.size == 0:
        return {"n": 0, "mean": None, "q1": None, "median": None, "q3": None, "min": None, "max": None}
    q1, median, q3 = np.quantile(finite, [0.25, 0.5, 0.75])
    return {
        "n": int(finite.size),
        "mean": float(finite.mean()),
        "q1": float(q1),
        "median": float(median),
        "q3": float(q3),
        "min": float(finite.min()),
        "max": float(finite.max()),
    }


def _columns(stats: list[PairStats], name: str, width: int) -> list[list[float | None]]:
    """Transpose one list-valued field: out[i] = the i-th entries over all pairs."""
    return [[getattr(s, name)[i] for s in stats] for i in range(width)]


def _per_index(columns: list[list[float | None]]) -> dict[str, list[float | None]]:
    """{"mean": [...], "q1": [...], ...}: quantiles of each column, as parallel lists."""
    rows = [quantiles(c) for c in columns]
    return {key: [r[key] for r in rows] for key in ("n", "mean", "q1", "median", "q3")}


def _corr(x: Sequence[float | None], y: Sequence[float]) -> dict[str, float | None]:
    """Spearman and Pearson (x 1, not x 100) over pairs where both values are finite."""
    xs = np.array([math.nan if v is None else v for v in x], dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    keep = np.isfinite(xs) & np.isfinite(ys)
    rho, r, _ = correlations(list(xs[keep]), ys[keep])
    clean = lambda v: None if not math.isfinite(v) else v / 100.0  # noqa: E731
    return {"spearman": clean(rho), "pearson": clean(r), "n": int(keep.sum())}


@dataclass
class CorpusAccumulator:
    """Feed it one result at a time (`add`), then read `summary()`."""

    gold_scale: float | None = None  # gold / gold_scale is comparable to the score; None: no accuracy split
    stats: list[PairStats] = field(default_factory=list)
    pos: PosAccumulator = field(default_factory=PosAccumulator)
    failed: int = 0
    failures: list[str] = field(default_factory=list)  # the messages of the first few rows
    no_pos: int = 0
    warnings: int = 0
    _failure_rows: list[tuple[int, str]] = field(default_factory=list, repr=False)

    def add(self, result: Attribution, row: int, key: str, gold: float | None) -> PairStats:
        """Reduce and keep one result (token level); returns its PairStats."""
        stats = pair_stats(result, row, key, gold)
        self.stats.append(stats)
        if not self.pos.add(result):
            self.no_pos += 1
        self.warnings += len(result.warnings)
        return stats

    def add_failure(self, row: int, message: str) -> None:
        """Count a refused pair; keep the messages of the 5 lowest rows (the same whatever order they come in)."""
        self.failed += 1
        self._failure_rows.append((row, message))
        self._failure_rows.sort(key=lambda item: item[0])
        del self._failure_rows[5:]
        self.failures = [f"line {r}: {m}" for r, m in self._failure_rows]

    def prediction_error(self, s: PairStats) -> float | None:
        """|score - gold / gold_scale|, None without gold or scale."""
        if s.gold is None or not self.gold_scale:
            return None
        return abs(s.score - s.gold / self.gold_scale)

    def summary(self) -> dict[str, Any]:
        """Everything summary.json reports about the results (see the module docstring)."""
        stats = self.stats
        n_levels = len(LEVELS)
        out: dict[str, Any] = {
            "pairs": len(stats),
            "failed": self.failed,
            "failures": self.failures,
            "pairs_without_pos": self.no_pos,
            "engine_warnings": self.warnings,
            "score": quantiles([s.score for s in stats]),
            "attribution_sum": quantiles([s.attribution_sum for s in stats]),
            "relative_error": quantiles([s.relative_error for s in stats]),
            "steps": {
                "counts": {str(n): sum(1 for s in stats if s.steps == n) for n in sorted({s.steps for s in stats})},
                **quantiles([float(s.steps) for s in stats]),
            },
            "not_converged": sum(1 for s in stats if not s.converged),
            "seconds_per_pair": quantiles([s.seconds for s in stats]),
            "cells": quantiles([float(s.cells) for s in stats]),
            "top_k_share": {"k": list(range(1, TOP_K + 1)), **_per_index(_columns(stats, "topk_share", TOP_K))},
            "coverage": {
                "levels": list(LEVELS),
                "cells": _per_index(_columns(stats, "cells_needed", n_levels)),
                "cells_fraction": _per_index(_columns(stats, "cells_fraction", n_levels)),
                "tokens_share": _per_index(_columns(stats, "tokens_share", n_levels)),
                "content_tokens_share": _per_index(_columns(stats, "content_tokens_share", n_levels)),
                "random_tokens_share": _per_index(_columns(stats, "random_tokens_share", n_levels)),
                "unreached": [sum(1 for s in stats if s.cells_needed[i] is None) for i in range(n_levels)],
            },
            "pos": self.pos.summary(),
            "correlation": self.correlation(),
            "accuracy": self.accuracy(),
        }
        return out

    def correlation(self) -> dict[str, Any]:
        """Spearman/Pearson of score and of attribution_sum with gold (None without gold)."""
        with_gold = [s for s in self.stats if s.gold is not None]
        if not with_gold:
            return {"gold": False, "n": 0, "score_vs_gold": None, "sum_vs_gold": None}
        gold = [float(s.gold) for s in with_gold if s.gold is not None]
        return {
            "gold": True,
            "n": len(with_gold),
            "score_vs_gold": _corr([s.score for s in with_gold], gold),
            "sum_vs_gold": _corr([s.attribution_sum for s in with_gold], gold),
        }

    def accuracy(self) -> dict[str, Any] | None:
        """Coverage of the most and least accurate quarters of the pairs (by prediction error)."""
        scored = [(e, s) for s in self.stats if (e := self.prediction_error(s)) is not None]
        if len(scored) < 4:
            return None
        scored.sort(key=lambda item: (item[0], item[1].row))  # ties by row: the same in any record order
        quarter = len(scored) // 4
        groups = {"most_accurate": scored[:quarter], "least_accurate": scored[-quarter:]}
        out: dict[str, Any] = {
            "gold_scale": self.gold_scale,
            "prediction_error": quantiles([e for e, _ in scored]),
            "levels": list(LEVELS),
        }
        for name, group in groups.items():
            members = [s for _, s in group]
            out[name] = {
                "pairs": len(members),
                "prediction_error": quantiles([e for e, _ in group]),
                "cells_fraction": _per_index(_columns(members, "cells_fraction", len(LEVELS))),
                "tokens_share": _per_index(_columns(members, "tokens_share", len(LEVELS))),
                "content_tokens_share": _per_index(_columns(members, "content_tokens_share", len(LEVELS))),
                "random_tokens_share": _per_index(_columns(members, "random_tokens_share", len(LEVELS))),
                "top1_share": quantiles([s.topk_share[0] for s in members]),
            }
        return out


@dataclass
class ConvergenceAccumulator:
    """Relative integration errors by (layer, rule, N) over the convergence subset."""

    errors: dict[tuple[int, str, int], list[float]] = field(default_factory=lambda: defaultdict(list))
    pairs: int = 0

    def add(self, layer: int, rule: str, errors: Sequence[tuple[int, float]]) -> None:
        """One pair's (N, |relative error|) list for one layer and rule."""
        for n, error in errors:
            self.errors[(layer, rule, int(n))].append(abs(error))

    def summary(self) -> dict[str, Any]:
        """{"layers", "rules", "steps", "curves": [{layer, rule, steps, median, q1, q3, n}], ...}."""
        layers = sorted({k[0] for k in self.errors})
        rules = [r for r in ("gauss-legendre", "midpoint", "riemann-right") if any(k[1] == r for k in self.errors)]
        steps = sorted({k[2] for k in self.errors})
        curves = []
        for layer in layers:
            for rule in rules:
                rows = [quantiles(self.errors.get((layer, rule, n), [])) for n in steps]
                curves.append(
                    {
                        "layer": layer,
                        "rule": rule,
                        "steps": steps,
                        **{key: [r[key] for r in rows] for key in ("median", "q1", "q3", "n")},
                        "steps_to_1e-3": _first_below(steps, [r["median"] for r in rows], 1e-3),
                    }
                )
        return {"pairs": self.pairs, "layers": layers, "rules": rules, "steps": steps, "curves": curves}


def _first_below(steps: Sequence[int], medians: Sequence[float | None], threshold: float) -> int | None:
    """The smallest N from which on the median error stays at or below threshold (None if never)."""
    found: int | None = None
    for n, m in zip(reversed(steps), reversed(medians), strict=True):
        if m is None or m > threshold:
            break
        found = n
    return found


# ----------------------------------------------------------------------------- the run folder's summary


PAIR_COLUMNS = (
    "row", "key", "gold", "score", "target", "attribution_sum", "relative_error", "prediction_error", "steps",
    "converged", "seconds", "cells", "tokens", "top1_share", "top5_share", "top10_share",
    *(f"{name}_{round(100 * q)}" for q in LEVELS
      for name in ("cells", "cells_fraction", "tokens_share", "content_tokens_share", "random_tokens_share")),
    "text_a", "text_b", "error",
)  # fmt: skip


def summarize(
    out: Path, keys: set[str] | None, gold_scale: float | None, convergence_keys: set[str] | None = None
) -> dict[str, Any]:
    """Stream attributions.jsonl (and convergence.jsonl) into summary numbers; write pairs.csv.

    keys: only records with these keys count (None: all). The first record of a key wins.
    """
    acc = CorpusAccumulator(gold_scale=gold_scale)
    seen: set[str] = set()
    bad_lines = stale = 0
    with replacing(out / PAIRS) as handle:
        writer = csv.DictWriter(handle, fieldnames=PAIR_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for obj in read_lines(out / RESULTS):
            if obj is None or not isinstance(obj.get("key"), str):
                bad_lines += 1
                continue
            key = obj["key"]
            if keys is not None and key not in keys:
                stale += 1
                continue
            if key in seen:
                continue
            seen.add(key)
            gold = obj.get("gold")
            row = int(obj.get("row", 0))
            if "result" not in obj:
                message = str(obj.get("error", "no result"))
                acc.add_failure(row, message)
                writer.writerow({"row": row, "key": key, "gold": gold, "error": message})
                continue
            try:
                result = Attribution.from_dict(obj["result"])
            except (KeyError, TypeError, ValueError):
                bad_lines += 1
                seen.discard(key)
                continue
            stats = acc.add(result, row, key, gold)
            writer.writerow(_pair_row(acc, stats, result))
    summary = acc.summary()
    summary["bad_lines"] = bad_lines
    summary["records_outside_selection"] = stale
    summary["convergence"] = summarize_convergence(out / CONVERGENCE, convergence_keys)
    return summary


def _pair_row(acc: CorpusAccumulator, stats: PairStats, result: Attribution) -> dict[str, Any]:
    row = stats.to_row()
    row["prediction_error"] = acc.prediction_error(stats)
    row["text_a"] = result.a.text
    row["text_b"] = result.b.text
    return {k: ("" if v is None else v) for k, v in row.items()}


def summarize_convergence(path: Path, keys: set[str] | None) -> dict[str, Any]:
    """Median relative error against N per (layer, rule) over the convergence records."""
    acc = ConvergenceAccumulator()
    pairs: set[str] = set()
    failed = 0
    for obj in read_lines(path):
        if obj is None or (keys is not None and obj.get("key") not in keys):
            continue
        if "errors" not in obj:
            failed += 1
            continue
        pairs.add(str(obj["key"]))
        for rule, curve in obj["errors"].items():
            acc.add(int(obj["layer"]), rule, [(int(n), math.inf if e is None else float(e)) for n, e in curve])
    acc.pairs = len(pairs)
    return {**acc.summary(), "failed": failed}


def read_pair_table(out: Path) -> dict[str, list[Any]]:
    """The columns of pairs.csv the plots need, as floats (NaN where empty)."""
    columns: dict[str, list[Any]] = {"row": [], "gold": [], "score": [], "attribution_sum": [], "relative_error": []}
    path = out / PAIRS
    if not path.exists():
        return columns
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("error"):
                continue
            for name in columns:
                raw = row.get(name, "")
                columns[name].append(float(raw) if raw not in ("", None) else math.nan)
    return columns


def write_plots(summary: dict[str, Any], out: Path, *, png: bool) -> dict[str, Any]:
    """report.html with every figure; plots/NAME.png when kaleido can render. Returns what was written."""
    from ...viz.corpus_figures import corpus_figures, report_html  # plotly: only when a run writes its plots

    figures = corpus_figures(json_ready(summary), read_pair_table(out))
    (out / REPORT).write_text(report_html(figures, title=f"PairLens corpus: {out.name}"), encoding="utf-8")
    written: list[str] = []
    note: str | None = None
    if not png:
        note = "PNG export skipped (--no-png)."
    else:
        folder = out / PLOTS
        folder.mkdir(exist_ok=True)
        try:
            import plotly.io as pio

            names = list(figures)
            paths = [folder / f"{name}.png" for name in names]
            pio.write_images(
                [figures[n] for n in names],
                paths,
                width=[int(figures[n].layout.width or 900) for n in names],
                height=[int(figures[n].layout.height or 500) for n in names],
                scale=2,
            )
            written = [f"{PLOTS}/{p.name}" for p in paths if p.exists()]
        except Exception as exc:  # kaleido missing, no Chrome, or a renderer failure: HTML still works
            log.info("PNG export skipped", exc_info=True)
            note = f"PNG export skipped: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip()
    return {"html": REPORT, "png": written, "note": note, "figures": list(figures)}
