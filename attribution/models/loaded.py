"""A loaded sentence transformer and what the engine needs of it: states at layer L and the tail.

What the engine needs of an architecture is a row in `ARCHITECTURES`, not a subclass.
Pooling and the Dense modules after it are sentence-transformers' own modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

Tail = Any  # Callable[[Tensor (B, S, H)], Tensor (B, D)]


@dataclass(frozen=True)
class ArchitectureFacts:
    """Where an encoder keeps its layers and what a layer needs besides hidden states."""

    layers_path: str  # attribute path from the HF model to its nn.ModuleList of layers
    position_bias: bool = False  # MPNet: relative position bias passed to every layer


ARCHITECTURES: dict[str, ArchitectureFacts] = {
    "bert": ArchitectureFacts("encoder.layer"),
    "roberta": ArchitectureFacts("encoder.layer"),
    "xlm-roberta": ArchitectureFacts("encoder.layer"),
    "mpnet": ArchitectureFacts("encoder.layer", position_bias=True),
}


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A sentence transformer plus the facts the engine needs. Shared between threads, never mutated."""

    name: str
    source: str  # folder or hub id it was loaded from
    encoder: Any  # the transformers PreTrainedModel (eval mode, eager attention)
    tokenizer: Any
    architecture: str
    pooling: str  # sentence-transformers' pooling mode, e.g. "mean" | "cls"
    pooling_modules: tuple[torch.nn.Module, ...]  # Pooling, then Dense modules (everything before Normalize)
    similarity: str  # the model's own: "cos" | "dot"
    exact: bool  # trained so the reference embeds to zero (default mode "exact")
    num_layers: int
    hidden_size: int
    embedding_dim: int
    max_tokens: int
    metadata: dict[str, Any]

    @property
    def facts(self) -> ArchitectureFacts:
        return ARCHITECTURES[self.architecture]

    @property
    def layers(self) -> torch.nn.ModuleList:
        module: Any = self.encoder
        for attr in self.facts.layers_path.split("."):
            module = getattr(module, attr)
        return module

    @property
    def default_layer(self) -> int:
        """The input of the last encoder layer."""
        return self.num_layers - 1

    @property
    def default_mode(self) -> str:
        return "exact" if self.exact else "approximate"

    def hidden_states(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """All hidden states, index L = input of layer L; each (B, S, H). All positions attended."""
        output = self.encoder(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), output_hidden_states=True)
        return tuple(output.hidden_states)

    def pool(self, token_states: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, S, H) last-layer states -> (B, D) embedding before Normalize (sentence-transformers' modules)."""
        if attention_mask is None:
            attention_mask = torch.ones(token_states.shape[:-1], dtype=torch.int64, device=token_states.device)
        features: dict[str, torch.Tensor] = {"token_embeddings": token_states, "attention_mask": attention_mask}
        for module in self.pooling_modules:
            features = module(features)
        return features["sentence_embedding"]

    def embed_ids(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled embeddings (B, D) before Normalize of a batch of token ids (all attended by default)."""
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        states = self.encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state
        return self.pool(states, mask)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Pooled embeddings f(x) of texts one by one, before any Normalize module, shape (len(texts), D)."""
        from ..core.tokens import encode_text

        with torch.inference_mode():
            out = [self.embed_ids(encode_text(self, text).input_ids)[0] for text in texts]
        return torch.stack(out).numpy() if out else np.zeros((0, self.embedding_dim), dtype=np.float32)

    def tail(self, layer: int) -> Tail:
        """f from layer L on: hidden states (B, S, H) at the input of layer L -> embeddings (B, D).

        Pure: no hooks, no state on the shared modules, so threads may call it at once.
        """
        layers = list(self.layers)[layer:]

        def tail(x: torch.Tensor) -> torch.Tensor:
            extra = self._layer_kwargs(x.shape[0], x.shape[1]) if layers else {}
            for module in layers:
                out = module(x, None, **extra)
                x = out[0] if isinstance(out, tuple) else out
            return self.pool(x)

        return tail

    def sequence_bytes(self, seq_len: int) -> int:
        """Rough peak working memory of one sequence through one layer, primal and tangent (bytes)."""
        cfg = self.encoder.config
        inter = int(getattr(cfg, "intermediate_size", 4 * self.hidden_size))
        heads = int(cfg.num_attention_heads)
        floats = seq_len * (10 * self.hidden_size + 3 * inter) + 4 * heads * seq_len * seq_len
        return 2 * 4 * floats

    def _layer_kwargs(self, batch: int, seq_len: int) -> dict[str, torch.Tensor]:
        """Extra arguments every layer takes for a (batch, seq_len) input."""
        if not self.facts.position_bias:
            return {}
        shape_only = torch.empty(batch, seq_len, 1)
        return {"position_bias": self.encoder.encoder.compute_position_bias(shape_only)}
