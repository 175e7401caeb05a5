"""Models: the registry (built-in names, exact models, folders, hub ids) and the loaded model.

A LoadedModel gives the engine the hidden states at the input of any layer and the tail, the
pooled embedding computed from there on; `entry` enters any transformers encoder at a layer.
"""

from .entry import ENTRY_FACTS, NOT_ENTERABLE, TESTED_ARCHITECTURES, Entry, EntryFacts
from .loaded import LoadedModel
from .registry import BUILTIN_MODELS, EXACT_MARKER, ModelInfo, list_models, load_model, resolve_source

__all__ = [
    "BUILTIN_MODELS",
    "ENTRY_FACTS",
    "EXACT_MARKER",
    "NOT_ENTERABLE",
    "TESTED_ARCHITECTURES",
    "Entry",
    "EntryFacts",
    "LoadedModel",
    "ModelInfo",
    "list_models",
    "load_model",
    "resolve_source",
]
