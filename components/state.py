"""Every input of the page as one `PageState`, to and from the URL query string and session state.

Query string (repeated keys for lists): a, b, model (1-3), layer (one per model: a whole
number or "default"), steps ("auto" or N), rule, mode ("default", "approximate", "exact"),
level ("token", "word"), special, pos, shared (1/0), top (0-50), diff ("1,2": which two
models, 1-based, the difference map compares), prompt_name and prompt (absent: none
given), roles (per-text prompts: "query,document" and the other ROLE_CHOICES; absent: one prompt for
both texts), view ("map", "links"), clip ("none", "99", "95", "90": percentile where colours
saturate), dm (difference map: "share" or "raw"), tool ("whatif", "sweep" or absent), tm
(the tool's model, 1-based), edit (what-if edits, repeated: a:10-16:mask, see
attribution.whatif.Edit). The engine's options (steps, rule, mode, prompt_name, prompt, roles, layer)
are checked by the library itself (ExplainOptions.create, check_limits): a refused value keeps
its default and core's own message becomes a notice. Other invalid values are clamped or
ignored, each with a notice for the page to show.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from attribution.core.options import MODES, ExplainOptions, Limits, check_layer
from attribution.errors import InputError
from attribution.models import ModelInfo
from attribution.settings import DEFAULT_MODEL, DEFAULT_RULE, EXAMPLE_PAIR, get_settings
from attribution.whatif import Edit, check_edits

MAX_MODELS = 3
MAX_TOP = 50
DEFAULT_TOP = 5
MODE_OPTIONS = ("default", *MODES)  # "default": the model's own (ExplainOptions.mode None)
LEVEL_OPTIONS = ("token", "word")
VIEW_OPTIONS = ("map", "links")
CLIP_OPTIONS = ("none", "99", "95", "90")
DIFF_MODES = ("share", "raw")
TOOL_OPTIONS = ("", "whatif", "sweep")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
LAYER_KEY_PREFIX = "layer::"
DEFAULT_LAYER = "default"  # the layer widget's value for the engine's default (None in PageState)
# Text roles: each text gets the model's own query or document prompt, as sentence-transformers'
# encode_query / encode_document pick them (ExplainOptions.role_a / role_b). "": one prompt for both
# texts, from the Prompt name / Prompt text boxes.
ROLE_CHOICES = {
    "": "Same prompt for both texts",
    "query,document": "A is a query, B a document",
    "document,query": "A is a document, B a query",
    "query,query": "Both are queries",
    "document,document": "Both are documents",
}


ECHO_CHARS = 40  # the most characters of a value from a link that a notice repeats
_MARKDOWN_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character


def cut(text: str, limit: int = ECHO_CHARS) -> str:
    """`text` cut to `limit` characters (an ellipsis marks the cut)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quoted(value: object, limit: int = ECHO_CHARS) -> str:
    """How a notice repeats a value it was given: repr(value), cut to `limit` characters."""
    return cut(repr(value), limit)


def core_message(exc: InputError, value: object, limit: int = ECHO_CHARS) -> str:
    """The library's message refusing `value`, with its echo of the value cut to `limit` characters
    (the library cuts its echoes longer; the page repeats at most ECHO_CHARS of a value)."""
    message, echo = str(exc), repr(value)
    start = message.find(echo[:limit])
    if len(echo) <= limit or start < 0:
        return message
    end = start
    while end < len(message) and end - start < len(echo) and message[end] == echo[end - start]:
        end += 1
    if message.startswith("…", end):
        end += 1
    return message[:start] + quoted(value, limit) + message[end:]


def literal_markdown(text: str) -> str:
    """Plain text as Markdown that shows exactly these characters.

    Every ASCII punctuation character is backslash-escaped (CommonMark allows it for all of
    them) and line breaks become spaces, so no link, image, autolink, HTML, emphasis, heading,
    list or Streamlit directive (`:red[...]`) can come out of a value echoed from a link.
    Notices and error messages are plain text; the renderers pass them through this.
    """
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", " ".join(text.splitlines()))


def layer_key(model: str) -> str:
    """Session-state key of a model's layer widget."""
    return LAYER_KEY_PREFIX + model


