"""Bad input to corpus runs (pairlens analyze): thread counts, data files (deep JSON nesting, lone
surrogates, --limit reading only the head), and the --out folder (locks, atomic writes, read-only paths).
Each gets a result or a one-line message that says what to do; never a traceback or lost work."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import DEEP, SURROGATE

from attribution import InputError
from attribution.cli import main
from attribution.workflows.data import read_pairs

ROOT = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- thread counts


@pytest.fixture(autouse=True)
def _keep_torch_threads() -> Iterator[None]:
    """`analyze --threads` sets torch's thread count for the process: restored after each test."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def write_jsonl(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_analyze_caps_a_huge_thread_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import os

    import torch

    from attribution.workflows.corpus import check_threads

    cores = len(os.sched_getaffinity(0))
    assert check_threads(100_000) == cores and check_threads(1) == 1
    with pytest.raises(InputError, match="--threads must be at least 1"):
        check_threads(0)
    data = write_jsonl(tmp_path / "pairs.jsonl", [json.dumps({"text_a": "A cat.", "text_b": "A dog."})])
    (tmp_path / "file").write_text("not a folder", encoding="utf-8")
    # stops at the --out check, after the threads were set (no model is loaded)
    code = main(["analyze", "--data", str(data), "--out", str(tmp_path / "file"), "--threads", "100000"])
    assert torch.get_num_threads() <= cores
    err = capsys.readouterr().err
    assert code == 2 and "--threads 100000 is more than" in err and "is a file" in err


# ----------------------------------------------------------------------------- data files
# JSON nested too deeply and lone surrogates: counted by line, the run goes on.


def test_jsonl_deep_nesting_and_lone_surrogates_are_counted_by_line(tmp_path: Path) -> None:
    good = json.dumps({"text_a": "A cat.", "text_b": "A dog.", "score": 1})
    data = read_pairs(write_jsonl(tmp_path / "pairs.jsonl", [good, DEEP, SURROGATE]))
    assert [p.row for p in data.pairs] == [1, 3]
    assert data.pairs[1].text_a == "caf\ufffd au lait"  # repaired as the engine does
    assert (data.malformed, data.malformed_examples) == (1, ["line 2: JSON nested too deeply"])
    assert (data.invalid_utf8, data.invalid_utf8_lines) == (1, [3])
    assert "line 2: JSON nested too deeply" in data.summary() and "(lines 3)" in data.summary()
    with pytest.raises(InputError, match="line 1: JSON nested too deeply"):
        read_pairs(write_jsonl(tmp_path / "deep.jsonl", [DEEP]))


