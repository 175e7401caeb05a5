"""Corpus analysis: attributions for every pair of a file, resumable, then a streamed summary.

    python -m attribution analyze --model NAME|PATH --data FILE --out DIR [--limit N]
        [--layer L] [--steps auto|N] [--rule R] [--mode M] [--convergence-pairs 10] [--no-png]
        [--ray [ADDRESS] [--workers N] [--gpus-per-worker G] [--batch-size B]]

With --ray the pairs are computed by Ray actors (attribution.workflows.distributed): the same
folder, records, resume, settings check, lock and summary, records in completion order. Both
paths compute through a `Backend` and append through one `RecordWriter`.

Files in DIR:

- run.json            the run's settings (checked on every re-run) and the last invocation.
- attributions.jsonl  one line per finished pair, appended and fsynced (pairs are computed
                      by explain_many in batches of ATTRIBUTION_BATCH, written as each batch ends):
                      {"row", "key", "gold", "result": Attribution.to_dict()} or, for a pair
                      the engine refused, {"row", "key", "gold", "error"}.
- convergence.jsonl   one line per (pair, layer): relative error against N for each rule.
- pairs.csv           per-pair numbers (score, gold, error, shares, coverage) and texts.
- summary.json        corpus statistics (attribution.workflows.corpus_summary) and what was plotted.
- report.html         all plots, interactive (plotly.js inlined once, works offline).
- plots/*.png         the same plots as images, when kaleido finds a Chrome/Chromium.
- .analyze.lock       held (flock) by the run using the folder: a second run into it is refused
                      (exit 2) while the first runs; the system drops the lock when a run dies.

A pair is identified by its row (line number) and a hash of its two texts; re-running the
same command skips finished pairs, and refuses (exit 2) when the settings differ from
run.json. A line cut short by an interruption (no final newline) is dropped on resume.
Results are never held together: the summary streams over attributions.jsonl. `--limit N`
reads only as far into the data file as its N-th usable pair. A folder or output file that
cannot be written is refused (exit 2) before the model loads; `--threads` above the CPU cores
available is lowered to them.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import fcntl
import hashlib
import json
import logging
import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

import torch

from ..core import engine
from ..core.engine import ENGINE_VERSION
from ..core.options import (
    RULES,
    ExplainOptions,
    Limits,
    RunOptions,
    add_explain_options,
    given_options,
    options_from_args,
)
from ..errors import InputError
from ..jsonable import json_ready
from ..models import LoadedModel
from ..result import Attribution
from ..service.cache import cached_explain, cached_explain_many
from ..settings import DEFAULT_MODEL, get_settings
from .corpus_summary import LEVELS, ConvergenceAccumulator, CorpusAccumulator, PairStats
from .data import FORMAT_NAMES, Pair, PairFile, read_pairs

if TYPE_CHECKING:
    from .distributed import RayOptions

RESULTS = "attributions.jsonl"
CONVERGENCE = "convergence.jsonl"
RUN = "run.json"
SUMMARY = "summary.json"
PAIRS = "pairs.csv"
REPORT = "report.html"
PLOTS = "plots"
RUN_SCHEMA = 1
CONVERGENCE_STEPS = (1, 2, 4, 8, 16, 32, 64)
STS_GOLD_SCALE = 5.0
# The ExplainOptions fields that change the numbers, as run.json's settings name them.
ATTRIBUTION_BATCH = 32  # pairs per explain_many call; a run stopped mid-batch redoes that batch on resume
# The RunOptions fields (`RunOptions.result_fields`) that fix a run's numbers. The device and the memory budget
# change them by float rounding only: a run may be resumed on another device or with another budget.
NUMBER_FIELDS = (
    "layer", "steps", "rule", "mode", "similarity", "tolerance", "prompt_name", "prompt", "precision", "step_cap",
    "max_tokens",
)  # fmt: skip
# What run.json files written before a setting existed mean by its absence (step_cap: see `setting_before`).
SETTINGS_BEFORE = {"precision": "fp32", "engine": 1, "max_tokens": 256, "prompt": None}
log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]  # (done, total, phase) with phase "pairs" | "convergence"


def pair_key(pair: Pair) -> str:
    """ "<row>:<first 16 hex of sha256(text_a \\x1f text_b)>": stable across runs of the same file."""
    digest = hashlib.sha256(f"{pair.text_a}\x1f{pair.text_b}".encode()).hexdigest()[:16]
    return f"{pair.row}:{digest}"


def convergence_layers(num_layers: int) -> list[int]:
    """{0, middle, last}: inputs of the first, middle and last encoder layer (deduplicated)."""
    return sorted({0, num_layers // 2, max(num_layers - 1, 0)})


# ----------------------------------------------------------------------------- JSONL files


def append_line(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line and force it to disk (a crash later cannot lose it)."""
    data = (json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
    with path.open("ab") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def repair_tail(path: Path) -> bool:
    """Drop a last line without its newline (a write cut short); True when something was dropped."""
    if not path.exists():
        return False
    size = path.stat().st_size
    if size == 0:
        return False
    with path.open("rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return False
        # Walk back in blocks to the last newline; keep everything up to and including it.
        position, block = size, 1 << 16
        keep = 0
        while position > 0:
            start = max(0, position - block)
            handle.seek(start)
            chunk = handle.read(position - start)
            found = chunk.rfind(b"\n")
            if found >= 0:
                keep = start + found + 1
                break
            position = start
        handle.truncate(keep)
        handle.flush()
        os.fsync(handle.fileno())
    return True


def read_lines(path: Path) -> Iterator[dict[str, Any] | None]:
    """Each complete line's JSON object, or None for a line that is not one (streamed)."""
    if not path.exists():
        return
    with path.open("rb") as handle:
        for raw in handle:
            if not raw.endswith(b"\n"):
                return  # an unfinished last line is not a record
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except ValueError:
                yield None
                continue
            yield obj if isinstance(obj, dict) else None


# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class RunSettings:
    """What fixes the numbers of a run: a re-run into the same folder must match exactly."""

    model: str
    data: str  # resolved path of the data file
    options: RunOptions  # resolved for the model and the operator's limits
    convergence_steps: list[int]
    convergence_layers: list[int]

    def to_dict(self) -> dict[str, Any]:
        values = self.options.result_fields()
        return {
            "model": self.model,
            "data": self.data,
            **{name: values[name] for name in NUMBER_FIELDS},
            "engine": ENGINE_VERSION,
            "convergence_steps": list(self.convergence_steps),
            "convergence_layers": list(self.convergence_layers),
        }


def check_settings(out: Path, settings: RunSettings) -> None:
    """Raise InputError when out/run.json holds other settings than these."""
    path = out / RUN
    if not path.exists():
        return
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"'{path}' is not a PairLens run file: choose a new --out folder.") from None
    wanted = settings.to_dict()
    differences = [
        f"{key} {saved.get(key, setting_before(key, saved))!r} -> {value!r}"
        for key, value in wanted.items()
        if saved.get(key, setting_before(key, saved)) != value
    ]
    if differences:
        raise InputError(
            f"'{out}' holds a run with other settings ({'; '.join(differences)}): "
            "use a new --out folder, or the settings of that run to resume it."
        )


def setting_before(key: str, saved: dict[str, Any]) -> Any:
    """What a run.json written before setting `key` existed meant by its absence."""
    if key == "step_cap":  # steps="auto" ran under the default PAIRLENS_MAX_STEPS; a fixed N has no cap
        return 1024 if saved.get("steps") == "auto" else None
    return SETTINGS_BEFORE.get(key)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (a temporary file of its own, fsync, rename)."""
    with replacing(path) as handle:
        json.dump(data, handle, indent=1, ensure_ascii=False, allow_nan=False)
        handle.write("\n")


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[TextIO]:
    """A text file that replaces `path` atomically when the block ends without an error.

    The temporary file's name is unique (two processes never share one) and it is removed
    when the block fails.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; results are as readable as other files
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# ----------------------------------------------------------------------------- the output folder

LOCK = ".analyze.lock"
OUTPUTS = (RUN, RESULTS, CONVERGENCE, SUMMARY, PAIRS, REPORT)


@contextlib.contextmanager
def output_folder(out: str | Path) -> Iterator[Path]:
    """The --out folder, created, writable and locked against other runs while the block runs.

    The lock is an flock on `LOCK` inside the folder: the system releases it when the process
    ends, however it ends (a run killed by SIGKILL leaves nothing stuck). A second run into a
    folder that is in use, or a folder (or output file) that cannot be written, is an InputError.
    """
    out_dir = Path(out).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out '{out}' is a file: give a folder (it is created if missing).")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"Cannot create --out folder '{out}' ({exc.strerror or exc}).") from None
    lock_path = out_dir / LOCK
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise _not_writable(out_dir, exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            raise InputError(
                f"'{out}' is in use by another analyze run{f' (process {holder})' if holder.isdigit() else ''}: "
                "wait for it to finish, or choose another --out folder."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        _check_writable(out_dir)
        try:
            yield out_dir
        except PermissionError as exc:  # made read-only while running
            raise _not_writable(out_dir, exc) from None
    finally:
        os.close(fd)  # releases the lock


def _check_writable(out_dir: Path) -> None:
    """InputError when the folder or one of its output files cannot be written."""
    for path in (out_dir, *(out_dir / name for name in OUTPUTS)):
        if path.exists() and not os.access(path, os.W_OK):
            raise _not_writable(out_dir, PermissionError(13, "Permission denied", str(path)))


def _not_writable(out_dir: Path, exc: OSError) -> InputError:
    where = exc.filename or out_dir
    return InputError(
        f"Cannot write to '{where}' ({exc.strerror or exc}): make the --out folder and its files writable, "
        "or choose another --out folder."
    )


# ----------------------------------------------------------------------------- the run


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
    Ray actors (attribution.workflows.distributed.RayOptions: a local Ray, or a cluster to join);
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
        from .distributed import connect

        with connect(ray, model) as cluster, output_folder(out) as out_dir, cluster.backend(limits) as backend:
            return _analyze(backend, out_dir, *rest)
    with output_folder(out) as out_dir:
        loaded = engine.as_model(model, options.device, limits.device)
        return _analyze(SerialBackend(loaded, cache=cache, limits=limits), out_dir, *rest)


# ----------------------------------------------------------------------------- backends and records

Outcome = Attribution | str  # an engine result, or the message of the InputError that refused the pair
Curves = dict[str, list[tuple[int, float]]]  # convergence_errors' {rule: [(N, relative error)]}, JSON-ready


class Backend(Protocol):
    """Where the pairs are computed: `SerialBackend` (this process) or distributed.RayBackend (Ray actors).

    `attributions` and `convergence` yield (key, record) for the jobs given, in any order; a key
    may come twice (a batch sent again after a worker died): `RecordWriter` writes it once.
    """

    def resolve(self, options: ExplainOptions) -> tuple[str, int, RunOptions]:
        """(model name, number of layers, the options resolved for the model and the run's limits)."""
        ...

    def info(self) -> dict[str, Any]:
        """How the pairs are computed, for run.json and the summary's "run" (e.g. torch_threads)."""
        ...

    def attributions(self, jobs: Sequence[tuple[Pair, str]], options: RunOptions) -> Iterator[tuple[str, Any]]:
        """(key, pair_record) for each (pair, key)."""
        ...

    def convergence(
        self, jobs: Sequence[tuple[Pair, str, int]], settings: RunSettings
    ) -> Iterator[tuple[tuple[str, int], Any]]:
        """((key, layer), convergence_record) for each (pair, key, layer)."""
        ...


class SerialBackend:
    """Pair after pair in this process, with one loaded model."""

    def __init__(self, model: LoadedModel, *, cache: bool = False, limits: Limits | None = None) -> None:
        self.model = model
        self.cache = cache
        self.limits = limits or Limits()

    def resolve(self, options: ExplainOptions) -> tuple[str, int, RunOptions]:
        return self.model.name, self.model.num_layers, options.for_model(self.model, self.limits)

    def info(self) -> dict[str, Any]:
        return {"torch_threads": torch.get_num_threads()}

    def attributions(self, jobs: Sequence[tuple[Pair, str]], options: RunOptions) -> Iterator[tuple[str, Any]]:
        for start in range(0, len(jobs), ATTRIBUTION_BATCH):
            batch = jobs[start : start + ATTRIBUTION_BATCH]
            outcomes = batch_outcomes(self.model, [pair for pair, _ in batch], options, cache=self.cache)
            for (pair, key), outcome in zip(batch, outcomes, strict=True):
                yield key, pair_record(pair, key, outcome)

    def convergence(
        self, jobs: Sequence[tuple[Pair, str, int]], settings: RunSettings
    ) -> Iterator[tuple[tuple[str, int], Any]]:
        for pair, key, layer in jobs:
            outcome = convergence_outcome(self.model, pair, settings, layer)
            yield (key, layer), convergence_record(pair, key, layer, outcome)


def explain_outcome(model: LoadedModel, pair: Pair, options: RunOptions, *, cache: bool = False) -> Outcome:
    """explain() of one pair with POS tags, or the message of the InputError that refused it.

    cache: look the pair up in (and store it into) the persistent result cache of PAIRLENS_HOME.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # kept in result.warnings
            result, _ = cached_explain(
                model, pair.text_a, pair.text_b, options, pos=True, cache="default" if cache else None
            )
            return result
    except InputError as exc:
        return str(exc)


def batch_outcomes(
    model: LoadedModel, pairs: Sequence[Pair], options: RunOptions, *, cache: bool = False
) -> list[Outcome]:
    """explain_outcome of each pair, in order, computed together by explain_many: texts of equal
    length share the first round of nodes, and each result equals explain()'s.

    cache: pairs found in the persistent result cache are taken from it, the others stored after.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kept in result.warnings
        outcomes = cached_explain_many(
            model, [(p.text_a, p.text_b) for p in pairs], options, pos=True, cache="default" if cache else None
        )
    return [str(o) if isinstance(o, InputError) else o for o in outcomes]


def pair_record(pair: Pair, key: str, outcome: Outcome) -> dict[str, Any]:
    """The attributions.jsonl line of a pair: {"row", "key", "gold", "result"} or {..., "error"}."""
    record: dict[str, Any] = {"row": pair.row, "key": key, "gold": pair.gold}
    if isinstance(outcome, str):
        record["error"] = outcome
    else:
        record["result"] = outcome.to_dict()
    return record


def convergence_outcome(model: LoadedModel, pair: Pair, settings: RunSettings, layer: int) -> Curves | str:
    """convergence_errors of one pair at one layer for every rule (JSON-ready), or the refusal's message."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            curves = convergence_errors(
                model,
                pair.text_a,
                pair.text_b,
                settings.options.replace(layer=layer),
                RULES,
                settings.convergence_steps,
            )
        result: Curves = json_ready(curves)
        return result
    except InputError as exc:
        return str(exc)


def convergence_record(pair: Pair, key: str, layer: int, outcome: Curves | str) -> dict[str, Any]:
    """The convergence.jsonl line of a (pair, layer): {"row", "key", "layer", "errors"} or {..., "error"}."""
    record: dict[str, Any] = {"row": pair.row, "key": key, "layer": layer}
    if isinstance(outcome, str):
        record["error"] = outcome
    else:
        record["errors"] = outcome
    return record


class RecordWriter:
    """The only writer of one JSONL file during a run: each key's record is appended once (fsynced).

    written: the keys already in the file; a record for one of them is dropped, so a batch sent
    again never writes a pair twice. Counts records with an "error" as failed, others as
    computed; shows a tqdm bar (done, rate, time left) and calls on_progress after each record.
    """

    def __init__(
        self,
        path: Path,
        written: set[Any],
        total: int,
        desc: str,
        *,
        progress: bool,
        on_progress: ProgressFn | None,
        phase: str,
        unit: str = "pair",
    ) -> None:
        self.path, self.written, self.total, self.phase = path, written, total, phase
        self.initial = len(written)
        self.computed = self.failed = 0
        self.on_progress = on_progress
        self.bar = _bar(total, self.initial, desc, progress, unit)

    def add(self, key: Any, record: dict[str, Any]) -> bool:
        """Append the record unless its key is written already; True when it was appended."""
        if key in self.written:
            return False
        append_line(self.path, record)
        self.written.add(key)
        if "error" in record:
            self.failed += 1
        else:
            self.computed += 1
        if self.bar is not None:
            self.bar.update(1)
        if self.on_progress is not None:
            self.on_progress(self.initial + self.computed + self.failed, self.total, self.phase)
        return True

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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


def _bar(total: int, initial: int, desc: str, enabled: bool, unit: str = "pair") -> Any:
    """A tqdm bar on stderr (items done, rate, time left), or None."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)


# ----------------------------------------------------------------------------- convergence


def convergence_errors(
    model: LoadedModel,
    text_a: str,
    text_b: str,
    options: ExplainOptions | RunOptions,
    rules: Sequence[str],
    steps: Sequence[int],
) -> dict[str, list[tuple[int, float]]]:
    """{rule: [(N, relative integration error)]} at options.layer, as explain(steps=N, rule=rule) gives.

    Node evaluations are shared between rules and N (riemann-right's nodes for N nest under
    doubling and contain midpoint's for N/2), so the pass costs about as many nodes as
    gauss-legendre plus riemann-right at the largest N, not the sum over every (rule, N).
    """
    resolved = options if isinstance(options, RunOptions) else options.for_model(model)
    pair = engine.prepare_pair(model, text_a, text_b, resolved)
    return {
        rule: [(int(n), pair.completeness.relative_error(float(pair.matrix(rule, n).double().sum()))) for n in steps]
        for rule in rules
    }


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


# ----------------------------------------------------------------------------- summary


PAIR_COLUMNS = (
    "row", "key", "gold", "score", "target", "attribution_sum", "relative_error", "prediction_error", "steps",
    "converged", "seconds", "cells", "tokens", "top1_share", "top5_share", "top10_share",
    *(f"{name}_{round(100 * q)}" for q in LEVELS
      for name in ("cells", "cells_fraction", "tokens_share", "content_tokens_share", "random_tokens_share")),
    "text_a", "text_b", "error",
)  # fmt: skip


def summarize(
    out: Path, keys: set[str] | None, gold_scale: float | None, convergence_keys: set[str] | None = None
) -> dict[str, Any]:
    """Stream attributions.jsonl (and convergence.jsonl) into summary numbers; write pairs.csv.

    keys: only records with these keys count (None: all). The first record of a key wins.
    """
    acc = CorpusAccumulator(gold_scale=gold_scale)
    seen: set[str] = set()
    bad_lines = stale = 0
    with replacing(out / PAIRS) as handle:
        writer = csv.DictWriter(handle, fieldnames=PAIR_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for obj in read_lines(out / RESULTS):
            if obj is None or not isinstance(obj.get("key"), str):
                bad_lines += 1
                continue
            key = obj["key"]
            if keys is not None and key not in keys:
                stale += 1
                continue
            if key in seen:
                continue
            seen.add(key)
            gold = obj.get("gold")
            row = int(obj.get("row", 0))
            if "result" not in obj:
                message = str(obj.get("error", "no result"))
                acc.add_failure(row, message)
                writer.writerow({"row": row, "key": key, "gold": gold, "error": message})
                continue
            try:
                result = Attribution.from_dict(obj["result"])
            except (KeyError, TypeError, ValueError):
                bad_lines += 1
                seen.discard(key)
                continue
            stats = acc.add(result, row, key, gold)
            writer.writerow(_pair_row(acc, stats, result))
    summary = acc.summary()
    summary["bad_lines"] = bad_lines
    summary["records_outside_selection"] = stale
    summary["convergence"] = summarize_convergence(out / CONVERGENCE, convergence_keys)
    return summary


def _pair_row(acc: CorpusAccumulator, stats: PairStats, result: Attribution) -> dict[str, Any]:
    row = stats.to_row()
    row["prediction_error"] = acc.prediction_error(stats)
    row["text_a"] = result.a.text
    row["text_b"] = result.b.text
    return {k: ("" if v is None else v) for k, v in row.items()}


def summarize_convergence(path: Path, keys: set[str] | None) -> dict[str, Any]:
    """Median relative error against N per (layer, rule) over the convergence records."""
    acc = ConvergenceAccumulator()
    pairs: set[str] = set()
    failed = 0
    for obj in read_lines(path):
        if obj is None or (keys is not None and obj.get("key") not in keys):
            continue
        if "errors" not in obj:
            failed += 1
            continue
        pairs.add(str(obj["key"]))
        for rule, curve in obj["errors"].items():
            acc.add(int(obj["layer"]), rule, [(int(n), math.inf if e is None else float(e)) for n, e in curve])
    acc.pairs = len(pairs)
    return {**acc.summary(), "failed": failed}


# ----------------------------------------------------------------------------- plots


def read_pair_table(out: Path) -> dict[str, list[Any]]:
    """The columns of pairs.csv the plots need, as floats (NaN where empty)."""
    columns: dict[str, list[Any]] = {"row": [], "gold": [], "score": [], "attribution_sum": [], "relative_error": []}
    path = out / PAIRS
    if not path.exists():
        return columns
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("error"):
                continue
            for name in columns:
                raw = row.get(name, "")
                columns[name].append(float(raw) if raw not in ("", None) else math.nan)
    return columns


def write_plots(summary: dict[str, Any], out: Path, *, png: bool) -> dict[str, Any]:
    """report.html with every figure; plots/NAME.png when kaleido can render. Returns what was written."""
    from ..viz.corpus_figures import corpus_figures, report_html

    figures = corpus_figures(json_ready(summary), read_pair_table(out))
    (out / REPORT).write_text(report_html(figures, title=f"PairLens corpus: {out.name}"), encoding="utf-8")
    written: list[str] = []
    note: str | None = None
    if not png:
        note = "PNG export skipped (--no-png)."
    else:
        folder = out / PLOTS
        folder.mkdir(exist_ok=True)
        try:
            import plotly.io as pio

            names = list(figures)
            paths = [folder / f"{name}.png" for name in names]
            pio.write_images(
                [figures[n] for n in names],
                paths,
                width=[int(figures[n].layout.width or 900) for n in names],
                height=[int(figures[n].layout.height or 500) for n in names],
                scale=2,
            )
            written = [f"{PLOTS}/{p.name}" for p in paths if p.exists()]
        except Exception as exc:  # kaleido missing, no Chrome, or a renderer failure: HTML still works
            log.info("PNG export skipped", exc_info=True)
            note = f"PNG export skipped: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip()
    return {"html": REPORT, "png": written, "note": note, "figures": list(figures)}


# ----------------------------------------------------------------------------- CLI


def _steps_list(value: str) -> list[int]:
    try:
        out = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated whole numbers such as 1,2,4,8, not {value!r}"
        ) from None
    if not out:
        raise argparse.ArgumentTypeError("expected at least one number of steps")
    return out


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `analyze` on an argparse subparsers object; `run(args)` executes it."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "analyze",
        help="attribute every pair of a file, resumably, and summarize the corpus",
        description="Attributions for every pair of a data file into --out (resumable), then summary.json and plots.",
    )
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"built-in name, folder or hub id (default {DEFAULT_MODEL})"
    )
    parser.add_argument("--data", required=True, help="pairs file: STS Benchmark, CSV/TSV with header, or JSONL")
    parser.add_argument("--out", required=True, help="result folder (created; re-run the same command to resume)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N pairs of the file")
    add_explain_options(parser)
    parser.add_argument(
        "--convergence-pairs", type=int, default=10, help="pairs for the fixed-steps convergence pass (default 10)"
    )
    parser.add_argument(
        "--convergence-steps",
        type=_steps_list,
        default=list(CONVERGENCE_STEPS),
        help="N values of the convergence pass (default 1,2,4,8,16,32,64)",
    )
    parser.add_argument("--gold-scale", type=float, default=None, help="gold / scale ~ score (default 5 for STS-B)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (default 1: fastest on a shared machine)"
    )
    parser.add_argument("--no-png", action="store_true", help="skip PNG export (HTML report only)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-cache", action="store_true", help="compute every pair even if the result cache has it")
    from .distributed import DEFAULT_BATCH_SIZE

    ray = parser.add_argument_group("Ray (optional extra: pip install 'pairlens[ray]')")
    ray.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="compute the pairs on Ray actors: a local Ray without ADDRESS, else join the cluster at ADDRESS "
        "(HOST:PORT, ray://HOST:PORT or auto)",
    )
    ray.add_argument(
        "--workers",
        type=int,
        default=None,
        help="Ray actors, one loaded model each (default: local cores / --threads, or all the cluster holds)",
    )
    ray.add_argument(
        "--gpus-per-worker",
        type=float,
        default=None,
        metavar="G",
        help="GPUs per actor (0.5: two actors share a GPU; default 0: CPU actors)",
    )
    ray.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help=f"pairs per batch sent to an actor, pairs of similar length together (default {DEFAULT_BATCH_SIZE})",
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """CLI entry: 0 on success; InputError/PairLensError propagate (cli.main: exit 2, one line)."""
    threads = check_threads(args.threads)
    if args.gold_scale is not None and not (math.isfinite(args.gold_scale) and args.gold_scale > 0):
        raise InputError(f"--gold-scale must be a positive number (got {args.gold_scale}).")
    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be at least 1 (got {args.limit}).")
    options = options_from_args(args)
    ray = ray_options(args)
    pair_file = read_pairs(args.data, limit=args.limit)  # a bad file fails before the model loads
    if threads < args.threads and not args.ray:  # on a cluster (--ray ADDRESS) each worker caps at its node's cores
        cores = f"--threads {args.threads} is more than the {threads} CPU cores here"
        print(f"pairlens: warning: {cores}; using {threads}.", file=sys.stderr)
    if ray is None:
        torch.set_num_threads(threads)
    report = analyze(
        args.model,
        pair_file,
        args.out,
        options,
        limit=args.limit,
        convergence_pairs=args.convergence_pairs,
        convergence_steps=args.convergence_steps,
        gold_scale=args.gold_scale,
        png=not args.no_png,
        progress=not args.no_progress,
        cache=not args.no_cache,
        ray=ray,
    )
    print(report_text(report, pair_file))
    return 0


