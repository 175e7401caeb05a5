"""Entering the encoder at layer L: the old per-layer call against the generic entry (issue 12).

The old tail (kept here, no longer in the library) called each layer module of a table of known
architectures by hand; the new one runs the model's own forward on a view that starts at layer L
(`attribution.models.entry`). Both are timed in the same process, interleaved round by round, on
the engine's workloads:

  tail     one ~20-token text; one call = vmapped JVPs with S tangents at 8 nodes (a forward-mode chunk)
  explain  explain(a, b, layer, steps=8, gauss-legendre) on STS-B test pairs, LoadedModel.tail swapped
  oracle   (no timing) the tiny model of every tested architecture, built offline: explain() at every
           layer against the hooked-forward per-dimension oracle of tests/models/test_architectures.py

With one torch thread every FLOP runs on the calling thread, so its CPU time (time.thread_time) measures
the work itself even while other jobs compete for the cores; wall-clock medians are printed too.

    python benchmarks/bench_entry.py [--rounds 15] [--threads 1] [--part tail,explain,oracle] [--pairs 3]
                                     [--models all-MiniLM-L6-v2:0,3,5;all-mpnet-base-v2:0,6,11]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.func import jvp, vmap

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from stsb import sample_pairs as sample_stsb  # noqa: E402

from attribution import explain, load_model  # noqa: E402
from attribution.core.tokens import encode_text, reference_ids  # noqa: E402
from attribution.models import LoadedModel  # noqa: E402

TEXT = "The quick brown fox jumps over the lazy dog near the quiet river bank today."
N_NODES = 8
FALLBACK = [
    ("A man is playing a guitar on stage.", "Someone performs music with an instrument."),
    ("A woman is slicing an onion.", "A woman is cutting an onion."),
    ("Stocks fell sharply after the announcement.", "The market dropped following the news."),
]

# ---------------------------------------------------------------------------------- the old approach (a copy)

# model_type -> (path to the layer list, MPNet's relative position bias passed to every layer)
OLD_ARCHITECTURES = {
    "bert": ("encoder.layer", False),
    "roberta": ("encoder.layer", False),
    "xlm-roberta": ("encoder.layer", False),
    "mpnet": ("encoder.layer", True),
}


def old_tail(model: LoadedModel, layer: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The pre-issue-12 LoadedModel.tail: each layer module called by hand, then the pooling modules."""
    path, position_bias = OLD_ARCHITECTURES[model.architecture]
    module: Any = model.encoder
    for attr in path.split("."):
        module = getattr(module, attr)
    layers = list(module)[layer:]

    def layer_kwargs(batch: int, seq_len: int) -> dict[str, torch.Tensor]:
        if not position_bias:
            return {}
        shape_only = torch.empty(batch, seq_len, 1)
        return {"position_bias": model.encoder.encoder.compute_position_bias(shape_only)}

    def tail(x: torch.Tensor) -> torch.Tensor:
        extra = layer_kwargs(x.shape[0], x.shape[1]) if layers else {}
        for block in layers:
            out = block(x, None, **extra)
            x = out[0] if isinstance(out, tuple) else out
        return model.pool(x)

    return tail


# ---------------------------------------------------------------------------------- timing


