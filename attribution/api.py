"""The Python API's entry points: explain and explain_many with the operator's limits read from PAIRLENS_*.

The library's own edge (like the CLI, the page and the service): the environment is read here
(`attribution.settings.get_settings().limits`) and folded into the request, then the engine
(attribution.core, which reads no environment) runs with the resolved options.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .core import engine, many
from .core.execution import Run
from .core.many import PairProgress
from .core.options import ExplainOptions, RunOptions
from .models import LoadedModel
from .result import Attribution
from .settings import get_settings


def explain(
    model: LoadedModel | str,
    text_a: str,
    text_b: str,
    options: ExplainOptions | RunOptions | None = None,
    *,
    pos: bool = True,
    run: Run | None = None,
    **option_values: Any,
) -> Attribution:
    """attribution.core.engine.explain under the operator's limits (PAIRLENS_MAX_STEPS, ...); see there."""
    return engine.explain(
        model, text_a, text_b, options, pos=pos, run=run, limits=get_settings().limits, **option_values
    )


def explain_many(
    model: LoadedModel | str,
    pairs: Sequence[tuple[str, str]],
    options: ExplainOptions | RunOptions | None = None,
    *,
    pos: bool = False,
    run: Run | None = None,
    progress: PairProgress | None = None,
    **option_values: Any,
) -> list[Attribution]:
    """attribution.core.many.explain_many under the operator's limits; see there."""
    return many.explain_many(
        model, pairs, options, pos=pos, run=run, progress=progress, limits=get_settings().limits, **option_values
    )

