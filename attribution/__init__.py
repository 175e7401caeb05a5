"""PairLens: which token pairs make a sentence encoder find two texts similar.

    from attribution import load_model, explain
    model = load_model("all-MiniLM-L6-v2")
    res = explain(model, "A man plays a guitar.", "Someone plays an instrument.")
    res.matrix  # (len(res.a), len(res.b)) contributions to the similarity
    many = explain_many(model, [(a1, b1), (a2, b2), ...])  # many pairs at once, same results
    ranking = explain_ranking(model, query, candidates)  # the model's ranking, a map per candidate

The data path, one package per stage: core (options, tokens, quadrature, jacobian,
completeness, engine) -> models (states at layer L, the tail) -> result (record, views, words,
linguistics) -> viz (figures); workflows (data, evaluate, finetune, corpus) build on them.
"""

from .api import explain, explain_many
from .core.execution import Cancelled, Progress, Run
from .core.options import ExplainOptions, Limits, RunOptions
from .errors import InputError, ModelError, PairLensError
from .models import LoadedModel, list_models, load_model
from .ranking import Contrast, RankedCandidate, Ranking, explain_ranking, rank_scores
from .result import Attribution, TextSide, annotate

__all__ = [
    "Attribution",
    "Cancelled",
    "Contrast",
    "ExplainOptions",
    "InputError",
    "Limits",
    "LoadedModel",
    "ModelError",
    "PairLensError",
    "Progress",
    "RankedCandidate",
    "Ranking",
    "Run",
    "RunOptions",
    "TextSide",
    "annotate",
    "explain",
    "explain_many",
    "explain_ranking",
    "list_models",
    "load_model",
    "rank_scores",
]
__version__ = "0.3.0"  # the one definition: pyproject reads it (dynamic version)