@dataclass
class PageState:
    """All inputs: what is computed (texts, models, layers, options) and how it is shown.

    options: the engine's options as the library checked them (layer None: each model's layer is in
    `layers`; pages/explain.py's run_options puts one in). prompt_name_unused / prompt_unused: what the
    Prompt name and Prompt text boxes hold while the options do not use it (the text wins over the name, as
    the engine takes one of them; text roles win over both); kept so a link or a rerun restores the boxes.
    """

    text_a: str = EXAMPLE_PAIR[0]
    text_b: str = EXAMPLE_PAIR[1]
    models: list[str] = field(default_factory=lambda: [DEFAULT_MODEL])
    layers: dict[str, int | None] = field(default_factory=dict)  # None or absent: engine default
    options: ExplainOptions = field(default_factory=ExplainOptions)
    level: str = "token"
    special: bool = True
    pos: bool = False
    shared: bool = True
    top: int = DEFAULT_TOP
    diff: tuple[int, int] = (0, 1)  # indices into models
    view: str = "map"
    clip: str = "none"
    diffmode: str = "share"
    tool: str = ""
    tool_model: int = 0  # index into models
    edits: list[str] = field(default_factory=list)  # Edit.to_param() strings
    prompt_name_unused: str = ""
    prompt_unused: str = ""

    def layer_of(self, model: str) -> int | None:
        return self.layers.get(model)

    @property
    def prompt_name(self) -> str:
        """What the Prompt name box holds ("" when empty)."""
        return self.options.prompt_name or self.prompt_name_unused

    @property
    def prompt_text(self) -> str:
        """What the Prompt text box holds ("" when empty)."""
        return self.options.prompt or self.prompt_unused

    @property
    def roles(self) -> str:
        """The Text roles choice: "query,document" and the like, "" for one prompt for both texts."""
        role_a, role_b = self.options.role_a, self.options.role_b
        return f"{role_a},{role_b}" if role_a and role_b else ""

    def clip_value(self) -> float | None:
        """The percentile where colours saturate, or None for the full range."""
        return None if self.clip == "none" else float(self.clip)

    def diff_pair(self) -> tuple[int, int] | None:
        """The two model indices the difference map compares, or None with fewer than 2 models."""
        if len(self.models) < 2:
            return None
        i, j = self.diff
        if i == j or not (0 <= i < len(self.models) and 0 <= j < len(self.models)):
            return (0, 1)
        return (i, j)


def diff_options(n_models: int) -> list[tuple[int, int]]:
    """Every ordered choice of two different models (first minus second)."""
    return [(i, j) for i in range(n_models) for j in range(n_models) if i != j]


def _last(params: Mapping[str, Sequence[str]], key: str) -> str | None:
    values = params.get(key)
    if values is None:
        return None
    if isinstance(values, str):
        return values
    return values[-1] if values else None


def _all(params: Mapping[str, Sequence[str]], key: str) -> list[str]:
    values = params.get(key)
    if values is None:
        return []
    if isinstance(values, str):
        return [values]
    return list(values)


def _bool(raw: str | None, name: str, default: bool, notices: list[str]) -> bool:
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    notices.append(f"{name}={quoted(raw)} is not 1 or 0; using {int(default)}.")
    return default


DEFAULT_NAMES = {"steps": "auto", "rule": DEFAULT_RULE, "mode": "the model's default"}


