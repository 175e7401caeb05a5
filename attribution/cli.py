"""Command line: `python -m attribution` / `pairlens`.

Subcommands: explain, models, serve, plus those of the workflow modules in `SUBCOMMANDS`, each of
which registers itself with `add_parser(subparsers)` and sets `func`. Bad input (a
PairLensError) exits with code 2 and one line on stderr, never a traceback; anything else is
a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import warnings
from collections.abc import Callable, Sequence

from .core import engine
from .core.options import add_explain_options, options_from_args
from .core.tokens import check_text
from .errors import InputError, PairLensError
from .models import list_models, load_model
from .result.output import POS_KEYS, explain_json, summary_text
from .service.cache import cached_explain
from .settings import DEFAULT_MODEL, get_settings

__all__ = ["POS_KEYS", "SUBCOMMANDS", "build_parser", "explain_json", "main", "summary_text"]

# Modules that add a subcommand through `add_parser(subparsers)` (setting `func`).
SUBCOMMANDS = (
    "attribution.workflows.finetune",
    "attribution.workflows.evaluate",
    "attribution.workflows.corpus",
    "attribution.faithfulness.cli",
    "attribution.faithfulness.corpus",
    "attribution.workflows.rank",
    "attribution.workflows.corpus.ranking",
    "attribution.launch",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pairlens", description="Explain which token pairs make two texts similar to a sentence encoder."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    ex = sub.add_parser("explain", help="attribute the similarity of two texts to token pairs")
    ex.add_argument("text_a")
    ex.add_argument("text_b")
    ex.add_argument("--model", default=DEFAULT_MODEL, help=f"built-in name, folder or hub id (default {DEFAULT_MODEL})")
    add_explain_options(ex)
    ex.add_argument("--json", action="store_true", help="print one JSON object")
    ex.add_argument("--pos", action="store_true", help="add POS tags and words to the JSON")
    ex.add_argument("--words", action="store_true", help="word-level matrix (subword cells summed)")
    ex.add_argument("--top", type=int, default=None, metavar="K", help="list the K strongest pairs")
    ex.add_argument(
        "--no-cache", action="store_true", help="compute even if the result cache (PAIRLENS_HOME) has it; store nothing"
    )
    ex.set_defaults(func=_explain)

    sub.add_parser("models", help="list the models and whether each is installed").set_defaults(func=_models)

    sv = sub.add_parser("serve", help="run the HTTP API (attribution.service.http)")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    sv.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    sv.add_argument("--workers", type=int, default=None, help="computations at once (default PAIRLENS_WORKERS)")
    sv.add_argument(
        "--policy", choices=("shortest", "round-robin", "fifo"), default="shortest", help="which chunk runs next"
    )
    sv.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    sv.set_defaults(func=_serve)

    for name in SUBCOMMANDS:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0
    try:
        get_settings()  # a bad environment variable is a usage error too
        return int(func(args))
    except PairLensError as exc:
        print(f"pairlens: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pairlens: interrupted", file=sys.stderr)
        return 130


def _explain(args: argparse.Namespace) -> int:
    limits = get_settings().limits
    check_text(args.text_a, "A", limits.max_text_chars)  # every check before the model loads: bad input fails fast
    check_text(args.text_b, "B", limits.max_text_chars)
    options = options_from_args(args)
    options.check_limits(limits)
    if args.top is not None and args.top < 0:
        raise InputError(f"--top must be 0 or more (got {args.top}).")
    model = load_model(args.model, device=options.device)
    pos = bool(args.pos or args.words or args.top)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # collected in result.warnings and printed below
        if args.no_cache:
            result = engine.explain(model, args.text_a, args.text_b, options, pos=pos, limits=limits)
        else:
            result, _ = cached_explain(model, args.text_a, args.text_b, options, pos=pos, limits=limits)
    for message in result.warnings:
        print(f"pairlens: warning: {message}", file=sys.stderr)
    if args.json:
        json.dump(explain_json(result, pos=args.pos, words=args.words, top=args.top), sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0
    shown = result.to_words() if args.words else result
    print(summary_text(shown, top=args.top if args.top is not None else 5))
    return 0


def _serve(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise InputError(f"--port must be from 1 to 65535 (got {args.port}).")
    if args.workers is not None and not 0 < args.workers <= 64:
        raise InputError(f"--workers must be from 1 to 64 (got {args.workers}).")
    try:
        from .service.http import serve
    except ImportError as exc:
        raise InputError(f"pairlens serve needs FastAPI and uvicorn ({exc}): pip install -r requirements.txt") from None
    serve(args.host, args.port, policy=args.policy, workers=args.workers, log_level=args.log_level)
    return 0


def _models(args: argparse.Namespace) -> int:
    for info in list_models():
        state = "installed" if info.installed else f"not installed: {info.install_hint}"
        print(f"{info.name:<24} {info.kind:<8} {state}\n{'':<24} {info.description}")
    return 0
