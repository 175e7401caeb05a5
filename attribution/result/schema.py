"""The JSON form of an `Attribution`: an explicit, versioned schema and its codec.

Schema 2 (this version) is flat, like the CLI contract: one key per result field plus one key
per text field with the side as suffix (`tokens_a`, `tag_b`, ...), `"schema": 2` and `"model"`
(the same as `model_name`). Floats that are not finite: in the matrix and the required numbers
`null` is NaN (as in schema 1); elsewhere NaN is the string "NaN"; infinities are "Infinity" and
"-Infinity". Optional fields are `null` when absent.

Optional keys added within schema 2 (absent in older files, read as null): `model_score` (the
model's own similarity; differs from `score` in exact mode) and `exact_model`.

`prompt_a` / `prompt_b` (a flag per row: the prompt's tokens; empty without a prompt) were added
within schema 2: files written before them read with empty lists. So was `error_bound` (the
adaptive rule's certified bound on the relative error, null otherwise): older files read it as null.
And `step_cap` (steps="auto": the most nodes per text the run was allowed, PAIRLENS_MAX_STEPS or a
caller's lower work cap; null for a fixed N or in older files). And `run_options` (an object: the
resolved options the result was computed under, attribution.core.options.RunOptions by field name:
layer, steps, rule, mode, similarity, tolerance, direction, step_cap, max_steps, memory_budget_mb,
max_tokens, max_text_chars, device, precision, prompt_name, prompt; null in older files).

Schema 1 (files written before TextSide) has the same keys; its `null` in `tolerance` and
`special_share` meant "absent" too, so both versions decode alike.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .record import Attribution

SCHEMA_VERSION = 2

READABLE_VERSIONS = (1, 2)

# TextSide field -> JSON key stem (the side's suffix is added: "tags" -> "tag_a").
SIDE_KEYS: dict[str, str] = {
    "text": "text",
    "tokens": "tokens",
    "offsets": "offsets",
    "special": "special",
    "truncated": "truncated",
    "pos": "pos",
    "tags": "tag",
    "word_index": "word_index",
    "words": "words",
    "word_pos": "word_pos",
    "prompt": "prompt",
}
REQUIRED_FLOATS = ("score", "target", "attribution_sum", "integration_error", "relative_error", "reference_terms")
OPTIONAL_FLOATS = ("tolerance", "special_share", "model_score", "error_bound")
INTS = ("layer", "num_layers", "steps")
STRINGS = ("rule", "mode", "similarity", "model_name", "level")
_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def encode_float(x: float | None, null_is_nan: bool = False) -> float | str | None:
    """A JSON value for a float: itself when finite, else null (null_is_nan) or its name."""
    if x is None:
        return None
    x = float(x)
    if math.isfinite(x):
        return x
    if math.isnan(x):
        return None if null_is_nan else "NaN"
    return "Infinity" if x > 0 else "-Infinity"


def decode_float(value: Any, null_is_nan: bool = False) -> float | None:
    """The inverse of encode_float."""
    if value is None:
        return math.nan if null_is_nan else None
    if isinstance(value, str):
        if value not in _SPECIAL_FLOATS:
            raise ValueError(f"not a number: {value!r}")
        return _SPECIAL_FLOATS[value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"not a number: {value!r}")
    return float(value)


def _required_float(value: Any) -> float:
    """decode_float for a value that is never absent (null is NaN)."""
    number = decode_float(value, null_is_nan=True)
    assert number is not None
    return number


def encode(result: Attribution) -> dict[str, Any]:
    """`result` as a JSON-ready dictionary of schema SCHEMA_VERSION."""
    matrix = np.asarray(result.matrix, dtype=np.float64)
    out: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "model": result.model_name,
        "matrix": [[encode_float(x, null_is_nan=True) for x in row] for row in matrix.tolist()],
    }
    for name in REQUIRED_FLOATS:
        out[name] = encode_float(getattr(result, name), null_is_nan=True)
    out["seconds"] = encode_float(result.seconds, null_is_nan=True)
    for name in OPTIONAL_FLOATS:
        out[name] = encode_float(getattr(result, name))
    for name in (*INTS, *STRINGS):
        out[name] = getattr(result, name)
    out["converged"] = bool(result.converged)
    out["error_by_steps"] = [[int(n), encode_float(e)] for n, e in result.error_by_steps]
    out["warnings"] = list(result.warnings)
    out["pos_note"] = result.pos_note
    out["exact_model"] = result.exact_model
    out["step_cap"] = None if result.step_cap is None else int(result.step_cap)
    out["run_options"] = None if result.run_options is None else dict(result.run_options)
    for suffix, side in (("a", result.a), ("b", result.b)):
        for attr, stem in SIDE_KEYS.items():
            value = getattr(side, attr)
            if attr == "offsets":
                value = [[int(s), int(e)] for s, e in value]
            elif isinstance(value, list):
                value = list(value)
            out[f"{stem}_{suffix}"] = value
    return out


def decode_fields(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(the Attribution's fields but its sides, {"a": TextSide fields, "b": ...}) of a dictionary of schema
    1 or 2 (ValueError or KeyError when it is not one); `Attribution.from_dict` builds the objects."""
    if not isinstance(data, dict):
        raise ValueError("an attribution must be a JSON object")
    version = data.get("schema", 1)
    if version not in READABLE_VERSIONS:
        raise ValueError(
            f"attribution schema {version!r} is not readable by this version "
            f"(it reads {READABLE_VERSIONS}): upgrade PairLens"
        )
    sides = {}
    for suffix in ("a", "b"):
        values: dict[str, Any] = {}
        for attr, stem in SIDE_KEYS.items():
            key = f"{stem}_{suffix}"
            if key in data:
                values[attr] = data[key]
        if "offsets" in values:
            values["offsets"] = [(int(s), int(e)) for s, e in values["offsets"]]
        for name in ("text", "tokens"):
            if name not in values:
                raise KeyError(f"{name}_{suffix}")
        sides[suffix] = values
    n_a, n_b = len(sides["a"]["tokens"]), len(sides["b"]["tokens"])
    matrix = np.array(
        [[decode_float(x, null_is_nan=True) for x in row] for row in data["matrix"]], dtype=np.float64
    ).reshape(n_a, n_b)
    kwargs: dict[str, Any] = {"matrix": matrix}
    for name in (*REQUIRED_FLOATS, "seconds"):
        kwargs[name] = _required_float(data[name])
    for name in OPTIONAL_FLOATS:
        kwargs[name] = decode_float(data.get(name))
    for name in INTS:
        kwargs[name] = int(data[name])
    kwargs["model_name"] = str(data.get("model_name", data.get("model")))
    for name in ("rule", "mode", "similarity"):
        kwargs[name] = str(data[name])
    kwargs["level"] = str(data.get("level", "token"))
    kwargs["converged"] = bool(data.get("converged", True))
    kwargs["error_by_steps"] = [(int(n), _required_float(e)) for n, e in data.get("error_by_steps", [])]
    kwargs["warnings"] = [str(w) for w in data.get("warnings", [])]
    kwargs["pos_note"] = data.get("pos_note")
    exact_model = data.get("exact_model")
    kwargs["exact_model"] = None if exact_model is None else bool(exact_model)
    step_cap = data.get("step_cap")
    kwargs["step_cap"] = None if step_cap is None else int(step_cap)
    run_options = data.get("run_options")
    kwargs["run_options"] = dict(run_options) if isinstance(run_options, dict) else None
    return kwargs, sides


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of `Attribution.to_dict()` output."""
    number = {"type": ["number", "null"]}
    special = {"enum": list(_SPECIAL_FLOATS)}
    any_float = {"oneOf": [{"type": "number"}, {"type": "null"}, special]}
    strings = {"type": "array", "items": {"type": "string"}}
    optional_strings = {"type": ["array", "null"], "items": {"type": "string"}}
    side_props: dict[str, Any] = {
        "text": {"type": "string"},
        "tokens": strings,
        "offsets": {
            "type": "array",
            "items": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
        },
        "special": {"type": "array", "items": {"type": "boolean"}},
        "truncated": {"type": "boolean"},
        "pos": optional_strings,
        "tag": optional_strings,
        "word_index": {"type": ["array", "null"], "items": {"type": "integer"}},
        "words": optional_strings,
        "word_pos": optional_strings,
        "prompt": {"type": "array", "items": {"type": "boolean"}},
    }
    properties: dict[str, Any] = {
        "schema": {"const": SCHEMA_VERSION},
        "model": {"type": "string"},
        "model_name": {"type": "string"},
        "matrix": {"type": "array", "items": {"type": "array", "items": {"oneOf": [number, special]}}},
        **{name: {"oneOf": [number, special]} for name in (*REQUIRED_FLOATS, "seconds")},
        **{name: any_float for name in OPTIONAL_FLOATS},
        **{name: {"type": "integer"} for name in INTS},
        "rule": {"type": "string"},
        "mode": {"enum": ["approximate", "exact"]},
        "similarity": {"enum": ["cos", "dot"]},
        "level": {"enum": ["token", "word"]},
        "converged": {"type": "boolean"},
        "error_by_steps": {
            "type": "array",
            "items": {"type": "array", "prefixItems": [{"type": "integer"}, any_float], "minItems": 2, "maxItems": 2},
        },
        "warnings": strings,
        "pos_note": {"type": ["string", "null"]},
        "exact_model": {"type": ["boolean", "null"]},
        "step_cap": {"type": ["integer", "null"], "minimum": 1},
        "run_options": {"type": ["object", "null"]},
    }
    for suffix in ("a", "b"):
        for stem, schema in side_props.items():
            properties[f"{stem}_{suffix}"] = schema
    required = [
        "schema", "model", "matrix", *REQUIRED_FLOATS, "seconds", *INTS, "rule", "mode", "similarity",
        "text_a", "text_b", "tokens_a", "tokens_b",
    ]  # fmt: skip
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://pairlens.dev/schema/attribution-{SCHEMA_VERSION}.json",
        "title": f"PairLens attribution (schema {SCHEMA_VERSION})",
        "type": "object",
        "properties": properties,
        "required": required,
    }
