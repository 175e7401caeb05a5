"""PairLens: which token pairs make a sentence encoder find two texts similar.

    from attribution import load_model, explain
    model = load_model("all-MiniLM-L6-v2")
    res = explain(model, "A man plays a guitar.", "Someone plays an instrument.")
    res.matrix  # (len(res.tokens_a), len(res.tokens_b)) contributions to the similarity
"""

from .engine import explain
from .errors import InputError, ModelError, PairLensError
from .models import LoadedModel, list_models, load_model
from .result import Attribution

__all__ = [
    "Attribution",
    "InputError",
    "LoadedModel",
    "ModelError",
    "PairLensError",
    "explain",
    "list_models",
    "load_model",
]
__version__ = "0.1.0"
