"""What the command line shows of a result, and the HTTP API returns: `explain --json` and the summary text.

explain_json(result, pos, words, top)   the `explain --json` object (also POST /explain's answer)
summary_text(result, top)               the readable summary `pairlens explain` prints
"""

from __future__ import annotations

from typing import Any

from .record import Attribution

# JSON keys that --pos adds (they are left out of `explain --json` without it).
POS_KEYS = (
    "pos_a", "pos_b", "tag_a", "tag_b", "word_index_a", "word_index_b", "words_a", "words_b",
    "word_pos_a", "word_pos_b", "pos_note",
)  # fmt: skip


def explain_json(result: Attribution, pos: bool, words: bool, top: int | None) -> dict[str, Any]:
    """The `explain --json` object: `to_dict()` of the shown view (word level with `words`), the
    POS/word keys only with `pos`, and `top_pairs` (K strongest cells of the shown view) with `top`.
    """
    shown = result.to_words() if words else result
    payload = shown.to_dict()
    if not pos:
        for key in POS_KEYS:
            payload.pop(key, None)
    if top:
        payload["top_pairs"] = [pair.to_dict() for pair in shown.top_pairs(top)]
    return payload


def summary_text(result: Attribution, top: int = 5) -> str:
    """Readable summary: score, sum, error, strongest pairs."""
    lines = [
        f"model      {result.model_name}  (layer {result.layer}/{result.num_layers}, {result.rule}, "
        f"N={result.steps}, {result.mode}, {result.similarity})",
        f"score      {result.score:+.4f}",
        f"target     {result.target:+.4f}   (what the attributions sum to as N grows)",
        f"sum        {result.attribution_sum:+.4f}   error {result.integration_error:+.2e} "
        f"(relative {result.relative_error:.1e})",
        f"reference  {result.reference_terms:+.4f}   (score - target: not attributed to token pairs)",
        f"time       {result.seconds:.2f} s",
    ]
    if result.mode == "exact" and result.model_score is not None:
        own = f"own        {result.own_score:+.4f}   (the model's own similarity; exact mode explains the score above"
        if result.explains_other_score:
            own += ", and this model was not trained for exact mode"
        lines.insert(2, own + ")")
    if top:
        lines.append(f"strongest pairs ({result.level} level):")
        for p in result.top_pairs(top):
            lines.append(f"  {p.token_a!s:>15} - {p.token_b!s:<15} {p.value:+.4f}  ({100 * p.share:.1f} %)")
    return "\n".join(lines)
