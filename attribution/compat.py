"""The supported transformers / sentence-transformers releases, and the few places where they differ.

PairLens reads sentence-transformers' modules through public attributes only. Where releases differ
(sentence-transformers 6 has `Pooling.pooling_mode` and `get_embedding_dimension()`; 3.x-5.x have
`get_pooling_mode_str()` and `get_sentence_embedding_dimension()`) the helpers here pick what the
installed release has. `check_versions()` refuses a release outside the tested range with one
`ModelError` that names what is installed and what is supported.

The range is checked by `make compat` (tools/compat.py): it installs the built wheel next to the
oldest and the newest supported releases and runs the engine's oracle tests there.
"""

from __future__ import annotations

import importlib.metadata
import re
from typing import Any

from .errors import ModelError

# (lowest supported release, first release NOT supported): the range in pyproject.toml and the docs.
SUPPORTED: dict[str, tuple[str, str]] = {
    "transformers": ("4.41", "6"),
    "sentence-transformers": ("3.0", "7"),
}


def release(version: str) -> tuple[int, ...]:
    """The numeric release of a version string: '4.57.6' -> (4, 57, 6), '5.0.0rc1' -> (5, 0, 0)."""
    parts: list[int] = []
    for piece in version.split("+")[0].split("."):
        match = re.match(r"\d+", piece)
        if match is None:
            break
        parts.append(int(match.group()))
        if match.end() < len(piece):  # '0rc1': the release ends here
            break
    return tuple(parts)


def supported_text() -> str:
    """'transformers >=4.41,<6 and sentence-transformers >=3.0,<7'."""
    return " and ".join(f"{name} >={low},<{high}" for name, (low, high) in SUPPORTED.items())


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_versions(installed: dict[str, str | None] | None = None) -> None:
    """ModelError unless every package of SUPPORTED is installed within its range.

    installed: {name: version or None} (default: what importlib.metadata finds).
    """
    found = installed if installed is not None else {name: installed_version(name) for name in SUPPORTED}
    problems = []
    for name, (low, high) in SUPPORTED.items():
        version = found.get(name)
        if version is None:
            problems.append(f"{name} is not installed")
        elif not release(low) <= release(version) < release(high):
            problems.append(f"{name} {version} is installed")
    if problems:
        raise ModelError(
            f"PairLens cannot load models here: {'; '.join(problems)}. It supports {supported_text()}: "
            f'install a supported release, e.g. pip install "transformers>={SUPPORTED["transformers"][0]},'
            f'<{SUPPORTED["transformers"][1]}" "sentence-transformers>={SUPPORTED["sentence-transformers"][0]},'
            f'<{SUPPORTED["sentence-transformers"][1]}".'
        )


# Architectures whose implementation in older transformers releases PairLens cannot differentiate:
# model_type -> (first release that works, why older ones do not).
ARCHITECTURE_NEEDS: dict[str, tuple[str, str]] = {
    "deberta-v2": (
        "4.47",
        "older releases compute its attention softmax in a custom autograd function (XSoftmax) that "
        "forward-mode differentiation (torch.func) cannot run",
    ),
    "modernbert": (
        "5",
        "with transformers 4.x, entering it at its last layer does not reproduce its embedding (measured by make "
        "compat with 4.49.0 and 4.57.6: a difference of 1.2e-2), so its maps would not be its own",
    ),
}


def check_architecture(architecture: str, display: str, transformers_version: str | None = None) -> None:
    """ModelError when the installed transformers implements `architecture` in a way PairLens cannot enter."""
    if architecture not in ARCHITECTURE_NEEDS:
        return
    version = transformers_version or installed_version("transformers") or "0"
    first, why = ARCHITECTURE_NEEDS[architecture]
    if release(version) < release(first):
        raise ModelError(
            f"'{display}' is a {architecture} model, which PairLens explains with transformers >={first}: "
            f'{why}. transformers {version} is installed: upgrade it, e.g. pip install "transformers>={first},'
            f'<{SUPPORTED["transformers"][1]}".'
        )


def pooling_mode(pooling: Any) -> str:
    """A Pooling module's mode as one string ('mean', 'cls', 'max', 'mean+max', ...).

    sentence-transformers 6 keeps it in `pooling_mode` (a string or a list of strings); 3.x-5.x
    answer `get_pooling_mode_str()` from their `pooling_mode_*_tokens` flags.
    """
    mode = getattr(pooling, "pooling_mode", None)
    if mode is None:
        as_text = getattr(pooling, "get_pooling_mode_str", None)
        if as_text is None:
            raise ModelError(
                f"This sentence-transformers release's Pooling module tells neither pooling_mode nor "
                f"get_pooling_mode_str(); PairLens supports {supported_text()}."
            )
        mode = as_text()
    return mode if isinstance(mode, str) else "+".join(str(m) for m in mode)


def embedding_dimension(st: Any) -> int:
    """The dimension of a SentenceTransformer's embedding (6: get_embedding_dimension, 3.x-5.x:
    get_sentence_embedding_dimension)."""
    get = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
    return int(get())


def tokenize(st: Any, texts: list[str]) -> dict[str, Any]:
    """sentence-transformers' own features for `texts` (6: preprocess, 3.x-5.x: tokenize)."""
    prepare = getattr(st, "preprocess", None) or st.tokenize
    return dict(prepare(texts))