def checked_options(
    raw: Mapping[str, str | None], limits: Limits, notices: list[str], where: str = ""
) -> tuple[ExplainOptions, str, str]:
    """ExplainOptions from the page's values of steps, rule, mode, prompt_name, prompt and roles (strings;
    absent or None: the default), each checked by the library (ExplainOptions.create, then check_limits
    against the operator's limits). A refused value keeps its default, and core's message (its echo of the
    value cut to ECHO_CHARS) is added to `notices`, prefixed with "KEY= in the link: " when `where` is "link".

    mode "default" means the model's own; an empty prompt name or prompt text means none given; with both
    given the prompt text wins. roles (one of ROLE_CHOICES) gives each text the model's query or document
    prompt and then the Prompt name and text are not used (a notice says so). Returns the options, the
    prompt name and the prompt text not used ("" otherwise).
    """
    values: dict[str, str | None] = {key: raw.get(key) for key in ("steps", "rule", "mode")}
    if values["mode"] == "default":
        values["mode"] = None
    roles_prefix = "roles= in the link: " if where == "link" else ""
    roles = (raw.get("roles") or "").strip()
    if roles not in ROLE_CHOICES:
        known = ", ".join(repr(r) for r in ROLE_CHOICES if r)
        notices.append(f"{roles_prefix}{quoted(roles)} is not one of {known}; using one prompt for both texts.")
        roles = ""
    name = (raw.get("prompt_name") or "").strip()
    text = raw.get("prompt") or ""
    if roles:
        values["role_a"], values["role_b"] = roles.split(",")
        if name or text:
            notices.append(f"{roles_prefix}Text roles give each text the model's own query or document prompt: the "
                           "Prompt name and Prompt text are not used.")  # fmt: skip
        unused_name, unused_text = name, text
    else:
        unused_name, unused_text = (name if text else ""), ""
        values["prompt"], values["prompt_name"] = (text, None) if text else (None, name or None)
    options = ExplainOptions()
    for key, value in values.items():
        if value is None:
            continue
        try:
            candidate = ExplainOptions.create(**{**options.to_dict(), key: value})
            candidate.check_limits(limits)
        except InputError as exc:
            prefix = f"{key}= in the link: " if where == "link" else ""
            default = DEFAULT_NAMES.get(key, "none")
            notices.append(f"{prefix}{core_message(exc, value)} Using {default}.")
            continue
        options = candidate
    return options, unused_name, unused_text


def parse_query(
    params: Mapping[str, Sequence[str]],
    models: Sequence[ModelInfo],
    *,
    allow_custom: bool = False,
) -> tuple[PageState, list[str]]:
    """A PageState from URL parameters (list per key) and notices for every value not taken as is."""
    notices: list[str] = []
    state = PageState()
    max_chars = get_settings().max_text_chars
    for key, attr in (("a", "text_a"), ("b", "text_b")):
        raw = _last(params, key)
        if raw is None:
            continue
        if len(raw) > max_chars:
            notices.append(
                f"Text {key.upper()} from the link had {len(raw):,} characters; cut to the limit of {max_chars:,}."
            )
            raw = raw[:max_chars]
        setattr(state, attr, raw)

    by_name = {m.name: m for m in models}
    by_lower = {m.name.lower(): m for m in models}
    requested = _all(params, "model")
    raw_layers = _all(params, "layer")
    chosen: list[str] = []
    layers: dict[str, int | None] = {}
    for k, name in enumerate(requested):
        info = by_name.get(name) or by_lower.get(name.strip().lower())
        if info is None and not allow_custom:
            notices.append(f"Model {quoted(name)} is not available here; ignored.")
            continue
        if info is not None and not info.installed:
            notices.append(f"Model '{info.name}' is not installed ({info.install_hint}); ignored.")
            continue
        resolved = info.name if info is not None else name.strip()
        if resolved in chosen:
            continue
        if len(chosen) == MAX_MODELS:
            notices.append(f"At most {MAX_MODELS} models side by side; {quoted(resolved)} ignored.")
            continue
        chosen.append(resolved)
        if k < len(raw_layers):
            layers[resolved] = _parse_layer(raw_layers[k], resolved, notices)
    if len(raw_layers) > len(requested):  # a layer= pairs with the model= at its position
        notices.append(
            f"layer={quoted(raw_layers[len(requested)])} has no model= to go with (write model=NAME&layer=N); ignored."
        )
    if requested and not chosen:
        notices.append(f"No usable model in the link; showing {DEFAULT_MODEL}.")
    if chosen:
        state.models = chosen
    state.layers = layers

    if (raw := _last(params, "level")) is not None:
        if raw in LEVEL_OPTIONS:
            state.level = raw
        else:
            notices.append(f"level={quoted(raw)} is not token or word; using token.")
    state.special = _bool(_last(params, "special"), "special", state.special, notices)
    state.pos = _bool(_last(params, "pos"), "pos", state.pos, notices)
    state.shared = _bool(_last(params, "shared"), "shared", state.shared, notices)
    if (raw := _last(params, "top")) is not None:
        state.top = _parse_top(raw, notices)
    if (raw := _last(params, "diff")) is not None:
        state.diff = _parse_diff(raw, len(state.models), notices)
    for key, attr, options in (
        ("view", "view", VIEW_OPTIONS),
        ("clip", "clip", CLIP_OPTIONS),
        ("dm", "diffmode", DIFF_MODES),
    ):
        if (raw := _last(params, key)) is not None:
            if raw in options:
                setattr(state, attr, raw)
            else:
                notices.append(f"{key}={quoted(raw)} is not one of {', '.join(options)}; using {getattr(state, attr)}.")
    if (raw := _last(params, "tool")) is not None:
        if raw in TOOL_OPTIONS:
            state.tool = raw
        else:
            notices.append(f"tool={quoted(raw)} is not whatif or sweep; ignored.")
    if (raw := _last(params, "tm")) is not None:
        if raw.strip().isdigit() and 1 <= int(raw) <= len(state.models):
            state.tool_model = int(raw) - 1
        else:
            notices.append(f"tm={quoted(raw)} does not name one of the {len(state.models)} models; using the first.")
    state.edits = _parse_edits(_all(params, "edit"), state.text_a, state.text_b, notices)
    option_values = {key: _last(params, key) for key in ("steps", "rule", "mode", "prompt_name", "roles")}
    if (raw := _last(params, "prompt")) is not None:
        if len(raw) > max_chars:
            notices.append(f"The prompt from the link had {len(raw):,} characters; cut to the limit of {max_chars:,}.")
        option_values["prompt"] = raw[:max_chars]
    if option_values["prompt_name"] is not None:
        option_values["prompt_name"] = option_values["prompt_name"].strip()[:200]
    state.options, state.prompt_name_unused, state.prompt_unused = checked_options(
        option_values, get_settings().limits, notices, where="link"
    )
    return state, notices


