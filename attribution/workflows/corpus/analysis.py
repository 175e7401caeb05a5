"""analyze(): every pair of a file into a run folder, resumably, through a backend; then the summary."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...core import engine
from ...core.options import ExplainOptions, given_options
from ...errors import InputError
from ...jsonable import json_ready
from ...models import LoadedModel
from ...settings import get_settings
from ..data import FORMAT_NAMES, Pair, PairFile, read_pairs
from .backend import Backend
from .ray_backend import RayOptions, connect
from .serial import SerialBackend
from .settings import CONVERGENCE_STEPS, RunSettings, check_settings, convergence_layers
from .store import (
    CONVERGENCE,
    RESULTS,
    RUN,
    RUN_SCHEMA,
    SUMMARY,
    ProgressFn,
    RecordWriter,
    output_folder,
    pair_key,
    read_lines,
    repair_tail,
    write_json,
)
from .summary import summarize, write_plots

STS_GOLD_SCALE = 5.0


@dataclass
class RunReport:
    """What one `analyze` call did."""

    out: Path
    pairs: int  # pairs selected (after --limit)
    computed: int  # pairs computed by this call
    skipped: int  # pairs found finished in attributions.jsonl
    failed: int  # pairs the engine refused (InputError), recorded and not retried
    dropped_tail: bool  # a cut-short last line was removed on resume
    seconds: float  # the attribution pass of this call
    convergence_seconds: float
    summary: dict[str, Any] = field(default_factory=dict)


def analyze(
    model: LoadedModel | str,
    data: str | Path | PairFile,
    out: str | Path,
    options: ExplainOptions | None = None,
    *,
    limit: int | None = None,
    convergence_pairs: int = 10,
    convergence_steps: Sequence[int] = CONVERGENCE_STEPS,
    gold_scale: float | None = None,
    png: bool = True,
    progress: bool = True,
    on_progress: ProgressFn | None = None,
    cache: bool = True,
    ray: RayOptions | None = None,
    **option_values: Any,
) -> RunReport:
    """Attribute every pair of `data` (first `limit`) into `out`, resuming; then summarize and plot.

    options (or its fields as keywords: layer=, steps=, ...): what explain() computes for each
    pair. gold_scale: gold / gold_scale is compared with the score for the accuracy split
    (default 5 for STS-B, else the largest |gold|). progress: a tqdm bar on stderr.
    on_progress: called after each pair with (done, total, phase). ray: compute the pairs on
    Ray actors (attribution.workflows.corpus.ray_backend.RayOptions: a local Ray, or a cluster to join);
    Ray is started or joined, and its resources checked, before the folder is touched. The
    folder, its records, resume and the summary are the same as without it. cache: serially, look
    each pair up in the persistent result cache (PAIRLENS_HOME) before computing it, and store it after.
    """
    options = given_options(options, option_values)
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be at least 1 (got {limit}).")
    pair_file = data if isinstance(data, PairFile) else read_pairs(data, limit=limit)
    if convergence_pairs < 0:
        raise InputError(f"--convergence-pairs must be 0 or more (got {convergence_pairs}).")
    conv_steps = sorted({int(n) for n in convergence_steps})
    limits = get_settings().limits
    max_steps = limits.max_steps
    if not conv_steps or conv_steps[0] < 1 or conv_steps[-1] > max_steps:
        raise InputError(f"--convergence-steps must be whole numbers from 1 to {max_steps} (got {convergence_steps}).")
    pairs = pair_file.pairs[:limit] if limit is not None else pair_file.pairs
    rest = (pair_file, pairs, options, limit, convergence_pairs, conv_steps, gold_scale, png, progress, on_progress)
    if ray is not None:
        with connect(ray, model) as cluster, output_folder(out) as out_dir, cluster.backend(limits) as backend:
            return _analyze(backend, out_dir, *rest)
    with output_folder(out) as out_dir:
        loaded = engine.as_model(model, options.device, limits.device)
        return _analyze(SerialBackend(loaded, cache=cache, limits=limits), out_dir, *rest)


def _analyze(
    backend: Backend,
    out_dir: Path,
    pair_file: PairFile,
    pairs: list[Pair],
    options: ExplainOptions,
    limit: int | None,
    convergence_pairs: int,
    conv_steps: list[int],
    gold_scale: float | None,
    png: bool,
    progress: bool,
    on_progress: ProgressFn | None,
) -> RunReport:
    """analyze() inside its locked, writable output folder, the pairs computed by `backend`."""
    name, num_layers, resolved = backend.resolve(options)
    settings = RunSettings(
        model=name,
        data=str(Path(pair_file.path).expanduser().resolve()),
        options=resolved,
        convergence_steps=conv_steps,
        convergence_layers=convergence_layers(num_layers),
    )
    check_settings(out_dir, settings)
    if gold_scale is None:
        gold_scale = _default_gold_scale(pair_file)
    write_json(
        out_dir / RUN,
        {
            "schema": RUN_SCHEMA,
            "settings": settings.to_dict(),
            "data_format": FORMAT_NAMES[pair_file.format],
            "pairs_in_file": len(pair_file.pairs) if pair_file.complete else None,  # None: not read to the end
            "lines_read": pair_file.lines_read,
            "malformed_rows": pair_file.malformed,  # in the lines read
            "limit": limit,
            "pairs": len(pairs),
            "convergence_pairs": convergence_pairs,
            "gold_scale": gold_scale,
            **backend.info(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )

    results_path = out_dir / RESULTS
    dropped = repair_tail(results_path)
    done = {obj["key"] for obj in read_lines(results_path) if obj is not None and "key" in obj}
    wanted = [(p, pair_key(p)) for p in pairs]
    todo = [(p, k) for p, k in wanted if k not in done]
    skipped = len(wanted) - len(todo)

    started = time.perf_counter()
    written = {k for _, k in wanted if k in done}
    with RecordWriter(
        results_path, written, len(wanted), "attributions", progress=progress, on_progress=on_progress, phase="pairs"
    ) as writer:
        for key, record in backend.attributions(todo, resolved):
            writer.add(key, record)
    computed, failed = writer.computed, writer.failed
    seconds = time.perf_counter() - started

    conv_started = time.perf_counter()
    subset = wanted[: min(convergence_pairs, len(wanted))]
    run_convergence(backend, subset, out_dir / CONVERGENCE, settings, progress, on_progress)
    conv_seconds = time.perf_counter() - conv_started

    run_info = {
        **settings.to_dict(),
        "data_format": FORMAT_NAMES[pair_file.format],
        "pairs_selected": len(wanted),
        "computed_this_call": computed,
        "skipped_finished": skipped,
        "attribution_seconds_this_call": seconds,
        "convergence_seconds_this_call": conv_seconds,
        **backend.info(),
    }
    keys = {k for _, k in wanted}
    summary = finish(out_dir, keys, gold_scale, {k for _, k in subset}, run_info, png=png)
    return RunReport(out_dir, len(wanted), computed, skipped, failed, dropped, seconds, conv_seconds, summary)


def finish(
    out: Path,
    keys: set[str] | None,
    gold_scale: float | None,
    convergence_keys: set[str] | None,
    run_info: dict[str, Any],
    *,
    png: bool,
) -> dict[str, Any]:
    """Summarize the folder's JSONL files, write pairs.csv, plots and summary.json; return the summary."""
    summary = summarize(out, keys, gold_scale, convergence_keys)
    summary["run"] = run_info
    summary["gold_scale"] = gold_scale
    summary["plots"] = write_plots(summary, out, png=png)
    summary = json_ready(summary)
    write_json(out / SUMMARY, summary)
    return summary