def test_cli_analyze_survives_deep_nesting_and_lone_surrogates(
    minilm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    data = write_jsonl(tmp_path / "pairs.jsonl", [DEEP, SURROGATE])
    out = tmp_path / "run"
    fast = ["--steps", "1", "--convergence-pairs", "0", "--no-png", "--no-progress", "--threads", "1"]
    code = main(["analyze", "--data", str(data), "--out", str(out), *fast])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Traceback" not in captured.err and "line 1: JSON nested too deeply" in captured.out
    record = json.loads((out / "attributions.jsonl").read_text(encoding="utf-8"))
    assert record["row"] == 2 and record["result"]["text_a"] == "caf\ufffd au lait"


# ----------------------------------------------------------------------------- the --out folder
# Run folders: removed only when unstarted, locked while in use, written atomically; read-only paths.


def test_only_unstarted_unlocked_run_folders_are_removed(tmp_path: Path) -> None:
    from attribution.workflows.corpus import RUN, output_folder
    from components.corpus_page import remove_unstarted_run

    started = tmp_path / "started"
    started.mkdir()
    (started / RUN).write_text("{}", encoding="utf-8")
    assert not remove_unstarted_run(started) and started.is_dir()
    with output_folder(tmp_path / "running") as running:  # another session's run, before its run.json
        assert not remove_unstarted_run(running) and running.is_dir()
    assert remove_unstarted_run(running) and not running.exists()


HOLD_LOCK = """
import sys, time
from attribution.workflows.corpus import output_folder
with output_folder(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_second_analyze_refuses_a_folder_in_use_and_a_killed_run_leaves_no_lock(tmp_path: Path) -> None:
    import os
    import signal

    from attribution.workflows.corpus import LOCK, output_folder

    out = tmp_path / "run"
    data = write_jsonl(tmp_path / "pairs.jsonl", [json.dumps({"text_a": "A cat.", "text_b": "A dog."})])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(out)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        second = subprocess.run(
            [sys.executable, "-m", "attribution", "analyze", "--data", str(data), "--out", str(out), "--no-progress"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
        assert f"in use by another analyze run (process {holder.pid})" in second.stderr
        with pytest.raises(InputError, match="in use by another analyze run"), output_folder(out):
            pass
        assert not (out / "run.json").exists()  # the refused run wrote nothing
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
    with output_folder(out) as folder:  # the killed run's lock went with its process
        assert (folder / LOCK).read_text() == str(os.getpid())


def test_atomic_writes_use_temporary_files_of_their_own(tmp_path: Path) -> None:
    from attribution.workflows.corpus import replacing

    target = tmp_path / "pairs.csv"
    with replacing(target) as first, replacing(target) as second:  # two writers at once (formerly one .tmp)
        first.write("first\n")
        second.write("second\n")
    assert target.read_text() == "first\n"  # the last to finish wins; neither fails
    with pytest.raises(RuntimeError), replacing(target) as broken:
        broken.write("half")
        raise RuntimeError("crash while writing")
    assert target.read_text() == "first\n" and [p.name for p in tmp_path.iterdir()] == ["pairs.csv"]


@pytest.fixture
def read_only() -> Iterator[Callable[[Path], None]]:
    """Make paths unwritable (chmod; for root, whom chmod does not stop, the immutable attribute)."""
    import os
    import shutil

    done: list[tuple[Path, int]] = []

    def make(path: Path) -> None:
        mode = path.stat().st_mode
        path.chmod(mode & ~0o222)
        done.append((path, mode))
        root = os.access(path, os.W_OK)
        if root and (shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)]).returncode != 0):
            pytest.skip("cannot make a path read-only here (root without chattr)")

    yield make
    for path, mode in reversed(done):
        if shutil.which("chattr"):
            subprocess.run(["chattr", "-i", str(path)], capture_output=True)
        path.chmod(mode)


@pytest.mark.parametrize("what", ["folder", "attributions.jsonl"])
def test_analyze_into_a_read_only_folder_or_file_is_one_line(
    tmp_path: Path, what: str, read_only: Callable[[Path], None], capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_jsonl(tmp_path / "pairs.jsonl", [json.dumps({"text_a": "A cat.", "text_b": "A dog."})])
    out = tmp_path / "run"
    out.mkdir()
    if what == "folder":
        read_only(out)
    else:
        (out / "attributions.jsonl").write_text("", encoding="utf-8")
        read_only(out / "attributions.jsonl")
    code = main(["analyze", "--data", str(data), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("pairlens: error: Cannot write to") and "choose another --out folder" in err


# ----------------------------------------------------------------------------- --limit
# --limit reads only the head of a data file.

ROWS_200K = 200_000


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "pairs.jsonl"
    row = json.dumps({"text_a": "A man plays a guitar.", "text_b": "Someone plays music.", "score": 3.5})
    path.write_text((row + "\n") * ROWS_200K, encoding="utf-8")
    return path


def test_limit_reads_only_the_head_of_the_file(big_file: Path) -> None:
    head = read_pairs(big_file, limit=5)
    assert len(head.pairs) == 5 and head.lines_read == 5 and head.complete is False
    assert "the first 5 only: read up to line 5" in head.summary()
    whole = read_pairs(big_file)
    assert len(whole.pairs) == ROWS_200K and whole.lines_read == ROWS_200K and whole.complete
    with pytest.raises(InputError, match="--limit must be a whole number of at least 1"):
        read_pairs(big_file, limit=0)


def test_cli_limit_reads_only_the_head(
    big_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from attribution.workflows.corpus import cli as corpus_cli

    read: list[Any] = []
    real = corpus_cli.read_pairs
    monkeypatch.setattr(corpus_cli, "read_pairs", lambda *a, **k: read.append(real(*a, **k)) or read[-1])
    (tmp_path / "file").write_text("", encoding="utf-8")  # the run stops at --out, after reading
    code = main(["analyze", "--data", str(big_file), "--out", str(tmp_path / "file"), "--limit", "5"])
    assert code == 2 and "is a file" in capsys.readouterr().err
    assert [r.lines_read for r in read] == [5]