def _parse_edits(raw: list[str], text_a: str, text_b: str, notices: list[str]) -> list[str]:
    """The edit parameters that are valid for these texts (each refused one gets a notice)."""
    kept: list[Edit] = []
    for item in raw:
        try:
            edit = Edit.from_param(item)
            check_edits(text_a, text_b, [*kept, edit])
        except InputError as exc:
            notices.append(f"{exc} The edit was ignored.")
            continue
        kept.append(edit)
    return [e.to_param() for e in kept]


def _parse_layer(raw: str, model: str, notices: list[str]) -> int | None:
    """A link's layer for `model`, checked as ExplainOptions checks it ("default": None); a refused one
    gets core's message and the default layer (the model's depth is checked once it is loaded)."""
    if raw.strip().lower() in ("", "default", "auto"):
        return None
    try:
        return ExplainOptions.create(layer=raw).layer
    except InputError as exc:
        notices.append(f"layer= in the link for {cut(model)}: {core_message(exc, raw)} Using the default layer.")
        return None


def checked_layer(value: int | None, num_layers: int, model: str) -> tuple[int | None, str | None]:
    """A requested layer checked against the model's depth by the library (`check_layer`); a refused one
    becomes None (the model's default layer) with core's message as a notice."""
    if value is None:
        return None, None
    try:
        return check_layer(value, num_layers, cut(model)), None
    except InputError as exc:
        return None, f"{core_message(exc, value)} Using the default layer."


def _parse_top(raw: str, notices: list[str]) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        notices.append(f"top={quoted(raw)} is not a whole number; using {DEFAULT_TOP}.")
        return DEFAULT_TOP
    if not 0 <= value <= MAX_TOP:
        clamped = min(max(value, 0), MAX_TOP)
        notices.append(f"top={quoted(value)} is outside 0–{MAX_TOP}; using {clamped}.")
        return clamped
    return value


def _parse_diff(raw: str, n_models: int, notices: list[str]) -> tuple[int, int]:
    try:
        first, second = (int(part) - 1 for part in raw.split(","))
    except ValueError:
        notices.append(f"diff={quoted(raw)} is not two model numbers such as 1,2; comparing the first two models.")
        return (0, 1)
    if n_models >= 2 and (first == second or not (0 <= first < n_models and 0 <= second < n_models)):
        notices.append(f"diff={quoted(raw)} does not name two of the {n_models} models; comparing the first two.")
        return (0, 1)
    return (first, second)


