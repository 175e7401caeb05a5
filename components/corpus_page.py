"""Pure helpers of the Corpus page (pages/corpus.py): run folders, the pair table, explainer links.

Run folders live under one root, `$PAIRLENS_HOME/runs`; the page lists and reads only inside
it (a typed name that resolves elsewhere, by `..` or a symlink, is refused).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pandas as pd

from attribution.errors import InputError
from attribution.settings import get_settings
from attribution.workflows.corpus import LOCK, PAIRS, RUN, SUMMARY

from .state import quoted

MAX_PAGE_PAIRS = 50  # a run started from the page
PAGE_PATH = "Corpus"  # URL path of this page (pages/corpus.py)
SORT_COLUMNS = {
    "score": "score",
    "gold": "gold",
    "prediction error |score - gold/scale|": "prediction_error",
    "integration error (relative)": "relative_error",
    "top-1 share": "top1_share",
    "token pairs for 80 %": "cells_fraction_80",
    "line in the file": "row",
}
TABLE_COLUMNS = [
    "row", "gold", "score", "prediction_error", "attribution_sum", "relative_error", "steps", "top1_share",
    "top5_share", "cells_fraction_80", "tokens_share_80", "text_a", "text_b", "error",
]  # fmt: skip
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


def runs_root() -> Path:
    """The folder whose sub-folders the page may list, read and create: $PAIRLENS_HOME/runs."""
    return get_settings().home / "runs"


@dataclass(frozen=True)
class RunInfo:
    """One result folder as listed by the page."""

    name: str
    path: Path
    model: str
    pairs: int | None
    has_summary: bool
    modified: float  # seconds since the epoch

    @property
    def label(self) -> str:
        state = f"{self.pairs} pairs" if self.pairs is not None else "no summary yet"
        return f"{self.name} — {self.model}, {state}"


def list_runs(root: Path) -> list[RunInfo]:
    """Sub-folders of root with a run.json, newest first (a missing root lists nothing)."""
    if not root.is_dir():
        return []
    runs = []
    for child in root.iterdir():
        run_file = child / RUN
        if not child.is_dir() or not run_file.is_file():
            continue
        try:
            run = json.loads(run_file.read_text(encoding="utf-8"))
            model = str(run["settings"]["model"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        summary = child / SUMMARY
        pairs: int | None = None
        if summary.is_file():
            try:
                pairs = int(json.loads(summary.read_text(encoding="utf-8")).get("pairs", 0))
            except (OSError, ValueError, TypeError):
                pairs = None
        runs.append(RunInfo(child.name, child, model, pairs, summary.is_file(), run_file.stat().st_mtime))
    return sorted(runs, key=lambda r: r.modified, reverse=True)


def resolve_run(root: Path, name: str) -> Path:
    """The run folder `name` (a folder name or a path) if it lies inside root; else InputError."""
    text = name.strip()
    if not text:
        raise InputError("Type the name of a result folder.")
    root_real = root.expanduser().resolve()
    candidate = Path(text).expanduser()
    path = (candidate if candidate.is_absolute() else root_real / candidate).resolve()
    if not path.is_relative_to(root_real) or path == root_real:
        raise InputError(f"Only result folders inside {root_real} can be opened here.")
    if not (path / RUN).is_file():
        raise InputError(f"{quoted(text)} is not a result folder under {root_real} (no {RUN}).")
    return path


def remove_unstarted_run(out: Path) -> bool:
    """Delete a folder the page created for a run that never started (no run.json); True if removed.

    A refused upload (no usable pair, a file that is not a pairs file) or a model that fails to
    load must not leave an orphan folder holding the name.
    """
    if (out / RUN).exists() or not out.is_dir() or _in_use(out):
        return False
    shutil.rmtree(out, ignore_errors=True)
    return not out.exists()


def _in_use(out: Path) -> bool:
    """True while an analyze run holds the folder's lock (another session may have started it)."""
    try:
        fd = os.open(out / LOCK, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def new_run_name(name: str | None = None) -> str:
    """A valid folder name: `name` if it is one (letters, digits, . _ -), else run-<timestamp>."""
    if name and _NAME_RE.match(name.strip()):
        return name.strip()
    if name and name.strip():
        raise InputError("A run name may use letters, digits, '.', '_' and '-' (up to 80 characters).")
    return time.strftime("run-%Y%m%d-%H%M%S")


def load_summary(run: Path) -> dict[str, Any] | None:
    """summary.json of a run, or None when the run has not been summarized yet."""
    path = run / SUMMARY
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def load_run(run: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run / RUN).read_text(encoding="utf-8"))
    return data


def load_pairs(run: Path) -> pd.DataFrame:
    """pairs.csv with the page's columns (missing columns added empty)."""
    path = run / PAIRS
    if not path.is_file():
        return pd.DataFrame(columns=TABLE_COLUMNS)
    frame = pd.read_csv(path, keep_default_na=True)
    for column in TABLE_COLUMNS:
        if column not in frame:
            frame[column] = None
    return frame[TABLE_COLUMNS]


def pair_table(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, list[float]]]:
    """(the table, its plot columns as float lists) for corpus_figures.gold_figure."""
    ok = frame[frame["error"].isna()] if "error" in frame else frame
    table = {
        name: [float(v) for v in pd.to_numeric(ok[name], errors="coerce").tolist()]
        for name in ("row", "gold", "score", "attribution_sum", "relative_error")
    }
    return frame, table


