"""The result: one Attribution record per text pair, its JSON schema, and pure views of it."""

from .linguistics import annotate
from .record import Attribution, TextSide
from .schema import SCHEMA_VERSION, json_schema
from .views import CoverageLevel, PosSummary, TopPair, coverage, pos_summary, top_pairs, without_special_tokens
from .words import to_words

__all__ = [
    "SCHEMA_VERSION",
    "Attribution",
    "CoverageLevel",
    "PosSummary",
    "TextSide",
    "TopPair",
    "annotate",
    "coverage",
    "json_schema",
    "pos_summary",
    "to_words",
    "top_pairs",
    "without_special_tokens",
]
