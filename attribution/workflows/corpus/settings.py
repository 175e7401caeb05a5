"""A run's settings: what fixes its numbers, written to run.json and checked on every re-run (resume).

They are built from the resolved options (RunOptions) the pairs are computed with, so no knob that
changes a result (step cap, tokens per text, ...) can be missing from the check.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...core.engine import ENGINE_VERSION
from ...core.options import RunOptions
from ...errors import InputError
from .store import RUN

CONVERGENCE_STEPS = (1, 2, 4, 8, 16, 32, 64)
# The RunOptions fields (`RunOptions.result_fields`) that fix a run's numbers. The device and the memory budget
# change them by float rounding only: a run may be resumed on another device or with another budget.
NUMBER_FIELDS = (
    "layer", "steps", "rule", "mode", "similarity", "tolerance", "prompt_name", "prompt", "prompt_name_b", "prompt_b",
    "precision", "step_cap", "max_tokens",
)  # fmt: skip
# What run.json files written before a setting existed mean by its absence (step_cap: see `setting_before`).
SETTINGS_BEFORE = {"precision": "fp32", "engine": 1, "max_tokens": 256, "prompt": None}


def convergence_layers(num_layers: int) -> list[int]:
    """{0, middle, last}: inputs of the first, middle and last encoder layer (deduplicated)."""
    return sorted({0, num_layers // 2, max(num_layers - 1, 0)})


@dataclass(frozen=True)
class RunSettings:
    """What fixes the numbers of a run: a re-run into the same folder must match exactly."""

    model: str
    data: str  # resolved path of the data file
    options: RunOptions  # resolved for the model and the operator's limits
    convergence_steps: list[int]
    convergence_layers: list[int]

    def to_dict(self) -> dict[str, Any]:
        values = self.options.result_fields()
        values["prompt"] = values["prompt"] or None  # no prompt: null, as run.json files always wrote it
        return {
            "model": self.model,
            "data": self.data,
            **{name: values.get(name) for name in NUMBER_FIELDS},  # B's prompt: null when A's serves both texts
            "engine": ENGINE_VERSION,
            "convergence_steps": list(self.convergence_steps),
            "convergence_layers": list(self.convergence_layers),
        }


def check_settings(out: Path, settings: RunSettings) -> None:
    """Raise InputError when out/run.json holds other settings than these."""
    path = out / RUN
    if not path.exists():
        return
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"'{path}' is not a PairLens run file: choose a new --out folder.") from None
    wanted = settings.to_dict()
    differences = [
        f"{key} {saved.get(key, setting_before(key, saved))!r} -> {value!r}"
        for key, value in wanted.items()
        if saved.get(key, setting_before(key, saved)) != value
    ]
    if differences:
        raise InputError(
            f"'{out}' holds a run with other settings ({'; '.join(differences)}): "
            "use a new --out folder, or the settings of that run to resume it."
        )


def setting_before(key: str, saved: dict[str, Any]) -> Any:
    """What a run.json written before setting `key` existed meant by its absence."""
    if key == "step_cap":  # steps="auto" ran under the default PAIRLENS_MAX_STEPS; a fixed N has no cap
        return 1024 if saved.get("steps") == "auto" else None
    return SETTINGS_BEFORE.get(key)