def ray_options(args: argparse.Namespace) -> RayOptions | None:
    """The RayOptions of `--ray [ADDRESS] --workers --gpus-per-worker --batch-size` (None without --ray)."""
    ray_flags = {"--workers": args.workers, "--gpus-per-worker": args.gpus_per_worker, "--batch-size": args.batch_size}
    if args.ray is None:
        given = [flag for flag, value in ray_flags.items() if value is not None]
        if given:
            raise InputError(f"{given[0]} applies to Ray runs: add --ray (a local Ray) or --ray ADDRESS, or drop it.")
        return None
    from .distributed import RayOptions

    return RayOptions.create(
        address=args.ray or None,
        workers=args.workers,
        gpus_per_worker=args.gpus_per_worker,
        batch_size=args.batch_size,
        threads=args.threads if args.ray else check_threads(args.threads),
    )


def check_threads(requested: int) -> int:
    """Torch threads for `--threads`: at least 1 (else InputError), at most the CPU cores available.

    torch.set_num_threads with a huge count crashes the process (segmentation fault at 100000).
    """
    if requested < 1:
        raise InputError(f"--threads must be at least 1 (got {requested}).")
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return min(requested, max(cores, 1))


def report_text(report: RunReport, pair_file: PairFile) -> str:
    """A few readable lines: what was done and the headline numbers."""
    s = report.summary
    lines = [
        f"data        {pair_file.summary()}",
        f"pairs       {report.pairs} selected: {report.computed} computed, {report.skipped} already done, "
        f"{s.get('failed', 0)} refused" + (" (dropped a cut-short last line)" if report.dropped_tail else ""),
        f"time        {report.seconds:.1f} s attributions, {report.convergence_seconds:.1f} s convergence",
    ]
    top = s.get("top_k_share", {})
    if top.get("mean") and top["mean"][0] is not None:
        lines.append(
            f"top pairs   mean share of the sum: top-1 {top['mean'][0]:.2f}, top-5 {top['mean'][4]:.2f}, "
            f"top-10 {top['mean'][9]:.2f}"
        )
    corr = s.get("correlation") or {}
    if corr.get("gold") and corr.get("score_vs_gold"):
        sp = corr["score_vs_gold"].get("spearman")
        if sp is not None:
            lines.append(f"gold        Spearman(score, gold) {sp:.3f} over {corr['n']} pairs")
    ray = (s.get("run") or {}).get("ray")
    if ray:
        lines.append(
            f"ray         {ray['workers']} workers ({ray['where']}), ready in {ray['startup_seconds']:.1f} s, "
            f"{ray['worker_deaths']} worker deaths, {ray['resent_batches']} batches sent again"
        )
        if ray.get("note"):
            lines.append(f"note        {ray['note']}")
    plots = s.get("plots", {})
    lines.append(f"written     {report.out / SUMMARY}, {report.out / PAIRS}, {report.out / REPORT}")
    if plots.get("note"):
        lines.append(f"note        {plots['note']}")
    return "\n".join(lines)
