"""ExplainOptions (what a request asks for) and RunOptions (what the engine runs with), validated once.

    request  ExplainOptions(layer=None, steps="auto", ...)     model-independent checks when made
    limits   Limits(max_steps=1024, memory_budget_mb=2048, ...) the operator's limits (an edge reads
             them from PAIRLENS_* with attribution.settings.get_settings().limits; the defaults here
             are the documented defaults)
    resolved ExplainOptions.for_model(model, limits) -> RunOptions: every field concrete (layer,
             mode, similarity, step cap, memory budget, max tokens, device, prompt text)

The engine (attribution.core) receives RunOptions and reads no environment. The persistent cache
key and a corpus run's settings are built from RunOptions, and every result records the
RunOptions it ran under (`Attribution.run_options`), so no knob that changes the numbers can be
missing from a key. The CLI's options (`add_explain_options`, `options_from_args`) build the request.
"""

from __future__ import annotations

import argparse
import dataclasses
import decimal
import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args

from ..defaults import (
    DEFAULT_MAX_TEXT_CHARS,
    DEFAULT_MAX_TOKENS,
    DEFAULT_MEMORY_BUDGET_MB,
    DEFAULT_RULE,
    DEFAULT_TOLERANCE,
    MAX_STEPS,
)
from ..devices import check_device, resolve_device
from ..errors import InputError
from .prompts import ROLES, SIDES, Role, check_role, check_sides, role_prompt_name

Rule = Literal["gauss-legendre", "midpoint", "riemann-right"]
Mode = Literal["approximate", "exact"]
Similarity = Literal["cos", "dot"]
Direction = Literal["auto", "forward", "reverse"]
Precision = Literal["fp32", "bf16"]
Steps = int | Literal["auto"]

RULES: tuple[Rule, ...] = get_args(Rule)
MODES: tuple[Mode, ...] = get_args(Mode)
SIMILARITIES: tuple[Similarity, ...] = get_args(Similarity)
DIRECTIONS: tuple[Direction, ...] = get_args(Direction)
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
_SIMILARITY_ALIASES = {"cos": "cos", "cosine": "cos", "dot": "dot", "dot_product": "dot", "dot-product": "dot"}
MAX_MEMORY_BUDGET_MB = 1 << 20
_DIGITS = re.compile(r"[+-]?[0-9]{1,18}")  # ASCII digits only ("²" is a digit to str.isdigit, not to int)


class ModelDefaults(Protocol):
    """What resolving options needs of a model: a LoadedModel, or the cache's ModelFacts of one not loaded."""

    @property
    def name(self) -> str: ...

    @property
    def num_layers(self) -> int: ...

    @property
    def similarity(self) -> str: ...

    @property
    def default_prompt_name(self) -> str | None: ...

    @property
    def prompts(self) -> Mapping[str, str]: ...

    @property
    def default_layer(self) -> int: ...

    @property
    def default_mode(self) -> str: ...

    def resolve_prompt(self, prompt_name: str | None = None, prompt: str | None = None) -> str | None: ...


