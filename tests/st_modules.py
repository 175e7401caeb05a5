"""sentence-transformers' module classes for the tests, from any supported release (3.x-6.x).

6.x moved them (sentence_transformers.base.modules..., sentence_transformers.sentence_transformer.modules)
and keeps `sentence_transformers.models` as a deprecated alias; 3.x-5.x have only the latter. A class the
installed release lacks (StaticEmbedding before 3.2) skips the test that needs it.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import pytest

_NEW_HOMES = {
    "Dense": "sentence_transformers.base.modules.dense",
    "Normalize": "sentence_transformers.base.modules.normalize",
    "Transformer": "sentence_transformers.base.modules.transformer",
    "Pooling": "sentence_transformers.sentence_transformer.modules.pooling",
    "StaticEmbedding": "sentence_transformers.sentence_transformer.modules",
}


def st_module(name: str) -> Any:
    """The class `name` (Dense, Normalize, Transformer, Pooling, StaticEmbedding) of the installed release."""
    try:
        return getattr(importlib.import_module(_NEW_HOMES[name]), name)
    except (ImportError, AttributeError):
        pass
    models = importlib.import_module("sentence_transformers.models")
    found = getattr(models, name, None)
    if found is None:
        import sentence_transformers

        pytest.skip(f"sentence-transformers {sentence_transformers.__version__} has no {name} module")
    return found


def transformer_module(path: str, max_seq_length: int, model_kwargs: dict[str, Any]) -> Any:
    """A Transformer module loading `path` with `model_kwargs` (3.x call them model_args)."""
    transformer = st_module("Transformer")
    parameters = inspect.signature(transformer.__init__).parameters
    key = "model_kwargs" if "model_kwargs" in parameters else "model_args"
    return transformer(path, max_seq_length=max_seq_length, **{key: model_kwargs})
