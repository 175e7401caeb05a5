"""Every setting that can change a result is part of the persistent cache key (issue 22).

The operator's settings (PAIRLENS_MAX_STEPS, PAIRLENS_MAX_TOKENS, PAIRLENS_MEMORY_BUDGET_MB) are
read at the edges and folded into the resolved options (RunOptions), from which the key is built;
so a result computed under one value is never served under another. Through the real cache
(`cached_explain`, `lookup_unloaded`) and, for the step cap, through the CLI (the reported bug).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from attribution import ExplainOptions
from attribution.cli import main
from attribution.devices import available_devices
from attribution.service import cache as cache_module
from attribution.service.cache import ResultCache, cached_explain, lookup_unloaded

A, B = "A man is playing a guitar on stage.", "Someone performs music with an instrument."
LONG = "one two three four five six seven eight nine ten eleven twelve"

# setting -> (variable, value, options, text A): each value changes what the engine computes
SETTINGS: dict[str, tuple[str, str, ExplainOptions, str]] = {
    "step cap": ("PAIRLENS_MAX_STEPS", "16", ExplainOptions(layer=0), A),  # auto stops at 16 nodes
    "max tokens": ("PAIRLENS_MAX_TOKENS", "8", ExplainOptions(steps=2), LONG),  # text A truncated to 8 tokens
    "memory budget": ("PAIRLENS_MEMORY_BUDGET_MB", "64", ExplainOptions(steps=2), A),  # other chunks
}


def quiet_explain(model: Any, text_a: str, options: ExplainOptions, cache: ResultCache) -> tuple[Any, bool]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # truncation and non-convergence notes: in result.warnings
        return cached_explain(model, text_a, B, options, pos=False, cache=cache)


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_changing_a_setting_misses_the_cache(
    setting: str, minilm: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    variable, value, options, text_a = SETTINGS[setting]
    cache = ResultCache(tmp_path / "c.sqlite", 64 << 20)
    monkeypatch.setenv(variable, value)
    under, hit = quiet_explain(minilm, text_a, options, cache)
    assert not hit
    again, hit = quiet_explain(minilm, text_a, options, cache)
    assert hit and again.to_dict() == under.to_dict()  # the cache works for an unchanged setting
    monkeypatch.delenv(variable)
    default, hit = quiet_explain(minilm, text_a, options, cache)
    assert not hit, f"{variable}={value} served its result under the default"
    assert default.run_options != under.run_options  # each result records the options it ran under
    if setting == "step cap":
        assert under.steps <= 16 and not under.converged and default.converged and default.steps > 16
        assert (under.run_options or {})["step_cap"] == 16 and (default.run_options or {})["step_cap"] == 1024
    if setting == "max tokens":
        assert len(under.a.tokens) == 8 and len(default.a.tokens) > 8
    monkeypatch.setenv(variable, value)
    back, hit = quiet_explain(minilm, text_a, options, cache)
    assert hit and back.to_dict() == under.to_dict()  # and the first entry is still there


def test_precision_misses_the_cache(minilm: Any, tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "c.sqlite", 64 << 20)
    fp32, hit32 = quiet_explain(minilm, A, ExplainOptions(steps=2), cache)
    bf16, hit16 = quiet_explain(minilm, A, ExplainOptions(steps=2, precision="bf16"), cache)
    assert (hit32, hit16) == (False, False)
    assert (fp32.run_options or {})["precision"] == "fp32" and (bf16.run_options or {})["precision"] == "bf16"


def test_device_misses_the_cache(minilm: Any, tmp_path: Path) -> None:
    devices = available_devices()
    if len(devices) < 2:
        pytest.skip(f"one device here ({devices[0]}): the key's device field is tested in test_cache.py")
    cache = ResultCache(tmp_path / "c.sqlite", 64 << 20)
    first, hit1 = quiet_explain(minilm, A, ExplainOptions(steps=2, device=devices[0]), cache)
    other, hit2 = quiet_explain(minilm, A, ExplainOptions(steps=2, device=devices[1]), cache)
    assert (hit1, hit2) == (False, False)
    assert (first.run_options or {})["device"] == devices[0] and (other.run_options or {})["device"] == devices[1]


def test_lookup_without_loading_follows_the_token_limit(
    minilm: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restarted server answers from the cache before loading: under the settings in force now."""
    path = tmp_path / "c.sqlite"
    monkeypatch.setenv("PAIRLENS_MAX_TOKENS", "8")
    quiet_explain(minilm, LONG, ExplainOptions(steps=2), ResultCache(path, 64 << 20))
    monkeypatch.setattr(cache_module, "_facts", {})  # a new process knows no model facts
    fresh = ResultCache(path, 64 << 20)
    hit = lookup_unloaded(fresh, "all-MiniLM-L6-v2", LONG, B, ExplainOptions(steps=2), pos=False)
    assert hit is not None and len(hit.a.tokens) == 8
    monkeypatch.delenv("PAIRLENS_MAX_TOKENS")
    assert lookup_unloaded(fresh, "all-MiniLM-L6-v2", LONG, B, ExplainOptions(steps=2), pos=False) is None


def test_cli_step_cap_is_not_served_under_the_default_cap(
    minilm: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The reported bug: PAIRLENS_MAX_STEPS=16 `pairlens explain A B --layer 0 --json`, then the same
    with the default cap, served the capped, unconverged result from the persistent cache."""
    monkeypatch.setenv("PAIRLENS_HOME", str(tmp_path / "home"))  # a cache of its own
    monkeypatch.setenv("PAIRLENS_MAX_STEPS", "16")
    assert main(["explain", A, B, "--layer", "0", "--json"]) == 0
    capped = json.loads(capsys.readouterr().out)
    monkeypatch.delenv("PAIRLENS_MAX_STEPS")
    assert main(["explain", A, B, "--layer", "0", "--json"]) == 0
    default = json.loads(capsys.readouterr().out)
    assert capped["steps"] <= 16 and capped["converged"] is False and capped["step_cap"] == 16
    assert default["converged"] is True and default["steps"] > 16 and default["step_cap"] == 1024
    assert main(["explain", A, B, "--layer", "0", "--json"]) == 0  # the default result is cached in turn
    assert json.loads(capsys.readouterr().out)["steps"] == default["steps"]
