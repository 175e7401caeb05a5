"""Tables and panels of an Attribution as DataFrames or escaped HTML (no streamlit here)."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..result import Attribution
from ..result.explained import explain_score, percent
from ..settings import DEFAULT_TOLERANCE
from .heatmap import difference_matrices, short_model_name, similarity_label

# Key columns first, so a narrow table still shows the pair and its value.
TOP_COLUMNS = ["rank", "text A", "text B", "value", "share", "cumulative share", "POS A", "POS B"]


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


def top_pairs_html(result: Attribution, k: int, show_pos: bool = False) -> str:
    """The k strongest cells as an HTML table (tokens escaped; share and cumulative share in % of the sum).

    A plain table, not a data grid: it draws with the page instead of loading a grid component first.
    POS columns only with `show_pos` and when the result has tags.
    """
    frame = top_pairs_frame(result, k)
    if frame.empty:
        return ""
    with_pos = show_pos and bool(frame["POS A"].astype(bool).any())
    heads = ["#", "text A", "text B", *(["POS A", "POS B"] if with_pos else []), "value", "share", "cumul."]
    numeric = {"#", "value", "share", "cumul."}
    head = "".join(f"<th scope='col' class='{'pl-num' if h in numeric else ''}'>{h}</th>" for h in heads)

    def share(value: float) -> str:
        return f"{100 * value:.1f} %" if math.isfinite(value) else "–"

    body = []
    for row in frame.to_dict("records"):
        cells = [f"<td class='pl-num'>{row['rank']}</td>"]
        cells += [f"<td class='pl-tok'>{html.escape(str(row[c]))}</td>" for c in ("text A", "text B")]
        if with_pos:
            cells += [f"<td class='pl-pos'>{html.escape(str(row[c]))}</td>" for c in ("POS A", "POS B")]
        cells += [f"<td class='pl-num'>{row['value']:+.4f}</td>", f"<td class='pl-num'>{share(row['share'])}</td>"]
        cells.append(f"<td class='pl-num'>{share(row['cumulative share'])}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f"<div class='pl-top-table' role='region' aria-label='top pairs' tabindex='0'><table>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def top_share_sentence(result: Attribution, k: int) -> str:
    """'the top k pairs carry X % of the attribution sum' ('' when k is 0)."""
    pairs = result.top_pairs(max(0, int(k)))
    if not pairs:
        return ""
    share = pairs[-1].cumulative_share
    carried = f"{100 * share:.1f} %" if math.isfinite(share) else "an undefined part (the sum is 0)"
    subject = "the top pair carries" if len(pairs) == 1 else f"the top {len(pairs)} pairs carry"
    return f"{subject} {carried} of the attribution sum"


def difference_frame(first: Attribution, second: Attribution, k: int = 10, mode: str = "raw") -> pd.DataFrame:
    """The k word pairs whose contributions differ most between two word-level results.

    Columns: text A, text B, difference (first − second), then each model's value (named
    after the model); mode "share": every number is a fraction of that model's own sum.
    Word pairs missing in either model are left out.
    """
    rows, cols, m_1, m_2 = difference_matrices(first, second, mode)
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
            "difference": diff[i, j],
            name_1: m_1[i, j],
            name_2: m_2[i, j],
        }
        for i, j in order
    ]
    return pd.DataFrame(records, columns=["text A", "text B", "difference", name_1, name_2])


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
    """The score panel's lines beside the similarity and its decomposition."""
    relative = result.relative_error
    rel_text = f"{100 * relative:.2g} %" if math.isfinite(relative) else "n/a"
    steps = f"{result.steps} · {result.rule}" + (" (auto)" if result.tolerance is not None else "")
    return [
        Fact("attribution sum", _number(result.attribution_sum), "sum of all cells of the map"),
        Fact(
            "reference terms",
            _number(result.reference_terms),
            "explained score − target: the part of the score that token pairs cannot explain",
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
        *prompt_facts(result),
        Fact("compute time", f"{result.seconds:.2f} s", "attribution only, model loading excluded"),
    ]


def prompt_facts(result: Attribution) -> list[Fact]:
    """A "prompts" line when a prompt was prepended to either text (from the result's run_options):
    one quoted prompt when both texts had the same, else A's and B's ("none" for no prompt)."""
    options = result.run_options or {}
    prompt_a = options.get("prompt") or ""
    prompt_b = prompt_a if options.get("prompt_b") is None else options["prompt_b"]
    if not prompt_a and not prompt_b:
        return []
    shown = [repr(p if len(p) <= 40 else p[:39] + "…") if p else "none" for p in (prompt_a, prompt_b)]
    value = shown[0] if prompt_a == prompt_b else f"A {shown[0]} · B {shown[1]}"
    return [Fact("prompts", value, "prepended to the texts before encoding, as sentence-transformers does")]


@dataclass(frozen=True)
class Term:
    """One bar of the decomposition: label, value in score units, kind ("part" or "total")."""

    label: str
    value: float
    help: str
    kind: str = "part"


def decomposition(result: Attribution) -> list[Term]:
    """The explained score as a sum: cells of the map + reference terms − integration error = score.

    score − target = reference terms and target = attribution sum − integration error, so the
    parts add up to the explained score exactly (the last, "total", term). In exact mode the
    explained score is the similarity of the shifted embeddings, not the model's own.
    """
    label = similarity_label(result)
    total = f"= {label}" if result.mode != "exact" else f"= exact-mode {label}"
    return [
        Term("the map (all cells)", result.attribution_sum, "the attribution sum: every token pair's part added up"),
        Term(
            "empty reference",
            result.reference_terms,
            "the reference terms: what the model gives the empty input (special tokens, padding); no pair carries it",
        ),
        Term("− integration error", -result.integration_error, "what the quadrature missed (more steps shrink it)"),
        Term(total, result.score, "the score the map explains: the three bars above add up to it", kind="total"),
    ]


def exact_mode_warning(result: Attribution) -> str | None:
    """Why the map does not explain the model's own score (exact mode on a model not trained for it)."""
    if not result.explains_other_score:
        return None
    label = similarity_label(result)
    return (
        f"{short_model_name(result.model_name)} was not trained for exact mode. The map explains the {label} of "
        f"the shifted embeddings f(x) − f(reference), {result.score:.3f}, not the model's own {label}, "
        f"{result.own_score:.3f}. Choose mode 'approximate' (Advanced options) to explain the model's score, "
        "or fine-tune an exact model (pairlens finetune)."
    )


def _bars_html(terms: list[Term]) -> str:
    values = [t.value for t in terms if math.isfinite(t.value)]
    low, high = min([0.0, *values]), max([0.0, *values])
    span = (high - low) or 1.0
    zero = 100 * (0.0 - low) / span
    rows = []
    for term in terms:
        value = term.value if math.isfinite(term.value) else 0.0
        left = 100 * (min(value, 0.0) - low) / span
        width = max(100 * abs(value) / span, 0.4)
        kind = "total" if term.kind == "total" else ("pos" if value >= 0 else "neg")
        rows.append(
            f"<div class='pl-term pl-{kind}' title='{html.escape(term.help)}'>"
            f"<span class='pl-term-label'>{html.escape(term.label)}</span>"
            f"<span class='pl-term-track'><span class='pl-term-zero' style='left:{zero:.2f}%'></span>"
            f"<span class='pl-term-bar' style='left:{left:.2f}%;width:{width:.2f}%'></span></span>"
            f"<span class='pl-term-value'>{html.escape(_number(term.value))}</span></div>"
        )
    return f"<div class='pl-decomp'>{''.join(rows)}</div>"


def explained_html(result: Attribution) -> str:
    """How much of the score the map explains, in one number and plain words (escaped HTML)."""
    told = explain_score(result)
    number = html.escape(percent(told.share))
    headline = html.escape(told.headline).replace(number, f"<b class='pl-share'>{number}</b>", 1)
    offer = f"<div class='pl-offer'>{html.escape(told.alternative)}</div>" if told.alternative else ""
    return (
        f"<div class='pl-explained'><div class='pl-explained-head'>{headline}</div>"
        f"<details><summary>What this means for reading the map</summary>"
        f"<div class='pl-explained-read'>{html.escape(told.reading)}</div>{offer}</details></div>"
    )


def score_card_html(result: Attribution) -> str:
    """The score panel as HTML (classes styled by assets/style.css; all text escaped).

    The headline is always the model's own similarity; in exact mode the explained score (of the
    shifted embeddings) stands beside it under its own name. Below: the decomposition bars
    (score = cells + reference terms − error) and the run's facts.
    """
    label = similarity_label(result)
    lines = []
    for fact in score_facts(result):
        cls = " class='pl-warn'" if fact.warn else ""
        lines.append(
            f"<div class='pl-fact' title='{html.escape(fact.help)}'><dt>{html.escape(fact.label)}</dt>"
            f"<dd{cls}>{html.escape(fact.value)}</dd></div>"
        )
    headline = (
        f"<div class='pl-score'><span class='pl-score-label'>{html.escape(label)} similarity</span>"
        f"<span class='pl-score-value'>{result.own_score:.3f}</span>"
        f"<span class='pl-score-note'>the model's own score</span></div>"
    )
    if result.mode == "exact":
        note = "not an exact model" if result.explains_other_score else "shifted embeddings"
        cls = "pl-score pl-score-alt" + (" pl-score-off" if result.explains_other_score else "")
        headline += (
            f"<div class='{cls}'><span class='pl-score-label'>exact-mode target</span>"
            f"<span class='pl-score-value'>{result.score:.3f}</span>"
            f"<span class='pl-score-note'>{html.escape(note)}: what the map explains</span></div>"
        )
    return (
        "<div class='pl-card'>"
        f"<div class='pl-headline'>{headline}</div>"
        f"{_bars_html(decomposition(result))}"
        f"{explained_html(result)}"
        f"<dl class='pl-facts'>{''.join(lines)}</dl>"
        "</div>"
    )
