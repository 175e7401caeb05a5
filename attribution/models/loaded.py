"""A loaded sentence transformer and what the engine needs of it: states at layer L and the tail.

Entering an encoder at layer L is generic (`entry.Entry`: the model's own forward on a view that
starts at layer L); pooling and the Dense modules after it are sentence-transformers' own modules.
A prompt (E5's "query: ", EmbeddingGemma's task prompts) is bound with `prompted`, which returns a
light copy sharing everything else: tokenization, pooling and the tail then apply it as
sentence-transformers' encode(prompt=...) does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from .entry import Entry, Tail
from .tokens import encode_text


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A sentence transformer plus the facts the engine needs. Shared between threads, never mutated."""

    name: str
    source: str  # folder or hub id it was loaded from
    encoder: Any  # the transformers PreTrainedModel (eval mode, eager attention)
    tokenizer: Any
    architecture: str  # the config's model_type, e.g. "bert", "qwen3"
    pooling: str  # sentence-transformers' pooling mode, e.g. "mean", "cls", "lasttoken" ("+"-joined if several)
    pooling_modules: tuple[torch.nn.Module, ...]  # Pooling, Dense, ... (everything before Normalize)
    similarity: str  # the model's own: "cos" | "dot"
    exact: bool  # trained so the reference embeds to zero (default mode "exact")
    num_layers: int
    hidden_size: int
    embedding_dim: int
    max_tokens: int
    metadata: dict[str, Any]
    entry: Entry  # how the encoder is entered at a layer (shared by every prompted copy)
    prompts: dict[str, str] = field(default_factory=dict)  # the model's saved prompts by name
    default_prompt_name: str | None = None  # applied when no prompt is asked for, as sentence-transformers does
    include_prompt: bool = True  # False: Pooling leaves the prompt tokens out of the embedding
    prompt: str | None = None  # the prompt bound to this copy (prepended to every text), None for none
    prompt_length: int | None = None  # sentence-transformers' token count of `prompt` (see Entry.prompt_length)
    model_max_tokens: int | None = None  # the model's own limit, before PAIRLENS_MAX_TOKENS (None: max_tokens)

    @property
    def device(self) -> str:
        """Where the model computes: "cpu", "cuda:0", "mps" (see attribution.devices)."""
        return self.entry.device

    @property
    def default_layer(self) -> int:
        """The input of the last encoder layer."""
        return self.num_layers - 1

    @property
    def default_mode(self) -> str:
        return "exact" if self.exact else "approximate"

    # -- prompts ---------------------------------------------------------------------------------------

    def resolve_prompt(self, prompt_name: str | None = None, prompt: str | None = None) -> str | None:
        """The prompt text sentence-transformers would use: `prompt` if given ("" for none), else the saved
        prompt `prompt_name`, else the model's default prompt. InputError for a name the model lacks."""
        return resolve_prompt(self.name, self.prompts, self.default_prompt_name, prompt_name, prompt)

    def prompted(self, prompt_name: str | None = None, prompt: str | None = None) -> LoadedModel:
        """This model with the resolved prompt bound (itself when that is already the bound prompt)."""
        text = self.resolve_prompt(prompt_name, prompt)
        if text == self.prompt:
            return self
        return dataclasses.replace(self, prompt=text, prompt_length=self.entry.prompt_length(text))

    # -- states, pooling, tail -------------------------------------------------------------------------

    def hidden_states(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """All hidden states, index L = input of layer L; each (B, S, H). All positions attended."""
        return self.entry.hidden_states(input_ids)

    def pool(self, token_states: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, S, H) last-layer states -> (B, D) embedding before Normalize (sentence-transformers' modules)."""
        return self.entry.pool(token_states, attention_mask, self.prompt_length)

    def embed_ids(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled embeddings (B, D) before Normalize of a batch of token ids (all attended by default)."""
        input_ids = self.entry.on_device(input_ids)
        mask = torch.ones_like(input_ids) if attention_mask is None else self.entry.on_device(attention_mask)
        return self.pool(self.entry.last_hidden_state(input_ids, mask), mask)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Pooled embeddings f(x) of texts one by one (with the bound prompt), before any Normalize, (len, D)."""
        with torch.inference_mode():
            out = [self.embed_ids(encode_text(self, text).input_ids)[0] for text in texts]
        return torch.stack(out).cpu().numpy() if out else np.zeros((0, self.embedding_dim), dtype=np.float32)

    def tail(self, layer: int) -> Tail:
        """f from layer L on: hidden states (B, S, H) at the input of layer L -> embeddings (B, D).

        Pure: no hooks, no state on the shared modules, so threads may call it at once.
        """
        return self.entry.tail(layer, self.prompt_length)

    def sequence_bytes(self, seq_len: int) -> int:
        """Rough peak working memory of one sequence through one layer, primal and tangent (bytes)."""
        cfg = self.encoder.config
        inter = _config_int(cfg, ("intermediate_size", "d_ff", "hidden_dim", "n_inner"), 4 * self.hidden_size)
        heads = _config_int(cfg, ("num_attention_heads", "num_heads", "n_heads"), 1)
        floats = seq_len * (10 * self.hidden_size + 3 * inter) + 4 * heads * seq_len * seq_len
        return 2 * 4 * floats


def _config_int(config: Any, names: tuple[str, ...], default: int) -> int:
    """The first of `names` the config has as a positive int (architectures name the same size differently)."""
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return default


def resolve_prompt(
    model_name: str,
    prompts: dict[str, str],
    default_prompt_name: str | None,
    prompt_name: str | None,
    prompt: str | None,
) -> str | None:
    """`prompt` if given ("" for none), else the saved prompt `prompt_name`, else the default prompt.

    InputError for a prompt name the model lacks.
    """
    if prompt is not None:
        return prompt or None
    if prompt_name is not None:
        if prompt_name not in prompts:
            names = ", ".join(f"'{n}'" for n in prompts) or "none"
            raise InputError(
                f"{model_name} has no prompt named '{prompt_name}' (its prompts: {names}); give one of them, "
                "or the prompt text itself with prompt=."
            )
        return prompts[prompt_name] or None
    if default_prompt_name is not None:
        return prompts.get(default_prompt_name) or None
    return None
