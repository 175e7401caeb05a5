"""The run folder: its file names, the lock, atomic JSON, append-only JSONL records and their one writer.

output_folder(out)          the --out folder, created, writable, locked (flock) while a run uses it
append_line / read_lines / repair_tail   attributions.jsonl and convergence.jsonl, fsynced, resumable
write_json / replacing      run.json, summary.json, pairs.csv: written atomically
RecordWriter                the only writer of one JSONL file during a run: each key once
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from ...errors import InputError
from ..data import Pair

RESULTS = "attributions.jsonl"
CONVERGENCE = "convergence.jsonl"
RUN = "run.json"
SUMMARY = "summary.json"
PAIRS = "pairs.csv"
REPORT = "report.html"
PLOTS = "plots"
RUN_SCHEMA = 1
LOCK = ".analyze.lock"
OUTPUTS = (RUN, RESULTS, CONVERGENCE, SUMMARY, PAIRS, REPORT)

ProgressFn = Callable[[int, int, str], None]  # (done, total, phase) with phase "pairs" | "convergence"


def pair_key(pair: Pair) -> str:
    """ "<row>:<first 16 hex of sha256(text_a \\x1f text_b)>": stable across runs of the same file."""
    digest = hashlib.sha256(f"{pair.text_a}\x1f{pair.text_b}".encode()).hexdigest()[:16]
    return f"{pair.row}:{digest}"


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


def _bar(total: int, initial: int, desc: str, enabled: bool, unit: str = "pair") -> Any:
    """A tqdm bar on stderr (items done, rate, time left), or None."""
    if not enabled:
        return None
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)
