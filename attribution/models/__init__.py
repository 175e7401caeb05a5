"""Models: the registry (built-in names, exact models, folders, hub ids) and the loaded model.

A LoadedModel gives the engine the hidden states at the input of any layer and the tail, the
pooled embedding computed from there on.
"""

from .loaded import ARCHITECTURES, ArchitectureFacts, LoadedModel
from .registry import BUILTIN_MODELS, EXACT_MARKER, ModelInfo, list_models, load_model, resolve_source

__all__ = [
    "ARCHITECTURES",
    "BUILTIN_MODELS",
    "EXACT_MARKER",
    "ArchitectureFacts",
    "LoadedModel",
    "ModelInfo",
    "list_models",
    "load_model",
    "resolve_source",
]
