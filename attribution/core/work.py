"""How much work an explain() request asks for, before computing it, and an operator's cap on it.

The engine's cost is dominated by tangent passes through the layers from the chosen one up:
per quadrature node and text, min(S, D) passes (S JVPs forward or D VJPs in reverse, whichever
is fewer; S tokens, D embedding size), each through S tokens and every layer from L up. One
unit of work is one token through one layer in one pass:

    work = nodes x sum over both texts of passes(S) x S x max(num_layers - L, 1)

(proportional to compute time within a factor of about 2 from 20 to 512 tokens and N = 1 to 8
on all-MiniLM-L6-v2; all-mpnet-base-v2 takes about twice as long per unit). `limit_work` keeps
a request within a cap: a fixed N above it is refused, and steps="auto" is told to stop at the
most nodes the cap allows (`ExplainOptions.auto_max_steps`, under the operator's PAIRLENS_MAX_STEPS). The page applies
PAIRLENS_MAX_PAGE_WORK this way; any other front end can do the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import InputError
from ..models.tokens import TOKENIZER_LOCK
from .options import ExplainOptions, Limits, RunOptions
from .quadrature import auto_start
from .tokens import repair_surrogates

if TYPE_CHECKING:
    from ..models import LoadedModel


@dataclass(frozen=True)
class WorkEstimate:
    """What a request costs: token counts, layers passed through, work per node and in all."""

    tokens_a: int  # tokens of text A after truncation, special tokens included
    tokens_b: int
    layers: int  # encoder layers from the chosen layer up (at least 1: pooling alone still costs)
    per_node: int  # work units of one quadrature node (both texts)
    nodes: int  # nodes counted: N, or the first round of steps="auto"
    step_cap: int  # the most nodes steps="auto" may reach under the request and the operator's limits

    @property
    def units(self) -> int:
        return self.per_node * self.nodes

    def describe(self) -> str:
        """e.g. "texts of 240 and 238 tokens, 16 steps, 1 layer from the chosen one up"."""
        layers = f"{self.layers} layer{'s' if self.layers != 1 else ''} from the chosen one up"
        return f"texts of {self.tokens_a} and {self.tokens_b} tokens, {self.nodes} steps, {layers}"


def node_work(tokens: tuple[int, ...], layers: int, embedding_dim: int, direction: str = "auto") -> int:
    """Work units of one quadrature node for texts of these token counts through `layers` layers.

    Passes per text: S forward, D reverse, the fewer of the two for "auto" (as the engine chooses).
    """
    total = 0
    for seq_len in tokens:
        passes = {"forward": seq_len, "reverse": embedding_dim}.get(direction, min(seq_len, embedding_dim))
        total += passes * seq_len
    return total * max(layers, 1)


def nodes_counted(options: RunOptions) -> int:
    """Quadrature nodes a request is charged for at least: N, or the first round of steps="auto"."""
    if options.fixed_steps is not None:
        return options.fixed_steps
    return min(auto_start(options.rule, options.layer), options.step_cap)


def count_tokens(model: LoadedModel, text: str, max_tokens: int | None = None) -> int:
    """Tokens of `text` as explain() uses them: truncated to max_tokens (None: the model's maximum),
    special tokens included."""
    limit = model.max_tokens if max_tokens is None else max_tokens
    with TOKENIZER_LOCK:
        ids = model.tokenizer(repair_surrogates(text), truncation=True, max_length=limit)["input_ids"]
    return len(ids)


def estimate_work(
    model: LoadedModel, text_a: str, text_b: str, options: ExplainOptions, limits: Limits | None = None
) -> WorkEstimate:
    """The work of explain(model, text_a, text_b, options) under `limits` (None: the documented defaults),
    from token counts alone (it only tokenizes)."""
    resolved = options.for_model(model, limits)
    tokens = (count_tokens(model, text_a, resolved.max_tokens), count_tokens(model, text_b, resolved.max_tokens))
    layers = max(model.num_layers - resolved.layer, 1)
    per_node = node_work(tokens, layers, model.embedding_dim, resolved.direction)
    return WorkEstimate(tokens[0], tokens[1], layers, per_node, nodes_counted(resolved), resolved.step_cap)


def within_work(
    model: LoadedModel, text_a: str, text_b: str, options: ExplainOptions, limits: Limits | None, max_work: int | None
) -> ExplainOptions:
    """`options` for explain(model, text_a, text_b) kept within `max_work` work units (None: no cap): the
    server's work cap, as limit_work applies it to estimate_work; InputError when even that is too much."""
    if max_work is None:
        return options
    return limit_work(estimate_work(model, text_a, text_b, options, limits), options, max_work)


def limit_work(estimate: WorkEstimate, options: ExplainOptions, limit: int) -> ExplainOptions:
    """`options` kept within `limit` work units, or InputError saying what was refused and what to do.

    Fixed steps: refused above the limit. steps="auto": `auto_max_steps` set to the most nodes
    the limit allows (auto then stops there, flagged as not converged if it had to), refused
    when even its first round is over the limit.
    """
    affordable = limit // max(estimate.per_node, 1)
    if estimate.units > limit:
        times = estimate.units / limit
        first = " (the first round of steps=auto)" if options.fixed_steps is None else ""
        raise InputError(
            f"This request is too large for this server: {estimate.describe()}{first} is about {times:.1f} times "
            "the work one request may ask for (PAIRLENS_MAX_PAGE_WORK). Use fewer steps, shorter texts or a "
            "deeper layer."
        )
    if options.fixed_steps is None and affordable < estimate.step_cap:
        return options.replace(auto_max_steps=affordable)
    return options
