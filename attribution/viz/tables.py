"""Tables and panels of an Attribution as DataFrames or escaped HTML (no streamlit here)."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..result import Attribution
from ..settings import DEFAULT_TOLERANCE
from .heatmap import align_word_matrices, short_model_name, similarity_label

TOP_COLUMNS = ["rank", "text A", "text B", "POS A", "POS B", "value", "share", "cumulative share"]


def top_pairs_frame(result: Attribution, k: int) -> pd.DataFrame:
    """The k strongest cells (by |value|), strongest first; shares are fractions of the sum."""
    pairs = result.top_pairs(max(0, int(k)))
    rows = [
        {
            "rank": rank,
            "text A": pair.token_a,
            "text B": pair.token_b,
            "POS A": pair.pos_a or "",
            "POS B": pair.pos_b or "",
            "value": pair.value,
            "share": pair.share,
            "cumulative share": pair.cumulative_share,
        }
        for rank, pair in enumerate(pairs, start=1)
    ]
    return pd.DataFrame(rows, columns=TOP_COLUMNS)


def top_share_sentence(result: Attribution, k: int) -> str:
    """'the top k pairs carry X % of the attribution sum' ('' when k is 0)."""
    pairs = result.top_pairs(max(0, int(k)))
    if not pairs:
        return ""
    share = pairs[-1].cumulative_share
    carried = f"{100 * share:.1f} %" if math.isfinite(share) else "an undefined part (the sum is 0)"
    subject = "the top pair carries" if len(pairs) == 1 else f"the top {len(pairs)} pairs carry"
    return f"{subject} {carried} of the attribution sum"


def difference_frame(first: Attribution, second: Attribution, k: int = 10) -> pd.DataFrame:
    """The k word pairs whose contributions differ most between two word-level results.

    Columns: text A, text B, each model's value (named after the model), difference
    (first − second); word pairs missing in either model are left out.
    """
    rows, cols, m_1, m_2 = align_word_matrices(first, second)
    diff = m_1 - m_2
    words_a, words_b = first.a.words or [], first.b.words or []
    name_1, name_2 = short_model_name(first.model_name), short_model_name(second.model_name)
    if name_1 == name_2:
        name_1, name_2 = f"{name_1} (1)", f"{name_2} (2)"
    finite = np.argwhere(np.isfinite(diff))
    order = sorted(finite.tolist(), key=lambda ij: (-abs(diff[ij[0], ij[1]]), ij[0], ij[1]))[: max(0, int(k))]
    records = [
        {
            "text A": words_a[rows[i]] if rows[i] < len(words_a) else f"word {rows[i]}",
            "text B": words_b[cols[j]] if cols[j] < len(words_b) else f"word {cols[j]}",
            name_1: m_1[i, j],
            name_2: m_2[i, j],
            "difference": diff[i, j],
        }
        for i, j in order
    ]
    return pd.DataFrame(records, columns=["text A", "text B", name_1, name_2, "difference"])


def matrix_frame(result: Attribution) -> pd.DataFrame:
    """The matrix with 'index:token' labels (unique even for repeated tokens), for CSV export."""
    index = [f"{i}:{t}" for i, t in enumerate(result.a.tokens)]
    columns = [f"{j}:{t}" for j, t in enumerate(result.b.tokens)]
    frame = pd.DataFrame(result.matrix, index=index, columns=columns)
    frame.index.name = "text A \\ text B"
    return frame


@dataclass(frozen=True)
class Fact:
    """One line of the score panel: label, formatted value, explanation, warning flag."""

    label: str
    value: str
    help: str
    warn: bool = False


def tolerance_of(result: Attribution) -> float:
    """The tolerance the integration error is judged against (auto's, else the default)."""
    return result.tolerance if result.tolerance is not None else DEFAULT_TOLERANCE


def error_is_high(result: Attribution) -> bool:
    """True when the relative integration error exceeds the tolerance (or auto did not converge)."""
    relative = result.relative_error
    return (not result.converged) or not math.isfinite(relative) or relative > tolerance_of(result)


def _number(value: float, digits: int = 4) -> str:
    return f"{value:+.{digits}f}" if math.isfinite(value) else "n/a"


def score_facts(result: Attribution) -> list[Fact]:
    """The score panel's lines below the similarity itself."""
    relative = result.relative_error
    rel_text = f"{100 * relative:.2g} %" if math.isfinite(relative) else "n/a"
    steps = f"{result.steps} · {result.rule}" + (" (auto)" if result.tolerance is not None else "")
    return [
        Fact("attribution sum", _number(result.attribution_sum), "sum of all cells of the map"),
        Fact(
            "reference terms",
            _number(result.reference_terms),
            "score − target: the part of the score that token pairs cannot explain",
        ),
        Fact(
            "integration error",
            f"{_number(result.integration_error, 5)} ({rel_text})",
            f"attribution sum − target; tolerance {tolerance_of(result):g} of |target|",
            warn=error_is_high(result),
        ),
        Fact("layer", f"{result.layer} of {result.num_layers}", "hidden states at the input of this layer"),
        Fact("steps", steps, "quadrature nodes along the reference-to-input path"),
        Fact("mode", result.mode, "approximate: f; exact: f(x) − f(reference)"),
        Fact("compute time", f"{result.seconds:.2f} s", "attribution only, model loading excluded"),
    ]


def score_card_html(result: Attribution) -> str:
    """The score panel as HTML (classes styled by assets/style.css; all text escaped)."""
    lines = []
    for fact in score_facts(result):
        cls = " class='pl-warn'" if fact.warn else ""
        lines.append(
            f"<div class='pl-fact' title='{html.escape(fact.help)}'><dt>{html.escape(fact.label)}</dt>"
            f"<dd{cls}>{html.escape(fact.value)}</dd></div>"
        )
    return (
        "<div class='pl-card'>"
        f"<div class='pl-score'><span class='pl-score-label'>{html.escape(similarity_label(result))} similarity</span>"
        f"<span class='pl-score-value'>{result.score:.3f}</span></div>"
        f"<dl class='pl-facts'>{''.join(lines)}</dl>"
        "</div>"
    )