def _default_gold_scale(pair_file: PairFile) -> float | None:
    golds = [abs(p.gold) for p in pair_file.pairs if p.gold is not None]
    if not golds:
        return None
    if pair_file.format == "stsb":
        return STS_GOLD_SCALE
    return max(golds) or None


def run_convergence(
    backend: Backend | LoadedModel,
    subset: Sequence[tuple[Pair, str]],
    path: Path,
    settings: RunSettings,
    progress: bool,
    on_progress: ProgressFn | None,
) -> None:
    """Append one line per (pair, layer) of the subset that convergence.jsonl lacks."""
    if isinstance(backend, LoadedModel):
        backend = SerialBackend(backend)
    repair_tail(path)
    done = {(obj["key"], obj["layer"]) for obj in read_lines(path) if obj is not None and "key" in obj}
    jobs = [(p, k, layer) for p, k in subset for layer in settings.convergence_layers]
    todo = [(p, k, layer) for p, k, layer in jobs if (k, layer) not in done]
    if not jobs:
        return
    written = {(k, layer) for _, k, layer in jobs if (k, layer) in done}
    with RecordWriter(
        path,
        written,
        len(jobs),
        "convergence (pair x layer)",
        progress=progress and bool(todo),
        on_progress=on_progress,
        phase="convergence",
        unit="job",
    ) as writer:
        for key, record in backend.convergence(todo, settings):
            writer.add(key, record)
