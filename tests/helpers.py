"""Test helpers: hand-built results from the flat field names of the JSON form, two hand-made corpus pairs,
the text of AppTest elements, and data-file lines that corpus runs must survive."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from attribution.core.options import RunOptions
from attribution.result import Attribution


def flat_attribution(**fields: Any) -> Attribution:
    """An Attribution from flat keyword fields (`tokens_a`, `pos_b`, `tag_a`, ... as in to_dict())."""
    return Attribution.from_dict(fields)


def run_options(**changes: Any) -> RunOptions:
    """Resolved options as MiniLM gets them by default (layer 5, cos, defaults limits on the CPU), changed."""
    values: dict[str, Any] = {
        "layer": 5, "steps": "auto", "rule": "gauss-legendre", "mode": "approximate", "similarity": "cos",
        "tolerance": 1e-3, "direction": "auto", "step_cap": 1024, "max_steps": 1024, "memory_budget_mb": 2048,
        "max_tokens": 256, "max_text_chars": 20_000, "device": "cpu", "precision": "fp32", "prompt_name": None,
        "prompt": "",
    }  # fmt: skip
    return RunOptions(**{**values, **changes})


def wait_until(condition: Callable[[], object], what: str, timeout: float = 60.0, poll: float = 0.002) -> None:
    """Poll `condition` until it is true; AssertionError naming `what` after `timeout` seconds (never a hang)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(poll)


def wait_job(client: Any, status_url: str, timeout: float = 120.0) -> dict[str, Any]:
    """Poll a job's status URL (GET /jobs/{id}, /rank/{id}, ...) until it is done, failed or cancelled."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status: dict[str, Any] = client.get(status_url).json()
        if status["state"] in ("done", "failed", "cancelled"):
            return status
        time.sleep(0.05)
    raise AssertionError(f"{status_url} did not finish within {timeout:.0f} s")


def shown_text(markdown: str) -> str:
    """What a Markdown body of literal text shows: backslash escapes of punctuation removed."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


def messages(elements: object) -> str:
    """The text AppTest elements (at.error, at.warning, ...) show, one per line."""
    return "\n".join(shown_text(str(e.value)) for e in elements)  # type: ignore[attr-defined]


# Lines of a JSONL data file that a corpus run must survive: JSON nested past the parser's depth,
# and a lone surrogate (invalid UTF-8 under surrogateescape) in a text.
DEEP = '{"text_a": ' + "[" * 100_000 + "]" * 100_000 + ', "text_b": "x"}'
SURROGATE = '{"text_a": "caf\\udce9 au lait", "text_b": "coffee with milk", "score": 3}'


def hand_result(matrix: list[list[float]], tokens_a: list[str], tokens_b: list[str], pos_a: list[str], pos_b: list[str],
         score: float = 0.5) -> Attribution:  # fmt: skip
    """A hand-made token-level result with POS tags; [CLS]/[SEP] are the special tokens."""
    m = np.array(matrix, dtype=np.float64)
    total = float(m.sum())
    return flat_attribution(
        matrix=m,
        tokens_a=tokens_a,
        tokens_b=tokens_b,
        text_a=" ".join(tokens_a),
        text_b=" ".join(tokens_b),
        score=score,
        target=total,
        attribution_sum=total,
        integration_error=0.0,
        relative_error=0.0,
        reference_terms=score - total,
        layer=5,
        num_layers=6,
        steps=8,
        rule="gauss-legendre",
        mode="approximate",
        similarity="cos",
        model_name="hand",
        seconds=0.01,
        special_a=[t in ("[CLS]", "[SEP]") for t in tokens_a],
        special_b=[t in ("[CLS]", "[SEP]") for t in tokens_b],
        pos_a=pos_a,
        pos_b=pos_b,
    )


# Pair 1: sum 1.0; strongest cells 0.5 (dogs-puppies), 0.3 (run-play), 0.1 (dogs-play), then
# 0.05 twice ([CLS]-[CLS] before run-puppies: ties go by row).
ONE = hand_result(
    [[0.05, 0.00, 0.00], [0.00, 0.50, 0.10], [0.00, 0.05, 0.30]],
    ["[CLS]", "dogs", "run"],
    ["[CLS]", "puppies", "play"],
    ["SPECIAL", "NOUN", "VERB"],
    ["SPECIAL", "NOUN", "VERB"],
    score=0.2,
)
# Pair 2: sum 0.3 from +0.4 and -0.1, so the top pair alone carries 4/3 of the sum.
TWO = hand_result([[0.4], [-0.1]], ["cats", "sleep"], ["cats"], ["NOUN", "VERB"], ["NOUN"], score=0.8)
