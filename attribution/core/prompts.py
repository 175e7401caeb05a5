"""Prompts per side: a query and a document encoded with different prompts, as retrieval models are.

sentence-transformers' `encode_query` uses the model's "query" prompt when it has one, and
`encode_document` the first of "document", "passage", "corpus" it has; with none, plain `encode`'s
rule applies (the default prompt, if the model names one). `role_prompt_name` is that rule, so
`ExplainOptions(role_a="query", role_b="document")` explains the score the model produces in
retrieval. A side may instead name a prompt (`prompt_name_a`) or give its text (`prompt_a`).

Note that sentence-transformers (from v5) gives every model "query" and "document" entries (empty
when the model defines none), so an E5-style model saved by it with only "query" and "passage"
encodes documents with the empty "document" prompt; PairLens follows what the model's own
`encode_document` does, whatever that is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, get_args

from ..errors import InputError

Role = Literal["query", "document"]
ROLES: tuple[Role, ...] = get_args(Role)
SIDES = ("a", "b")
# sentence-transformers' encode_document: the first of these the model has
DOCUMENT_PROMPT_NAMES = ("document", "passage", "corpus")


def role_prompt_name(prompts: Mapping[str, str], role: Role) -> str | None:
    """The prompt name encode_query / encode_document would pick, None for "no name: plain encode's rule"."""
    if role == "query":
        return "query" if "query" in prompts else None
    return next((name for name in DOCUMENT_PROMPT_NAMES if name in prompts), None)


def check_role(value: object, field: str) -> Role:
    if isinstance(value, str) and value.strip().lower() in ROLES:
        return value.strip().lower()  # type: ignore[return-value]
    raise InputError(f"{field} must be 'query' or 'document' (got {value!r:.60}).")


def check_sides(values: Mapping[str, object]) -> None:
    """Per side at most one of role / prompt_name / prompt, and per-side prompts not mixed with the
    symmetric prompt_name / prompt. `values`: the option fields by name (already checked one by one)."""
    per_side = [f"{kind}_{side}" for side in SIDES for kind in ("role", "prompt_name", "prompt")]
    given = [name for name in per_side if values.get(name) is not None]
    if given and (values.get("prompt_name") is not None or values.get("prompt") is not None):
        raise InputError(
            f"Give prompts either for both texts (prompt_name or prompt) or per text ({given[0]} and the like), "
            "not both."
        )
    for side in SIDES:
        mine = [
            f"{kind}_{side}" for kind in ("role", "prompt_name", "prompt") if values.get(f"{kind}_{side}") is not None
        ]
        if len(mine) > 1:
            raise InputError(f"Give one of {', '.join(mine)} for text {side.upper()}, not several.")
