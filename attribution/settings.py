"""All configuration in one place: defaults and the operator's environment variables.

| variable                     | default            | meaning                                         |
|------------------------------|--------------------|-------------------------------------------------|
| PAIRLENS_HOME                | ~/.cache/pairlens  | cache: assembled models, fine-tuned models      |
| PAIRLENS_MAX_TOKENS          | 256                | tokens per text (longer texts are truncated)    |
| PAIRLENS_MAX_STEPS           | 1024               | largest number of quadrature nodes              |
| PAIRLENS_MEMORY_BUDGET_MB    | 2048               | engine working memory per chunk of JVPs         |
| PAIRLENS_RESULT_CACHE        | 64                 | results kept by the page's cache                |
| PAIRLENS_MAX_TEXT_CHARS      | 20000              | characters accepted per text                    |
| PAIRLENS_ALLOW_CUSTOM_MODELS | 0                  | page accepts typed local paths / hub ids if 1   |
| PAIRLENS_MAX_PAGE_WORK       | 1500000            | work one page request may ask for (core.work)   |
| PAIRLENS_CACHE_MB            | 256                | persistent result cache on disk (0: off)        |
| PAIRLENS_WORKERS             | 4                  | computations a backend runs at once             |
| PAIRLENS_MAX_JOBS            | 32                 | jobs queued or running; more are refused (busy) |
| PAIRLENS_CHUNK_MB            | 512                | memory budget of one scheduled chunk (fairness) |
| PAIRLENS_BACKEND_URL         | (none)             | the page uses this `pairlens serve` backend     |
| PAIRLENS_DEVICE              | auto               | cpu, cuda, cuda:N, mps; auto: cuda if present    |
| PAIRLENS_CONFIRM_SECONDS     | 60                 | page: a map estimated longer asks before it runs |
| PAIRLENS_ALLOWED_HOSTS       | (none)             | API Host names answered (comma-separated; * any) |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .core.options import Limits
from .defaults import (
    DEFAULT_MAX_PAGE_WORK,
    DEFAULT_MAX_TEXT_CHARS,
    DEFAULT_MAX_TOKENS,
    DEFAULT_MEMORY_BUDGET_MB,
    DEFAULT_MODEL,
    DEFAULT_RULE,
    DEFAULT_TOLERANCE,
    EXAMPLE_PAIR,
    MAX_STEPS,
)
from .devices import check_device
from .errors import InputError

__all__ = [
    "DEFAULT_MAX_PAGE_WORK", "DEFAULT_MODEL", "DEFAULT_RULE", "DEFAULT_TOLERANCE", "EXAMPLE_PAIR", "Settings",
    "get_settings",
]  # fmt: skip


def _env_int(name: str, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InputError(f"{name}={raw!r} is not a whole number; set it to one between {low} and {high}.") from None
    if not low <= value <= high:
        raise InputError(f"{name}={value} is out of range; set it to a number between {low} and {high}.")
    return value


@dataclass(frozen=True)
class Settings:
    home: Path
    max_tokens: int
    max_steps: int
    memory_budget_mb: int
    result_cache: int
    max_text_chars: int
    allow_custom_models: bool
    max_page_work: int  # attribution.core.work units: tokens x passes x nodes x layers
    cache_mb: int
    workers: int
    max_jobs: int
    chunk_mb: int
    backend_url: str | None
    device: str = "auto"  # where models load by default (attribution.devices), checked against this machine
    confirm_seconds: int = 60  # the page asks before starting a map its cost estimate puts above this
    allowed_hosts: str | None = None  # Host names `pairlens serve` answers (None: loopback and the bound address)

    @property
    def limits(self) -> Limits:
        """The limits resolving options needs (`ExplainOptions.for_model(model, limits)`): what the edges pass in."""
        return Limits(
            max_steps=self.max_steps,
            memory_budget_mb=self.memory_budget_mb,
            max_tokens=self.max_tokens,
            max_text_chars=self.max_text_chars,
            device=self.device,
        )

    @property
    def models_dir(self) -> Path:
        """Fine-tuned (exact) models live here and are listed by the registry."""
        return self.home / "models"

    @property
    def cache_path(self) -> Path:
        """The persistent result cache (SQLite), shared by the page, the CLI and the corpus analysis."""
        return self.home / "cache" / "results.sqlite"


def get_settings() -> Settings:
    """Read the environment now (cheap; call where needed so tests can set variables)."""
    home = Path(os.environ.get("PAIRLENS_HOME") or Path.home() / ".cache" / "pairlens").expanduser()
    return Settings(
        home=home,
        max_tokens=_env_int("PAIRLENS_MAX_TOKENS", DEFAULT_MAX_TOKENS, 4, 8192),
        max_steps=_env_int("PAIRLENS_MAX_STEPS", MAX_STEPS, 1, MAX_STEPS),
        memory_budget_mb=_env_int("PAIRLENS_MEMORY_BUDGET_MB", DEFAULT_MEMORY_BUDGET_MB, 64, 1 << 20),
        result_cache=_env_int("PAIRLENS_RESULT_CACHE", 64, 1, 100_000),
        max_text_chars=_env_int("PAIRLENS_MAX_TEXT_CHARS", DEFAULT_MAX_TEXT_CHARS, 1, 10_000_000),
        max_page_work=_env_int("PAIRLENS_MAX_PAGE_WORK", DEFAULT_MAX_PAGE_WORK, 1, 10**15),
        allow_custom_models=os.environ.get("PAIRLENS_ALLOW_CUSTOM_MODELS", "0").strip().lower() in ("1", "true", "yes"),
        cache_mb=_env_int("PAIRLENS_CACHE_MB", 256, 0, 1 << 20),
        workers=_env_int("PAIRLENS_WORKERS", 4, 1, 64),
        max_jobs=_env_int("PAIRLENS_MAX_JOBS", 32, 1, 100_000),
        chunk_mb=_env_int("PAIRLENS_CHUNK_MB", 512, 1, 1 << 20),
        backend_url=(os.environ.get("PAIRLENS_BACKEND_URL") or "").strip() or None,
        device=_env_device(),
        confirm_seconds=_env_int("PAIRLENS_CONFIRM_SECONDS", 60, 0, 10**6),
        allowed_hosts=(os.environ.get("PAIRLENS_ALLOWED_HOSTS") or "").strip() or None,
    )


def _env_device() -> str:
    """PAIRLENS_DEVICE checked against this machine ("auto" when unset)."""
    raw = os.environ.get("PAIRLENS_DEVICE")
    if raw is None or raw.strip() == "":
        return "auto"
    return check_device(raw, "PAIRLENS_DEVICE")