def to_query(state: PageState) -> dict[str, str | list[str]]:
    """The URL parameters that restore `state` (see the module docstring)."""
    out: dict[str, str | list[str]] = {
        "a": state.text_a,
        "b": state.text_b,
        "model": list(state.models),
        "layer": ["default" if state.layer_of(m) is None else str(state.layer_of(m)) for m in state.models],
        "steps": str(state.options.steps),
        "rule": state.options.rule,
        "mode": state.options.mode or "default",
        "level": state.level,
        "special": "1" if state.special else "0",
        "pos": "1" if state.pos else "0",
        "shared": "1" if state.shared else "0",
        "top": str(state.top),
    }
    pair = state.diff_pair()
    if pair is not None:
        out["diff"] = f"{pair[0] + 1},{pair[1] + 1}"
    out.update(view=state.view, clip=state.clip, dm=state.diffmode)
    if state.tool:
        out["tool"] = state.tool
        out["tm"] = str(state.tool_model + 1)
    if state.edits:
        out["edit"] = list(state.edits)
    if state.prompt_name:
        out["prompt_name"] = state.prompt_name
    if state.prompt_text:
        out["prompt"] = state.prompt_text
    if state.roles:
        out["roles"] = state.roles
    return out


# The longest share link offered. Streamlit's server answers a blank HTTP 400 to request lines
# of about 130 kB, and proxies and CDNs often stop at 32 kB; longer views are shared as JSON.
MAX_LINK_CHARS = 32_000


def share_url(page_url: str | None, query: Mapping[str, str | list[str]]) -> str:
    """The absolute link that reopens `query` on the page at `page_url` (its own query dropped)."""
    base = (page_url or "http://localhost:8501/").split("?", 1)[0].split("#", 1)[0]
    return base + "?" + urlencode(query, doseq=True)


def link_problem(link: str, limit: int = MAX_LINK_CHARS) -> str | None:
    """None when `link` can be shared, else a notice saying why not and what to do instead."""
    if len(link) <= limit:
        return None
    return (
        f"This view's link would be {len(link):,} characters long, more than a link can safely carry "
        f"({limit:,}; longer ones are refused by the server): shorten the texts to share a link, or share "
        "the result as JSON (download it below)."
    )


# Session-state keys of the widgets (layers: layer_key(model); the options: OPTION_KEYS).
SESSION_KEYS = (
    "text_a",
    "text_b",
    "models",
    "level",
    "special",
    "pos",
    "shared",
    "top",
    "diff",
    "view",
    "clip",
    "diffmode",
    "tool",
    "tool_model",
    "edits",
)
OPTION_KEYS = ("steps", "rule", "mode", "prompt_name", "prompt", "roles")


def to_session(state: PageState) -> dict[str, Any]:
    """Widget values for session state."""
    out: dict[str, Any] = {key: getattr(state, key) for key in SESSION_KEYS}
    out["models"] = list(state.models)
    out["edits"] = list(state.edits)
    out["tool"] = state.tool or None  # the tool picker's "nothing chosen"
    out.update(
        steps=str(state.options.steps),
        rule=state.options.rule,
        mode=state.options.mode or "default",
        prompt_name=state.prompt_name,
        prompt=state.prompt_text,
        roles=state.roles,
    )
    for model, layer in state.layers.items():
        out[layer_key(model)] = DEFAULT_LAYER if layer is None else layer
    return out


def session_layer(value: Any) -> int | None:
    """A layer widget's value as PageState holds it (None for the default)."""
    return None if value is None or value == DEFAULT_LAYER else int(value)


def from_session(session: Any, notices: list[str] | None = None) -> PageState:
    """The PageState the widgets currently hold (missing keys: defaults); `session` is any mapping.

    The options are checked by the library (`checked_options`): a refused widget value (a typed number of
    steps) keeps its default, and core's message is added to `notices` when given."""
    default = PageState()
    values: dict[str, Any] = {key: session[key] for key in SESSION_KEYS if key in session}
    state = replace(default, **values)
    raw = {key: None if session.get(key) is None else str(session[key]) for key in OPTION_KEYS}
    state.options, state.prompt_name_unused, state.prompt_unused = checked_options(
        raw, get_settings().limits, [] if notices is None else notices
    )
    state.models = list(state.models)  # may be empty: the page then asks for a model
    state.layers = {m: session_layer(session.get(layer_key(m))) for m in state.models}
    state.diff = tuple(state.diff) if state.diff else (0, 1)  # type: ignore[assignment]
    state.tool = state.tool or ""
    state.tool_model = int(state.tool_model or 0) if int(state.tool_model or 0) < len(state.models) else 0
    state.edits = list(state.edits or [])
    return state
