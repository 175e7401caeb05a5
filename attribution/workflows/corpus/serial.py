"""The serial backend: pair after pair (in batches sharing work, attribution.core.many) in this process."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

from ...core.options import ExplainOptions, Limits, RunOptions
from ...models import LoadedModel
from ..data import Pair
from .backend import ATTRIBUTION_BATCH, batch_outcomes, convergence_outcome, convergence_record, pair_record
from .settings import RunSettings


class SerialBackend:
    """Pair after pair in this process, with one loaded model."""

    def __init__(self, model: LoadedModel, *, cache: bool = False, limits: Limits | None = None) -> None:
        self.model = model
        self.cache = cache
        self.limits = limits or Limits()

    def resolve(self, options: ExplainOptions) -> tuple[str, int, RunOptions]:
        return self.model.name, self.model.num_layers, options.for_model(self.model, self.limits)

    def info(self) -> dict[str, Any]:
        return {"torch_threads": torch.get_num_threads()}

    def attributions(self, jobs: Sequence[tuple[Pair, str]], options: RunOptions) -> Iterator[tuple[str, Any]]:
        for start in range(0, len(jobs), ATTRIBUTION_BATCH):
            batch = jobs[start : start + ATTRIBUTION_BATCH]
            outcomes = batch_outcomes(self.model, [pair for pair, _ in batch], options, cache=self.cache)
            for (pair, key), outcome in zip(batch, outcomes, strict=True):
                yield key, pair_record(pair, key, outcome)

    def convergence(
        self, jobs: Sequence[tuple[Pair, str, int]], settings: RunSettings
    ) -> Iterator[tuple[tuple[str, int], Any]]:
        for pair, key, layer in jobs:
            outcome = convergence_outcome(self.model, pair, settings, layer)
            yield (key, layer), convergence_record(pair, key, layer, outcome)
