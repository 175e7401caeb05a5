"""The operator's cap on the work one page request asks for: the estimate (pure; grows with tokens, steps and
layers), the refusal past the cap, steps=auto stopped at the most nodes the cap allows, and how a front end
tells that stop from PAIRLENS_MAX_STEPS. The page's side is in tests/page/test_page_work_cap.py."""

from __future__ import annotations

import dataclasses
import warnings

import pytest

from attribution import InputError, explain
from attribution.settings import get_settings


def test_within_work_is_the_cap_of_the_estimate(minilm) -> None:  # type: ignore[no-untyped-def]
    """The one place the edges (job queue, /faithfulness, the page's check) apply a server's work cap."""
    from attribution import ExplainOptions
    from attribution.core.work import estimate_work, limit_work, within_work

    options = ExplainOptions()
    assert within_work(minilm, "A cat.", "A dog.", options, None, None) is options  # no cap: as asked
    estimate = estimate_work(minilm, "A cat.", "A dog.", options)
    assert within_work(minilm, "A cat.", "A dog.", options, None, 50 * 20) == limit_work(estimate, options, 50 * 20)
    with pytest.raises(InputError, match="first round of steps=auto"):
        within_work(minilm, "A cat.", "A dog.", options, None, 10)


def test_work_estimate_is_pure_and_grows_with_tokens_steps_and_layers(minilm) -> None:  # type: ignore[no-untyped-def]
    from attribution import ExplainOptions
    from attribution.core.work import estimate_work, limit_work, node_work

    assert node_work((10, 20), layers=2, embedding_dim=384) == (10 * 10 + 20 * 20) * 2
    assert node_work((500,), layers=1, embedding_dim=384) == 384 * 500  # reverse mode: D passes
    assert node_work((5,), layers=0, embedding_dim=384) == 25  # pooling alone still counts
    short = estimate_work(minilm, "A cat.", "A dog.", ExplainOptions(steps=8))
    assert (short.tokens_a, short.nodes, short.layers, short.per_node) == (5, 8, 1, 50)
    longer = estimate_work(minilm, "A cat sat on the mat all day.", "A dog.", ExplainOptions(steps=8))
    more_steps = estimate_work(minilm, "A cat.", "A dog.", ExplainOptions(steps=64))
    lower_layer = estimate_work(minilm, "A cat.", "A dog.", ExplainOptions(steps=8, layer=0))
    assert short.units < min(longer.units, more_steps.units, lower_layer.units)
    fixed = ExplainOptions(steps=64)
    assert limit_work(more_steps, fixed, more_steps.units) is fixed  # at the limit: allowed as asked
    with pytest.raises(InputError, match="fewer steps, shorter texts or a deeper layer") as info:
        limit_work(more_steps, fixed, short.units)
    assert "8.0 times" in str(info.value) and "64 steps" in str(info.value)
    # steps=auto is charged its first round (8 nodes here) and stops at the most nodes the cap allows
    auto = estimate_work(minilm, "A cat.", "A dog.", ExplainOptions())
    assert auto.nodes == 8
    assert limit_work(auto, ExplainOptions(), 10**9).auto_max_steps is None
    capped = limit_work(auto, ExplainOptions(), 50 * 20)
    assert capped.auto_max_steps == 20
    with pytest.raises(InputError, match="first round of steps=auto"):
        limit_work(auto, ExplainOptions(), 50 * 7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = explain(minilm, "A cat.", "A dog.", capped.replace(tolerance=1e-12), pos=False)
    # the adaptive rule refines in steps of several nodes: it stops at the last refinement within the cap
    assert 8 < res.steps <= 20 and not res.converged
    assert res.step_cap == 20  # recorded, so a front end can tell its cap from PAIRLENS_MAX_STEPS
    from components.backend import capped_by_page_work

    assert capped_by_page_work(res)
    # stopped by PAIRLENS_MAX_STEPS itself (a cap at the global maximum): not the page's cap, whatever the steps
    assert not capped_by_page_work(dataclasses.replace(res, step_cap=get_settings().max_steps, steps=12))
    assert not capped_by_page_work(dataclasses.replace(res, converged=True))
    fixed = explain(minilm, "A cat.", "A dog.", steps=4, pos=False)
    assert fixed.step_cap is None and not capped_by_page_work(fixed)
