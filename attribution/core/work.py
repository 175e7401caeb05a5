"""How much work an explain() request asks for, before computing it (for operator caps).

The engine's cost is dominated by tangent passes through the layers above the chosen one: per
quadrature node and text, min(S, D) passes (S JVPs forward, or D VJPs in reverse, whichever is
fewer; S tokens, D embedding size), each through S tokens and every layer from L up. One unit
of work is one token through one layer in one pass:

    work = nodes x sum over both texts of passes(S) x S x max(num_layers - L, 1)

With steps="auto" the nodes counted are those of its first round, where it stops for nearly
every pair (see quadrature.auto_start); a pair that needs more rounds costs about twice as
much per further round. The page refuses requests above PAIRLENS_MAX_PAGE_WORK; the same
function serves any other front end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import InputError
from .options import ExplainOptions
from .quadrature import auto_start
from .tokens import repair_surrogates

if TYPE_CHECKING:
    from ..models import LoadedModel


@dataclass(frozen=True)
class WorkEstimate:
    """What a request will cost: token counts, nodes, layers passed through and the work units."""

    tokens_a: int  # tokens of text A after truncation, special tokens included
    tokens_b: int
    nodes: int  # quadrature nodes (auto: its first round)
    layers: int  # encoder layers from the chosen layer up (at least 1: pooling alone still costs)
    units: int

    def describe(self) -> str:
        """e.g. "2 x 240 tokens, 16 steps, 6 layers above the chosen one"."""
        texts = f"texts of {self.tokens_a} and {self.tokens_b} tokens"
        return f"{texts}, {self.nodes} steps, {self.layers} layer{'s' if self.layers != 1 else ''} from the chosen one up"


def work_units(tokens: tuple[int, ...], nodes: int, layers: int, embedding_dim: int, direction: str = "auto") -> int:
    """Work of `nodes` quadrature nodes for texts of these token counts through `layers` layers.

    Pure arithmetic (see the module docstring): passes per text are S forward, D reverse, or
    the fewer of the two for "auto".
    """
    total = 0
    for seq_len in tokens:
        passes = {"forward": seq_len, "reverse": embedding_dim}.get(direction, min(seq_len, embedding_dim))
        total += passes * seq_len
    return total * nodes * max(layers, 1)


def nodes_counted(options: ExplainOptions) -> int:
    """Quadrature nodes a request is charged for: N, or the first round of steps="auto"."""
    if options.fixed_steps is not None:
        return options.fixed_steps
    assert options.layer is not None, "resolve the options with for_model() first"
    return auto_start(options.rule, options.layer)


def count_tokens(model: LoadedModel, text: str) -> int:
    """Tokens of `text` as explain() uses them: truncated to the model's maximum, special tokens included."""
    ids = model.tokenizer(repair_surrogates(text), truncation=True, max_length=model.max_tokens)["input_ids"]
    return len(ids)


def estimate_work(model: LoadedModel, text_a: str, text_b: str, options: ExplainOptions) -> WorkEstimate:
    """The work of explain(model, text_a, text_b, options), from token counts alone (tokenizing only)."""
    resolved = options.for_model(model)
    assert resolved.layer is not None
    tokens = (count_tokens(model, text_a), count_tokens(model, text_b))
    nodes = nodes_counted(resolved)
    layers = max(model.num_layers - resolved.layer, 1)
    units = work_units(tokens, nodes, layers, model.embedding_dim, resolved.direction)
    return WorkEstimate(tokens[0], tokens[1], nodes, layers, units)


def check_work(estimate: WorkEstimate, limit: int) -> None:
    """InputError saying what was refused and what to do when the estimate is above `limit`."""
    if estimate.units <= limit:
        return
    times = estimate.units / limit
    raise InputError(
        f"This request is too large for this server: {estimate.describe()} is about {times:.1f} times the work "
        f"one request may ask for (PAIRLENS_MAX_PAGE_WORK). Use fewer steps, shorter texts or a deeper layer."
    )