def sort_pairs(frame: pd.DataFrame, label: str, descending: bool) -> pd.DataFrame:
    """Sorted by the column behind `label` (a SORT_COLUMNS key), empty values last; index 0..n-1."""
    column = SORT_COLUMNS.get(label, "row")
    values = pd.to_numeric(frame[column], errors="coerce")
    order = values.sort_values(ascending=not descending, na_position="last", kind="stable").index
    return frame.loc[order].reset_index(drop=True)


def explainer_query(settings: dict[str, Any], text_a: str, text_b: str) -> dict[str, str | list[str]]:
    """The explainer page's URL parameters (components.state) that reopen one pair of a run."""
    mode = settings.get("mode") or "default"
    return {
        "a": text_a,
        "b": text_b,
        "model": [str(settings.get("model", ""))],
        "layer": [str(settings.get("layer", "default"))],
        "steps": str(settings.get("steps", "auto")),
        "rule": str(settings.get("rule", "gauss-legendre")),
        "mode": mode if mode in ("approximate", "exact") else "default",
    }


def explainer_url(page_url: str | None, query: dict[str, str | list[str]]) -> str:
    """Absolute link to the explainer (the app's main page) from this page's URL; relative without one."""
    base = (page_url or "").split("?", 1)[0].split("#", 1)[0].rstrip("/")
    if base.endswith("/" + PAGE_PATH):
        base = base[: -len(PAGE_PATH) - 1]
    return f"{base}/?{urlencode(query, doseq=True)}"


def headline(summary: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(label, value, help) metrics for the top of the results."""

    def fmt(value: Any, spec: str) -> str:
        return "—" if value is None else format(value, spec)

    top = summary.get("top_k_share") or {}
    mean = top.get("mean") or [None] * 10
    corr = summary.get("correlation") or {}
    spearman = (corr.get("score_vs_gold") or {}).get("spearman") if corr.get("gold") else None
    steps = summary.get("steps") or {}
    cov = summary.get("coverage") or {}
    tokens_90 = ((cov.get("tokens_share") or {}).get("median") or [None, None, None])[-1]
    return [
        ("pairs", str(summary.get("pairs", 0)), f"{summary.get('failed', 0)} could not be explained"),
        ("strongest pair", fmt(mean[0], ".0%"), "on average, the share of the score's sum carried by one token pair"),
        ("5 strongest pairs", fmt(mean[4], ".0%"), "on average, the share carried by the 5 strongest token pairs"),
        ("tokens for 90 %", fmt(tokens_90, ".0%"), "typical share of tokens involved in the pairs that reach 90 %"),
        ("agreement with people", fmt(spearman, ".3f"), "Spearman rank correlation of model scores and human ratings"),
        ("typical steps", fmt(steps.get("median"), ".0f"), "median number of integration steps chosen automatically"),
    ]


# Plain names of the pair table's columns (pairs.csv keeps the short names).
COLUMN_LABELS: dict[str, tuple[str, str | None, str]] = {
    "row": ("line", None, "line of the input file"),
    "gold": ("human rating", None, "the similarity people gave the pair (gold score)"),
    "score": ("model score", None, "the model's similarity of the two texts"),
    "prediction_error": ("prediction error", None, "|model score − human rating rescaled to 0–1|"),
    "attribution_sum": ("sum of cells", None, "what all token pairs add up to"),
    "relative_error": ("integration error", "percent", "how far the sum is from its target, relative"),
    "steps": ("steps", None, "integration steps used"),
    "top1_share": ("strongest pair", "percent", "share of the sum carried by the strongest token pair"),
    "top5_share": ("5 strongest pairs", "percent", "share of the sum carried by the 5 strongest pairs"),
    "cells_fraction_80": ("pairs for 80 %", "percent", "fraction of token pairs needed to reach 80 % of the sum"),
    "tokens_share_80": ("tokens for 80 %", "percent", "fraction of tokens those pairs touch"),
    "text_a": ("text A", None, ""),
    "text_b": ("text B", None, ""),
    "error": ("problem", None, "why the pair could not be explained"),
}


def table_column_config(column_config: Any) -> dict[str, Any]:
    """st.column_config entries with plain labels (pass `st.column_config`: this module stays streamlit-free)."""
    out: dict[str, Any] = {}
    for name, (label, fmt, help_text) in COLUMN_LABELS.items():
        if name in ("text_a", "text_b", "error"):
            out[name] = column_config.TextColumn(label, help=help_text or None)
        else:
            out[name] = column_config.NumberColumn(label, format=fmt, help=help_text or None)
    return out


def settings_sentence(settings: dict[str, Any]) -> str:
    """'all-MiniLM-L6-v2 at layer 5, auto steps (gauss-legendre), approximate mode; pairs from sts-test.csv'."""
    layer = settings.get("layer")
    where = "its default layer" if layer in (None, "default") else f"layer {layer}"
    steps = settings.get("steps", "auto")
    steps_text = "steps chosen automatically" if str(steps) == "auto" else f"{steps} steps"
    data = Path(str(settings.get("data") or "")).name or "an uploaded file"
    return (
        f"{settings.get('model')} at {where}, {steps_text} ({settings.get('rule')} rule), "
        f"{settings.get('mode') or 'default'} mode; pairs from {data}"
    )


def plain_note(note: str | None) -> str | None:
    """The run's note on its report images in words (the analyze command writes option names)."""
    if not note:
        return None
    if "--no-png" in note:
        return "Images were not saved for this run; the interactive report has every figure."
    if note.startswith("PNG export skipped"):
        return (
            "Images could not be saved for this run (no image renderer on the server); the figures below are complete."
        )
    return note
