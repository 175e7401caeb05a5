"""Command line: `python -m attribution` / `pairlens`.

Subcommands: explain, models, plus those of other modules registered in `SUBCOMMANDS`.
Bad input exits with code 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from .errors import PairLensError
from .settings import DEFAULT_MODEL, MODES, RULES, get_settings

# Modules that add a subcommand through `add_parser(subparsers)` and run it with `run(args) -> int`.
SUBCOMMANDS = ("attribution.finetune", "attribution.evaluate", "attribution.corpus")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _steps(value: str) -> int | str:
    if value.strip().lower() == "auto":
        return "auto"
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"steps must be 'auto' or a whole number, not {value!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pairlens", description="Explain which token pairs make two texts similar to a sentence encoder."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    ex = sub.add_parser("explain", help="attribute the similarity of two texts to token pairs")
    ex.add_argument("text_a")
    ex.add_argument("text_b")
    ex.add_argument("--model", default=DEFAULT_MODEL, help=f"built-in name, folder or hub id (default {DEFAULT_MODEL})")
    ex.add_argument(
        "--layer", type=int, default=None, help="attribute at the input of this layer (default: last layer)"
    )
    ex.add_argument("--steps", type=_steps, default="auto", help="quadrature nodes N, or 'auto' (default)")
    ex.add_argument("--rule", choices=RULES, default=None, help="quadrature rule (default: gauss-legendre)")
    ex.add_argument("--mode", choices=MODES, default=None, help="default: exact for exact models, else approximate")
    ex.add_argument("--similarity", choices=("cos", "dot"), default=None, help="default: the model's own")
    ex.add_argument("--tolerance", type=float, default=1e-3, help="relative integration error for --steps auto")
    ex.add_argument("--json", action="store_true", help="print one JSON object")
    ex.add_argument("--pos", action="store_true", help="add POS tags and words to the JSON")
    ex.add_argument("--words", action="store_true", help="word-level matrix (subword cells summed)")
    ex.add_argument("--top", type=int, default=None, metavar="K", help="list the K strongest pairs")

    sub.add_parser("models", help="list the models and whether each is installed")

    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        get_settings()  # a bad environment variable is a usage error too
        if args.command == "explain":
            return _explain(args)
        if args.command == "models":
            return _models()
        return int(importlib.import_module(f"attribution.{args.command}").run(args))
    except PairLensError as exc:
        print(f"pairlens: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # settings from the environment
        print(f"pairlens: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pairlens: interrupted", file=sys.stderr)
        return 130


def _explain(args: argparse.Namespace) -> int:
    from .engine import explain
    from .models import load_model
    from .tokens import check_text

    check_text(args.text_a, "A")  # before the model loads: bad input fails fast
    check_text(args.text_b, "B")
    model = load_model(args.model)
    if args.top is not None and args.top < 0:
        raise_input("--top must be 0 or more")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # collected in result.warnings and printed below
        result = explain(
            model,
            args.text_a,
            args.text_b,
            layer=args.layer,
            steps=args.steps,
            rule=args.rule,
            mode=args.mode,
            similarity=args.similarity,
            tolerance=args.tolerance,
            pos=bool(args.pos or args.words or args.top),
        )
    for message in result.warnings:
        print(f"pairlens: warning: {message}", file=sys.stderr)
    shown = result.to_words() if args.words else result
    if args.json:
        payload: dict[str, Any] = shown.to_dict()
        if not args.pos:
            for key in (
                "pos_a",
                "pos_b",
                "tag_a",
                "tag_b",
                "word_index_a",
                "word_index_b",
                "words_a",
                "words_b",
                "word_pos_a",
                "word_pos_b",
                "pos_note",
            ):
                payload.pop(key, None)
        if args.top:
            payload["top_pairs"] = [_pair_dict(p) for p in shown.top_pairs(args.top)]
        json.dump(payload, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0
    print(summary_text(shown, top=args.top if args.top is not None else 5))
    return 0


def raise_input(message: str) -> None:
    from .errors import InputError

    raise InputError(message)


def _pair_dict(pair: Any) -> dict[str, Any]:
    return dict(pair.to_dict())


def summary_text(result: Any, top: int = 5) -> str:
    """Readable summary: score, sum, error, strongest pairs."""
    lines = [
        f"model      {result.model_name}  (layer {result.layer}/{result.num_layers}, {result.rule}, "
        f"N={result.steps}, {result.mode}, {result.similarity})",
        f"score      {result.score:+.4f}",
        f"target     {result.target:+.4f}   (what the attributions sum to as N grows)",
        f"sum        {result.attribution_sum:+.4f}   error {result.integration_error:+.2e} "
        f"(relative {result.relative_error:.1e})",
        f"reference  {result.reference_terms:+.4f}   (score - target: not attributed to token pairs)",
        f"time       {result.seconds:.2f} s",
    ]
    if top:
        lines.append(f"strongest pairs ({result.level} level):")
        for p in result.top_pairs(top):
            d = _pair_dict(p)
            lines.append(f"  {d['token_a']!s:>15} - {d['token_b']!s:<15} {d['value']:+.4f}  ({100 * d['share']:.1f} %)")
    return "\n".join(lines)


def _models() -> int:
    from .models import list_models

    for info in list_models():
        state = "installed" if info.installed else f"not installed: {info.install_hint}"
        print(f"{info.name:<24} {info.kind:<8} {state}\n{'':<24} {info.description}")
    return 0
