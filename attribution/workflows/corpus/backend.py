"""What the backends share: the Backend protocol, and how one pair (or one convergence job) becomes a record.

The serial backend (attribution.workflows.corpus.serial) and the Ray backend
(attribution.workflows.corpus.ray_backend) are siblings: both compute through the functions here.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from ...core import engine
from ...core.options import RULES, ExplainOptions, RunOptions
from ...errors import InputError
from ...jsonable import json_ready
from ...models import LoadedModel
from ...result import Attribution
from ...service.cache import cached_explain_many
from ..data import Pair
from .settings import RunSettings

# The ExplainOptions fields that change the numbers, as run.json's settings name them.
ATTRIBUTION_BATCH = 32  # pairs per explain_many call; a run stopped mid-batch redoes that batch on resume
Outcome = Attribution | str  # an engine result, or the message of the InputError that refused the pair
Curves = dict[str, list[tuple[int, float]]]  # convergence_errors' {rule: [(N, relative error)]}, JSON-ready


class Backend(Protocol):
    """Where the pairs are computed: `serial.SerialBackend` (this process) or `ray_backend.RayBackend` (Ray actors).

    `attributions` and `convergence` yield (key, record) for the jobs given, in any order; a key
    may come twice (a batch sent again after a worker died): `RecordWriter` writes it once.
    """

    def resolve(self, options: ExplainOptions) -> tuple[str, int, RunOptions]:
        """(model name, number of layers, the options resolved for the model and the run's limits)."""
        ...

    def info(self) -> dict[str, Any]:
        """How the pairs are computed, for run.json and the summary's "run" (e.g. torch_threads)."""
        ...

    def attributions(self, jobs: Sequence[tuple[Pair, str]], options: RunOptions) -> Iterator[tuple[str, Any]]:
        """(key, pair_record) for each (pair, key)."""
        ...

    def convergence(
        self, jobs: Sequence[tuple[Pair, str, int]], settings: RunSettings
    ) -> Iterator[tuple[tuple[str, int], Any]]:
        """((key, layer), convergence_record) for each (pair, key, layer)."""
        ...


def batch_outcomes(
    model: LoadedModel, pairs: Sequence[Pair], options: RunOptions, *, cache: bool = False
) -> list[Outcome]:
    """Each pair's explain() result with POS tags, or the message of the InputError that refused it, in
    order, computed together by explain_many: texts of equal length share the first round of nodes, and
    each result equals explain()'s.

    cache: pairs found in the persistent result cache are taken from it, the others stored after.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kept in result.warnings
        outcomes = cached_explain_many(
            model, [(p.text_a, p.text_b) for p in pairs], options, pos=True, cache="default" if cache else None
        )
    return [str(o) if isinstance(o, InputError) else o for o in outcomes]


def pair_record(pair: Pair, key: str, outcome: Outcome) -> dict[str, Any]:
    """The attributions.jsonl line of a pair: {"row", "key", "gold", "result"} or {..., "error"}."""
    record: dict[str, Any] = {"row": pair.row, "key": key, "gold": pair.gold}
    if isinstance(outcome, str):
        record["error"] = outcome
    else:
        record["result"] = outcome.to_dict()
    return record


def convergence_outcome(model: LoadedModel, pair: Pair, settings: RunSettings, layer: int) -> Curves | str:
    """convergence_errors of one pair at one layer for every rule (JSON-ready), or the refusal's message."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            curves = convergence_errors(
                model,
                pair.text_a,
                pair.text_b,
                settings.options.replace(layer=layer),
                RULES,
                settings.convergence_steps,
            )
        result: Curves = json_ready(curves)
        return result
    except InputError as exc:
        return str(exc)


def convergence_record(pair: Pair, key: str, layer: int, outcome: Curves | str) -> dict[str, Any]:
    """The convergence.jsonl line of a (pair, layer): {"row", "key", "layer", "errors"} or {..., "error"}."""
    record: dict[str, Any] = {"row": pair.row, "key": key, "layer": layer}
    if isinstance(outcome, str):
        record["error"] = outcome
    else:
        record["errors"] = outcome
    return record


def convergence_errors(
    model: LoadedModel,
    text_a: str,
    text_b: str,
    options: ExplainOptions | RunOptions,
    rules: Sequence[str],
    steps: Sequence[int],
) -> dict[str, list[tuple[int, float]]]:
    """{rule: [(N, relative integration error)]} at options.layer, as explain(steps=N, rule=rule) gives.

    Node evaluations are shared between rules and N (riemann-right's nodes for N nest under
    doubling and contain midpoint's for N/2), so the pass costs about as many nodes as
    gauss-legendre plus riemann-right at the largest N, not the sum over every (rule, N).
    """
    resolved = options if isinstance(options, RunOptions) else options.for_model(model)
    pair = engine.prepare_pair(model, text_a, text_b, resolved)
    return {
        rule: [(int(n), pair.completeness.relative_error(float(pair.matrix(rule, n).double().sum()))) for n in steps]
        for rule in rules
    }


def check_threads(requested: int) -> int:
    """Torch threads for `--threads`: at least 1 (else InputError), at most the CPU cores available.

    torch.set_num_threads with a huge count crashes the process (segmentation fault at 100000).
    """
    if requested < 1:
        raise InputError(f"--threads must be at least 1 (got {requested}).")
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return min(requested, max(cores, 1))