@dataclass(frozen=True)
class ExplainOptions:
    """What to compute. None means "the model's default" (resolved by `for_model`).

    layer: attribute at the input of this encoder layer (0 = embeddings; None: the last layer's
    input). steps: quadrature nodes N, or "auto" (raise N until |integration error| <=
    tolerance x |target|). rule: quadrature rule. mode: "approximate" explains f, "exact" the
    shifted f(x) - f(r_x). similarity: "cos" or "dot". direction: "forward" (S JVPs per node),
    "reverse" (D VJPs) or "auto" (the fewer). memory_budget_mb: working memory of one chunk of
    JVPs (None: the operator's, `Limits.memory_budget_mb`). auto_max_steps: the most nodes steps="auto"
    may reach (None: the operator's `Limits.max_steps`); a front end's work cap sets it (attribution.core.work).
    prompt_name: one of the model's saved prompts (e.g. "query"), prepended to both texts as
    sentence-transformers' encode(prompt_name=...) does; prompt: the prompt text itself ("" for
    none, overriding a model's default prompt). Give one or neither; with neither, the model's
    default prompt applies (if it has one). device: where to compute ("cpu", "cuda", "cuda:N",
    "mps", "auto"; None: wherever the model is loaded); explain() on a model loaded elsewhere
    uses a copy loaded on this device (attribution.models.on_device). The device does not change
    the numbers beyond float rounding (1e-4 relative): the cache keys it, a corpus run's settings leave it out.
    precision: "fp32" (default) or "bf16" (the tangent passes run under bfloat16 autocast: faster
    where bf16 matmuls are, less exact; the completeness error reported with the result includes
    its effect).
    Per text (instead of prompt_name / prompt, for retrieval models that encode queries and documents
    differently): role_a / role_b "query" or "document" picks the model's own prompt as
    sentence-transformers' encode_query / encode_document do (attribution.core.prompts);
    prompt_name_a / prompt_a (and _b) name a prompt or give its text. One of the three per text; a
    text with none gets the model's default prompt. `for_model` turns roles into prompt names.
    """

    layer: int | None = None
    steps: Steps = "auto"
    rule: Rule = DEFAULT_RULE
    mode: Mode | None = None
    similarity: Similarity | None = None
    tolerance: float = DEFAULT_TOLERANCE
    direction: Direction = "auto"
    memory_budget_mb: int | None = None
    auto_max_steps: int | None = None
    prompt_name: str | None = None
    prompt: str | None = None
    device: str | None = None
    precision: Precision = "fp32"
    role_a: Role | None = None
    role_b: Role | None = None
    prompt_name_a: str | None = None
    prompt_name_b: str | None = None
    prompt_a: str | None = None
    prompt_b: str | None = None

    def __post_init__(self) -> None:
        checked = {
            "layer": None if self.layer is None else whole_number(self.layer, "layer", 0, None),
            "steps": check_steps(self.steps),
            "rule": choice(self.rule if self.rule is not None else DEFAULT_RULE, "rule", RULES),
            "mode": None if self.mode is None else choice(self.mode, "mode", MODES),
            "similarity": None if self.similarity is None else check_similarity(self.similarity),
            "tolerance": check_tolerance(self.tolerance),
            "direction": choice(self.direction, "direction", DIRECTIONS),
            "memory_budget_mb": None
            if self.memory_budget_mb is None
            else whole_number(self.memory_budget_mb, "memory_budget_mb", 1, MAX_MEMORY_BUDGET_MB),
            "auto_max_steps": None
            if self.auto_max_steps is None
            else whole_number(self.auto_max_steps, "auto_max_steps", 1, MAX_STEPS),
            "prompt_name": None if self.prompt_name is None else check_prompt_name(self.prompt_name),
            "prompt": None if self.prompt is None else check_prompt(self.prompt),
            "device": None if self.device is None else check_device(self.device),
            "precision": choice(self.precision, "precision", PRECISIONS),
        }
        for side in SIDES:
            role, name, text = (getattr(self, f"{kind}_{side}") for kind in ("role", "prompt_name", "prompt"))
            checked[f"role_{side}"] = None if role is None else check_role(role, f"role_{side}")
            checked[f"prompt_name_{side}"] = None if name is None else check_prompt_name(name)
            checked[f"prompt_{side}"] = None if text is None else check_prompt(text)
        if checked["prompt_name"] is not None and checked["prompt"] is not None:
            raise InputError("Give either prompt_name (one of the model's prompts) or prompt (its text), not both.")
        check_sides(checked)
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @classmethod
    def create(cls, **values: object) -> ExplainOptions:
        """ExplainOptions from values of any type (user input): each is checked, InputError if wrong."""
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            names = ", ".join(f.name for f in dataclasses.fields(cls))
            raise InputError(f"Unknown option {unknown[0]!r}: the options are {names}.")
        return cls(**values)  # type: ignore[arg-type]

    @property
    def fixed_steps(self) -> int | None:
        """N for a fixed rule, None for steps="auto"."""
        return None if self.steps == "auto" else int(self.steps)

    def replace(self, **changes: Any) -> ExplainOptions:
        return dataclasses.replace(self, **changes)

    @property
    def per_side(self) -> bool:
        """True when the texts have prompts of their own (role_a, prompt_name_b, ...)."""
        return any(
            getattr(self, f"{kind}_{side}") is not None for side in SIDES for kind in ("role", "prompt_name", "prompt")
        )

    def side_prompts(self, model: ModelDefaults) -> tuple[str | None, str | None]:
        """The prompt texts of A and B (None: no prompt), as sentence-transformers would prepend them."""
        if not self.per_side:
            shared = model.resolve_prompt(self.prompt_name, self.prompt)
            return shared, shared
        first, second = (model.resolve_prompt(*self._side_prompt(model, side)) for side in SIDES)
        return first, second

    def _side_prompt(self, model: ModelDefaults, side: str) -> tuple[str | None, str | None]:
        """(prompt name, prompt text) of one text, its role resolved; both None: the model's default."""
        role, name, text = (getattr(self, f"{kind}_{side}") for kind in ("role", "prompt_name", "prompt"))
        if role is not None:
            name = role_prompt_name(model.prompts, role)
        return name, text

    def check_limits(self, limits: Limits) -> None:
        """InputError when this request asks for more than the operator's limits allow (steps, auto_max_steps,
        prompt length); for_model runs it, and a front end may run it before loading a model."""
        if self.fixed_steps is not None and self.fixed_steps > limits.max_steps:
            raise InputError(
                f"steps must be 'auto' or a whole number from 1 to {limits.max_steps} (got {self.fixed_steps})."
            )
        if self.auto_max_steps is not None and self.auto_max_steps > limits.max_steps:
            raise InputError(
                f"auto_max_steps must be a whole number from 1 to {limits.max_steps} (got {self.auto_max_steps})."
            )
        for text in (self.prompt, self.prompt_a, self.prompt_b):
            if text is not None:
                check_prompt(text, limits.max_text_chars)

    def for_model(self, model: ModelDefaults, limits: Limits | None = None) -> RunOptions:
        """The RunOptions this request runs with on `model` under the operator's `limits` (None: the
        documented defaults): the model's defaults filled in (layer, mode, similarity, default prompt, roles
        as the prompts they pick),
        the layer checked against its depth, the prompt against its prompts and the limits, the steps
        against limits.max_steps, the device made concrete. The one place options are resolved."""
        limits = limits or Limits()
        layer = model.default_layer if self.layer is None else check_layer(self.layer, model.num_layers, model.name)
        self.check_limits(limits)
        prompt_name, prompt = self.prompt_name, self.prompt
        if self.per_side:
            prompt_name, prompt = self._side_prompt(model, "a")
        resolved = model.resolve_prompt(prompt_name, prompt)  # InputError for a name the model lacks
        if prompt_name is None and prompt is None:
            prompt_name = model.default_prompt_name
        side_b: dict[str, Any] = {}
        if self.per_side:  # B's own prompt (attribution.core.prompts)
            name_b, text_b = self._side_prompt(model, "b")
            resolved_b = model.resolve_prompt(name_b, text_b)
            if name_b is None and text_b is None:
                name_b = model.default_prompt_name
            side_b = {"prompt_name_b": name_b, "prompt_b": resolved_b or ""}
        if self.device is not None:
            device = resolve_device(self.device)
        else:
            device = getattr(model, "device", None) or resolve_device(limits.device)
        return RunOptions(
            layer=layer,
            steps=self.steps,
            rule=self.rule,
            mode=self.mode or model.default_mode,  # type: ignore[arg-type]
            similarity=self.similarity or model.similarity,  # type: ignore[arg-type]
            tolerance=self.tolerance,
            direction=self.direction,
            step_cap=min(self.auto_max_steps or limits.max_steps, limits.max_steps),
            max_steps=limits.max_steps,
            memory_budget_mb=self.memory_budget_mb or limits.memory_budget_mb,
            max_tokens=min(model_max_tokens(model), limits.max_tokens),
            max_text_chars=limits.max_text_chars,
            device=device,
            precision=self.precision,
            prompt_name=prompt_name,
            prompt=resolved or "",
            **side_b,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the fields by name."""
        return dataclasses.asdict(self)


def model_max_tokens(model: object) -> int:
    """The most tokens the model itself reads per text (before the operator's limit)."""
    own = getattr(model, "model_max_tokens", None) or getattr(model, "max_tokens", None)
    return int(own) if own else DEFAULT_MAX_TOKENS


@dataclass(frozen=True)
class Limits:
    """The operator's limits resolving options needs; an edge (CLI, page, service, corpus run) reads them
    from the environment with `attribution.settings.get_settings().limits`. Defaults: the documented ones.

    max_steps: the most quadrature nodes (PAIRLENS_MAX_STEPS); memory_budget_mb: working memory of one
    chunk of tangent passes (PAIRLENS_MEMORY_BUDGET_MB); max_tokens: tokens per text, longer texts are
    truncated (PAIRLENS_MAX_TOKENS); max_text_chars: characters accepted per text (PAIRLENS_MAX_TEXT_CHARS);
    device: where a model named by a string loads ("auto", "cpu", "cuda:N", "mps"; PAIRLENS_DEVICE).
    """

    max_steps: int = MAX_STEPS
    memory_budget_mb: int = DEFAULT_MEMORY_BUDGET_MB
    max_tokens: int = DEFAULT_MAX_TOKENS
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS
    device: str = "auto"


@dataclass(frozen=True)
class RunOptions:
    """What the engine runs with: an ExplainOptions resolved for one model and the operator's limits
    (`ExplainOptions.for_model(model, limits)`). Every field is concrete.

    layer, steps, rule, mode, similarity, tolerance, direction, precision: as ExplainOptions, defaults
    filled in. step_cap: the most nodes steps="auto" may reach (the request's auto_max_steps, else
    max_steps). max_steps: the operator's cap on nodes. memory_budget_mb: working memory of one chunk
    of tangent passes. max_tokens: tokens per text (the model's own limit or the operator's, the
    lower). max_text_chars: characters accepted per text. device: where the computation runs
    ("cpu", "cuda:0", "mps"). prompt_name: the saved prompt used (None: none by name); prompt: the
    prompt text prepended to both texts ("" for none), or to text A alone when prompt_b is set:
    prompt_name_b / prompt_b: B's own (per-text prompts, e.g. role_a="query", role_b="document").
    """

    layer: int
    steps: Steps
    rule: Rule
    mode: Mode
    similarity: Similarity
    tolerance: float
    direction: Direction
    step_cap: int
    max_steps: int
    memory_budget_mb: int
    max_tokens: int
    max_text_chars: int
    device: str
    precision: Precision
    prompt_name: str | None
    prompt: str
    prompt_name_b: str | None = None
    prompt_b: str | None = None

    @property
    def fixed_steps(self) -> int | None:
        """N for a fixed rule, None for steps="auto"."""
        return None if self.steps == "auto" else int(self.steps)

    @property
    def budget_bytes(self) -> int:
        return self.memory_budget_mb * 2**20

    @property
    def side_prompts(self) -> tuple[str, str]:
        """The prompt texts of A and B ("" for none)."""
        return self.prompt, self.prompt if self.prompt_b is None else self.prompt_b

    @property
    def capped(self) -> bool:
        """steps="auto" was given a cap below the operator's (auto_max_steps, e.g. a server's work cap)."""
        return self.step_cap < self.max_steps

    def replace(self, **changes: Any) -> RunOptions:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the fields by name (what a result records as `run_options`)."""
        return dataclasses.asdict(self)

    def result_fields(self) -> dict[str, Any]:
        """The fields that can change the numbers of a result: the persistent cache key's options.

        Left out: max_steps and max_text_chars (limits that refuse a request, never change a result);
        step_cap for fixed steps (it caps steps="auto" only). The memory budget (how the work is
        chunked) and the device change the numbers by float rounding, so they are in.
        """
        fields = self.to_dict()
        del fields["max_steps"], fields["max_text_chars"]
        if self.prompt_b is None:  # one prompt for both texts: the key as before per-text prompts
            del fields["prompt_name_b"], fields["prompt_b"]
        if self.fixed_steps is not None:
            fields["step_cap"] = None
        return fields


# ----------------------------------------------------------------------------- checks


def whole_number(value: object, name: str, low: int, high: int | None) -> int:
    """`value` as an int when it is a whole number in [low, high]; else InputError naming `name`."""
    span = f"from {low} to {high}" if high is not None else f"of at least {low}"
    wanted = f"{name} must be a whole number {span} (got {_short(value)})."
    if isinstance(value, bool):
        raise InputError(wanted)
    if isinstance(value, numbers.Integral):
        number = int(value)
    elif isinstance(value, (numbers.Real, decimal.Decimal)):
        try:
            exact = value if isinstance(value, decimal.Decimal) else decimal.Decimal(float(value))
            if not exact.is_finite() or exact != exact.to_integral_value():
                raise InputError(wanted)
            number = int(exact)
        except (ValueError, TypeError, ArithmeticError):
            raise InputError(wanted) from None
    elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        number = int(value.strip())
    else:
        raise InputError(wanted)
    if number < low or (high is not None and number > high):
        raise InputError(wanted)
    return number


def check_layer(value: object, num_layers: int, model_name: str) -> int:
    """A layer of this model: a whole number from 0 to num_layers (its depth); else InputError naming the model."""
    try:
        return whole_number(value, "layer", 0, num_layers)
    except InputError:
        wanted = f"layer must be a whole number from 0 to {num_layers} for {model_name} (got {_short(value)})."
        raise InputError(wanted) from None


def given_options(options: object, option_values: dict[str, Any]) -> ExplainOptions:
    """The options a call was given: an ExplainOptions, or its fields by keyword (not both)."""
    if options is not None and option_values:
        raise InputError("Give either an ExplainOptions or option keywords, not both.")
    if options is None:
        return ExplainOptions.create(**option_values)
    if not isinstance(options, ExplainOptions):
        raise InputError(f"options must be an ExplainOptions, not {type(options).__name__}.")
    return options


def check_steps(value: object, max_steps: int = MAX_STEPS) -> Steps:
    """'auto' (any case) or a whole number from 1 to max_steps (the operator's is checked by for_model)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        return whole_number(value, "steps", 1, max_steps)
    except InputError:
        wanted = f"steps must be 'auto' or a whole number from 1 to {max_steps} (got {_short(value)})."
        raise InputError(wanted) from None


def choice(value: object, name: str, allowed: tuple[str, ...]) -> Any:
    """`value` when it is one of `allowed` (strings); else InputError listing them."""
    if isinstance(value, str) and value in allowed:
        return value
    listed = ", ".join(f"'{a}'" for a in allowed)
    raise InputError(f"Unknown {name} {_short(value)}: choose one of {listed}.")


def check_similarity(value: object) -> Similarity:
    if isinstance(value, str) and value.strip().lower() in _SIMILARITY_ALIASES:
        return _SIMILARITY_ALIASES[value.strip().lower()]  # type: ignore[return-value]
    raise InputError(f"Unknown similarity {_short(value)}: choose 'cos' or 'dot'.")


def check_tolerance(value: object) -> float:
    """A positive finite number (NumPy floats and Decimals accepted)."""
    wanted = f"tolerance must be a positive number such as 1e-3 (got {_short(value)})."
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, decimal.Decimal)):
        raise InputError(wanted)
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(wanted) from None
    if not math.isfinite(number) or number <= 0:
        raise InputError(wanted)
    return number


def check_prompt_name(value: object) -> str:
    """A non-empty string (the name of one of the model's prompts; checked against them by for_model)."""
    if not isinstance(value, str) or not value.strip():
        raise InputError(
            f"prompt_name must be the name of one of the model's prompts, such as 'query' (got {_short(value)})."
        )
    return value.strip()


def check_prompt(value: object, limit: int | None = None) -> str:
    """A string ("" for no prompt), no longer than `limit` characters when given (for_model checks the
    operator's PAIRLENS_MAX_TEXT_CHARS)."""
    if not isinstance(value, str):
        raise InputError(f"prompt must be text such as 'query: ' (got {_short(value)}).")
    if limit is not None and len(value) > limit:
        raise InputError(f"The prompt has {len(value):,} characters, more than the limit of {limit:,}: shorten it.")
    return value


def _short(value: object, limit: int = 60) -> str:
    """repr(value), cut to `limit` characters (messages never echo a huge input whole)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ----------------------------------------------------------------------------- command line


def _steps_argument(value: str) -> Steps:
    try:
        return check_steps(value)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_explain_options(parser: argparse.ArgumentParser) -> None:
    """--layer --steps --rule --mode --similarity --tolerance --precision --prompt-name --prompt --device,
    as ExplainOptions takes them."""
    parser.add_argument("--layer", type=int, default=None, help="attribute at the input of this layer (default: last)")
    parser.add_argument("--steps", type=_steps_argument, default="auto", help="quadrature nodes N, or 'auto' (default)")
    parser.add_argument("--rule", choices=RULES, default=DEFAULT_RULE, help=f"quadrature rule (default {DEFAULT_RULE})")
    parser.add_argument("--mode", choices=MODES, default=None, help="default: exact for exact models, else approximate")
    parser.add_argument("--similarity", choices=SIMILARITIES, default=None, help="default: the model's own")
    parser.add_argument(
        "--tolerance", type=float, default=DEFAULT_TOLERANCE, help="relative integration error for --steps auto"
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="tangent passes in fp32 (default) or bf16 autocast (faster on bf16 hardware; larger integration error)",
    )
    prompts = parser.add_mutually_exclusive_group()
    prompts.add_argument(
        "--prompt-name", default=None, metavar="NAME", help="one of the model's prompts (e.g. query), for both texts"
    )
    prompts.add_argument(
        "--prompt", default=None, metavar="TEXT", help="prompt text prepended to both texts ('' for none)"
    )
    for side in SIDES:
        text = side.upper()
        mine = parser.add_mutually_exclusive_group()
        mine.add_argument(
            f"--role-{side}", choices=ROLES, default=None,
            help=f"text {text} is a query or a document: the model's own "
            "prompt for it, as sentence-transformers' encode_query / encode_document pick it",
        )  # fmt: skip
        mine.add_argument(
            f"--prompt-name-{side}", default=None, metavar="NAME", help=f"one of the model's prompts, for text {text}"
        )
        mine.add_argument(
            f"--prompt-{side}", default=None, metavar="TEXT", help=f"prompt text prepended to text {text}"
        )
    parser.add_argument(
        "--device",
        default=None,
        metavar="DEVICE",
        help="cpu, cuda, cuda:N, mps or auto (default: PAIRLENS_DEVICE, else auto = cuda when available)",
    )


def options_from_args(args: argparse.Namespace) -> ExplainOptions:
    """The ExplainOptions of parsed `add_explain_options` arguments (checked before any model loads)."""
    return ExplainOptions.create(
        layer=args.layer,
        steps=args.steps,
        rule=args.rule,
        mode=args.mode,
        similarity=args.similarity,
        tolerance=args.tolerance,
        prompt_name=getattr(args, "prompt_name", None),
        prompt=getattr(args, "prompt", None),
        device=getattr(args, "device", None),
        precision=getattr(args, "precision", "fp32"),
        **{
            f"{kind}_{side}": getattr(args, f"{kind}_{side}", None)
            for side in SIDES
            for kind in ("role", "prompt_name", "prompt")
        },
    )