def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(thread CPU seconds, wall seconds) of one call."""
    started, started_cpu = time.perf_counter(), time.thread_time()
    fn()
    return time.thread_time() - started_cpu, time.perf_counter() - started


def report(label: str, cpu: dict[str, list[float]], wall: dict[str, list[float]], diff: float) -> None:
    c_old, c_new = statistics.median(cpu["old"]), statistics.median(cpu["new"])
    w_old, w_new = statistics.median(wall["old"]), statistics.median(wall["new"])
    print(
        f"| {label} | {1e3 * c_old:.1f} | {1e3 * c_new:.1f} | {c_new / c_old:.3f} | {1e3 * w_old:.1f} | "
        f"{1e3 * w_new:.1f} | {w_new / w_old:.3f} | {diff:.1e} |",
        flush=True,
    )


def header(first: str) -> None:
    print(f"| {first} | old cpu ms | new cpu ms | cpu ratio | old wall ms | new wall ms | wall ratio | max abs diff |")
    print("|---|---|---|---|---|---|---|---|")


def part_tail(model: LoadedModel, layers: list[int], rounds: int) -> None:
    ids = encode_text(model, TEXT).input_ids
    tokens = encode_text(model, TEXT)
    seq = ids.shape[1]
    with torch.no_grad():
        hs = model.hidden_states(ids)
        rs = model.hidden_states(reference_ids(tokens, model.tokenizer))
    print(f"\n### {model.name}: tail, S={seq}, vmapped JVPs with {seq} tangents at {N_NODES} nodes, {rounds} rounds\n")
    header("layer")
    for layer in layers:
        old, new = old_tail(model, layer), model.tail(layer)
        h, r = hs[layer][0], rs[layer][0]
        delta = h - r
        alphas = torch.linspace(0.05, 0.95, N_NODES)
        points = r + alphas[:, None, None] * delta
        idx = torch.arange(seq)
        tangents = torch.zeros(seq, N_NODES, seq, h.shape[1])
        tangents[idx, :, idx] = delta[idx][:, None, :]

        def run(
            tail: Callable[[torch.Tensor], torch.Tensor],
            points: torch.Tensor = points,
            tangents: torch.Tensor = tangents,
        ) -> torch.Tensor:
            with torch.no_grad():
                return vmap(lambda t: jvp(tail, (points,), (t,))[1])(tangents)

        with torch.no_grad():
            diff = max(float((old(points) - new(points)).abs().max()), float((run(old) - run(new)).abs().max()))
        cpu: dict[str, list[float]] = {"old": [], "new": []}
        wall: dict[str, list[float]] = {"old": [], "new": []}
        for k in range(rounds):
            order = (("old", old), ("new", new)) if k % 2 == 0 else (("new", new), ("old", old))
            for name, tail in order:
                c, w = timed(lambda tail=tail: run(tail))
                cpu[name].append(c)
                wall[name].append(w)
        report(str(layer), cpu, wall, diff)


def part_explain(model: LoadedModel, layers: list[int], rounds: int, pairs: list[tuple[str, str]]) -> None:
    print(f"\n### {model.name}: explain(steps=8, gauss-legendre), {len(pairs)} pairs per call, {rounds} rounds\n")
    header("layer")
    new_tail = LoadedModel.tail
    for layer in layers:

        def call(layer: int = layer) -> list[Any]:
            return [explain(model, a, b, layer=layer, steps=8, pos=False).matrix for a, b in pairs]

        def with_tail(tail: Any, layer: int = layer) -> list[Any]:
            LoadedModel.tail = tail  # type: ignore[method-assign]
            try:
                return call(layer)
            finally:
                LoadedModel.tail = new_tail  # type: ignore[method-assign]

        diff = max(float(abs(o - n).max()) for o, n in zip(with_tail(old_tail), call(), strict=True))
        cpu: dict[str, list[float]] = {"old": [], "new": []}
        wall: dict[str, list[float]] = {"old": [], "new": []}
        for k in range(rounds):
            order = (("old", old_tail), ("new", new_tail)) if k % 2 == 0 else (("new", new_tail), ("old", old_tail))
            for name, tail in order:
                c, w = timed(lambda tail=tail: with_tail(tail))
                cpu[name].append(c)
                wall[name].append(w)
        report(str(layer), cpu, wall, diff)


def part_oracle() -> None:
    """Max relative error of explain() against the independent oracle, per architecture and layer."""
    import tempfile

    from test_architectures import RULE, STEPS, A, B, oracle_matrix, relative_error
    from tiny_models import ARCHITECTURES, build_tiny_model

    from attribution.models.packages import minilm_path

    print(f"\n### Tiny models: explain({RULE}, N={STEPS}) vs the per-dimension oracle, max relative error\n")
    print("| architecture | pooling | " + " | ".join(f"L{k}" for k in range(4)) + " |")
    print("|---|---|" + "---|" * 4)
    with tempfile.TemporaryDirectory() as tmp:
        for arch in ARCHITECTURES:
            model = load_model(str(build_tiny_model(Path(tmp) / arch, arch, minilm_path())))
            cells = []
            for layer in range(model.num_layers + 1):
                res = explain(model, A, B, layer=layer, steps=STEPS, rule=RULE, pos=False)
                cells.append(f"{relative_error(res.matrix, oracle_matrix(model, layer)):.1e}")
            cells += ["-"] * (4 - len(cells))
            print(f"| {arch} | {model.pooling} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--part", default="tail,explain")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--models", default="all-MiniLM-L6-v2:0,3,5;all-mpnet-base-v2:0,6,11")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()
    print(
        f"# bench_entry: old per-layer call vs generic entry ({args.rounds} rounds, torch threads "
        f"{torch.get_num_threads()}, load average at start {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on "
        f"{os.cpu_count()} cores)\n\nMedians; cpu = time.thread_time of the calling thread; ratio = new / old."
    )
    parts = set(args.part.split(","))
    pairs = sample_stsb(args.pairs, FALLBACK)
    if "oracle" in parts:
        part_oracle()
    for spec in args.models.split(";") if parts & {"tail", "explain"} else []:
        name, _, layer_text = spec.partition(":")
        model = load_model(name)
        layers = [int(x) for x in layer_text.split(",")] if layer_text else [0, model.num_layers - 1]
        if "tail" in parts:
            part_tail(model, layers, args.rounds)
        if "explain" in parts:
            part_explain(model, layers, args.rounds, pairs)
    end = os.getloadavg()
    print(f"\nload average at end {end[0]:.1f} / {end[1]:.1f} / {end[2]:.1f}")


if __name__ == "__main__":
    main()
