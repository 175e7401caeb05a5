"""Corpus analysis: attributions for every pair of a file, resumable, then a streamed summary.

    python -m attribution analyze --model NAME|PATH --data FILE --out DIR [--limit N]
        [--layer L] [--steps auto|N] [--rule R] [--mode M] [--convergence-pairs 10] [--no-png]
        [--ray [ADDRESS] [--workers N] [--gpus-per-worker G] [--batch-size B]]

With --ray the pairs are computed by Ray actors (corpus.ray_backend): the same
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
- summary.json        corpus statistics (corpus.summary) and what was plotted.
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

The package, one module per concern (each imports only those above it):

    store        the run folder: file names, the lock, atomic JSON, JSONL records, RecordWriter
    settings     RunSettings (from the resolved RunOptions), checked against run.json on resume
    backend      the Backend protocol and what both backends share (a pair or a convergence job -> record)
    serial       SerialBackend: this process            ray_backend   RayBackend: Ray actors (optional extra)
    summary      the streamed corpus statistics (accumulators), pairs.csv, plots and report.html
    analysis     analyze(): the run through a backend, then the summary
    cli          `pairlens analyze` (argparse)
"""

from __future__ import annotations

from .analysis import STS_GOLD_SCALE, RunReport, analyze, finish, run_convergence
from .backend import (
    ATTRIBUTION_BATCH,
    Backend,
    Curves,
    Outcome,
    batch_outcomes,
    check_threads,
    convergence_errors,
    convergence_outcome,
    convergence_record,
    pair_record,
)
from .cli import add_parser, ray_options, report_text
from .serial import SerialBackend
from .settings import (
    CONVERGENCE_STEPS,
    NUMBER_FIELDS,
    SETTINGS_BEFORE,
    RunSettings,
    check_settings,
    convergence_layers,
    setting_before,
)
from .store import (
    CONVERGENCE,
    LOCK,
    OUTPUTS,
    PAIRS,
    PLOTS,
    REPORT,
    RESULTS,
    RUN,
    RUN_SCHEMA,
    SUMMARY,
    ProgressFn,
    RecordWriter,
    append_line,
    output_folder,
    pair_key,
    read_lines,
    repair_tail,
    replacing,
    write_json,
)
from .summary import PAIR_COLUMNS, read_pair_table, summarize, summarize_convergence, write_plots

__all__ = [
    "ATTRIBUTION_BATCH", "CONVERGENCE", "CONVERGENCE_STEPS", "LOCK", "NUMBER_FIELDS", "OUTPUTS", "PAIRS",
    "PAIR_COLUMNS", "PLOTS", "REPORT", "RESULTS", "RUN", "RUN_SCHEMA", "SETTINGS_BEFORE", "STS_GOLD_SCALE", "SUMMARY",
    "Backend", "Curves", "Outcome", "ProgressFn", "RecordWriter", "RunReport", "RunSettings", "SerialBackend",
    "add_parser", "analyze", "append_line", "batch_outcomes", "check_settings", "check_threads",
    "convergence_errors", "convergence_layers", "convergence_outcome", "convergence_record",
    "finish", "output_folder", "pair_key", "pair_record", "ray_options", "read_lines", "read_pair_table",
    "repair_tail", "replacing", "report_text", "run_convergence", "setting_before", "summarize",
    "summarize_convergence", "write_json", "write_plots",
]  # fmt: skip
