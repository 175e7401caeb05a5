"""Every input length bounded before use (issue 27, finding 6): a pairs file's lines are read in bounded
pieces, so a huge one-line file is refused after reading about the limit, not the line."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from attribution.cli import main
from attribution.errors import InputError
from attribution.workflows.data import read_pairs


def one_line_file(path: Path, megabytes: int) -> Path:
    """A `megabytes` MiB file of one line (no line end), written 1 MiB at a time."""
    block = b"sentence1,sentence2 " * (1 << 16)  # 1.25 MiB
    with path.open("wb") as handle:
        for _ in range(megabytes * 4 // 5):
            handle.write(block)
    return path


def test_a_huge_line_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    data = one_line_file(tmp_path / "huge.csv", 40)
    assert data.stat().st_size >= 40 << 20
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=r"Line 1 .* longer than 1,048,576 bytes"):
            read_pairs(data, max_line_bytes=1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"peak {peak:,} bytes for a 40 MiB line: it was read whole"


def test_a_lowered_limit_refuses_a_long_line_after_good_ones(tmp_path: Path) -> None:
    data = tmp_path / "pairs.tsv"
    data.write_text("sentence1\tsentence2\na\tb\n" + "x" * 5000 + "\ty\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"Line 3 .* longer than 1,000 bytes"):
        read_pairs(data, max_line_bytes=1000)
    assert len(read_pairs(data, max_line_bytes=5003).pairs) == 2  # 5,002 bytes and its line end fit


def test_analyze_refuses_a_one_line_file_with_a_sentence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = one_line_file(tmp_path / "huge.csv", 3)
    code = main(["analyze", "--data", str(data), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code != 0 and "longer than 1,048,576 bytes" in err and "Traceback" not in err
