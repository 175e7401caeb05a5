"""Readers for files of text pairs with optional gold similarity scores.

Formats (detected from the content, not the file name):

- STS Benchmark (`sts-{train,dev,test}.csv`): tab-separated, no header, no quoting; the score
  (0-5) is column 5 and the sentences are columns 6 and 7 (1-based). Extra trailing columns,
  which some rows have, are ignored.
- CSV or TSV with a header row naming `sentence1` and `sentence2` and optionally `score`
  (aliases: `label`, `gold`). The delimiter (`,` `\\t` `;` `|`) is the one that splits the header
  into those names. Comma, semicolon and pipe files use standard CSV quoting; tab files are
  read without quoting (quotes are part of the text), like the STS Benchmark.
- JSON Lines: one object per line with `text_a`/`text_b` (or `sentence1`/`sentence2`) and
  optionally `score`.

Rows that cannot be used (missing columns, a score that is not a finite number, an empty
sentence, broken JSON) are skipped, counted in `PairFile.malformed` and the first few are
described in `PairFile.malformed_examples`. Bytes that are not valid UTF-8 are replaced by
U+FFFD and the lines affected are counted in `PairFile.invalid_utf8`. A file with no usable
row raises `InputError` that says which formats are expected.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError

MAX_EXAMPLES = 5
STS_COLUMNS = 7  # genre, file, year, id, score, sentence1, sentence2 (+ optional extras)
SCORE_NAMES = ("score", "label", "gold")
DELIMITERS = ("\t", ",", ";", "|")
EXPECTED = (
    "expected an STS Benchmark file (tab-separated, no header: score in column 5, sentences in "
    "columns 6 and 7), a CSV/TSV file with a header row naming sentence1, sentence2 and optionally "
    "score, or JSON Lines with text_a, text_b and optionally score"
)


@dataclass(frozen=True)
class Pair:
    """One usable row: two texts and the gold score (None when the file has no scores)."""

    text_a: str
    text_b: str
    gold: float | None  # as written in the file (STS: 0-5)
    row: int  # 1-based line number in the file where the row starts


@dataclass
class PairFile:
    """Everything read from one file: the usable pairs and what was skipped and why."""

    path: str
    format: str  # "stsb" | "csv" | "tsv" | "jsonl"
    pairs: list[Pair] = field(default_factory=list)
    malformed: int = 0  # rows skipped
    malformed_examples: list[str] = field(default_factory=list)  # "line N: reason", first MAX_EXAMPLES
    blank: int = 0  # blank lines ignored (not counted as malformed)
    invalid_utf8: int = 0  # lines with bytes that are not UTF-8 (replaced by U+FFFD, row kept)
    invalid_utf8_lines: list[int] = field(default_factory=list)  # first MAX_EXAMPLES line numbers

    @property
    def has_gold(self) -> bool:
        """True when every pair has a gold score."""
        return bool(self.pairs) and all(p.gold is not None for p in self.pairs)

    def summary(self) -> str:
        """One line for people: how many pairs, what was skipped and why."""
        text = f"{len(self.pairs)} pairs from {self.path} ({FORMAT_NAMES[self.format]})"
        if self.malformed:
            text += f"; {self.malformed} malformed rows skipped ({'; '.join(self.malformed_examples)}"
            text += ", ...)" if self.malformed > len(self.malformed_examples) else ")"
        if self.invalid_utf8:
            lines = ", ".join(str(n) for n in self.invalid_utf8_lines)
            more = ", ..." if self.invalid_utf8 > len(self.invalid_utf8_lines) else ""
            text += f"; {self.invalid_utf8} lines had invalid UTF-8, replaced by U+FFFD (lines {lines}{more})"
        return text

    def _skip(self, line: int, reason: str) -> None:
        self.malformed += 1
        if len(self.malformed_examples) < MAX_EXAMPLES:
            self.malformed_examples.append(f"line {line}: {reason}")


FORMAT_NAMES = {
    "stsb": "STS Benchmark",
    "csv": "CSV with header",
    "tsv": "TSV with header",
    "jsonl": "JSON Lines",
    "semicolon": "semicolon-separated with header",
    "pipe": "pipe-separated with header",
}
_DELIMITER_FORMAT = {"\t": "tsv", ",": "csv", ";": "semicolon", "|": "pipe"}


def read_pairs(path: str | Path) -> PairFile:
    """Read text pairs from `path` in any supported format. Raises InputError on no usable row."""
    file = Path(path).expanduser()
    if not file.exists():
        raise InputError(f"Data file '{path}' does not exist: give the path of a pairs file ({EXPECTED}).")
    if not file.is_file():
        raise InputError(f"'{path}' is not a file: give the path of a pairs file ({EXPECTED}).")
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise InputError(f"Cannot read '{path}' ({exc.strerror or exc}).") from None
    lines, bad_lines = _decode_lines(raw)
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise InputError(f"Data file '{path}' is empty: {EXPECTED}.")
    head = lines[first]
    delimiter, columns = _header(head)
    if head.lstrip().startswith("{"):
        result = _read_jsonl(str(path), lines)
    elif delimiter is not None and columns is not None:
        result = _read_header(str(path), lines, first, delimiter, columns)
    elif "\t" in head:
        result = _read_sts(str(path), lines)
    else:
        raise InputError(f"Cannot tell the format of '{path}' from its first line {head[:80]!r}: {EXPECTED}.")
    result.invalid_utf8 = len(bad_lines)
    result.invalid_utf8_lines = bad_lines[:MAX_EXAMPLES]
    if not result.pairs:
        found = ""
        if result.malformed:
            found = f" ({result.malformed} malformed rows: {'; '.join(result.malformed_examples)})"
        raise InputError(f"No usable text pairs in '{path}'{found}: {EXPECTED}.")
    return result


def _decode_lines(raw: bytes) -> tuple[list[str], list[int]]:
    """Lines without line ends, and the 1-based numbers of lines that were not valid UTF-8."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    lines: list[str] = []
    bad: list[int] = []
    for number, chunk in enumerate(raw.split(b"\n"), start=1):
        chunk = chunk.removesuffix(b"\r")
        try:
            lines.append(chunk.decode("utf-8"))
        except UnicodeDecodeError:
            lines.append(chunk.decode("utf-8", errors="replace"))
            bad.append(number)
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    return lines, bad


def _normalise_name(name: str) -> str:
    return name.strip().strip('"').strip("'").strip().lower()


def _header(line: str) -> tuple[str | None, dict[str, int] | None]:
    """(delimiter, {role: column index}) when `line` is a header naming sentence1 and sentence2."""
    for delimiter in DELIMITERS:
        if delimiter not in line:
            continue
        names = [_normalise_name(n) for n in line.split(delimiter)]
        if "sentence1" in names and "sentence2" in names:
            columns = {"a": names.index("sentence1"), "b": names.index("sentence2")}
            for score_name in SCORE_NAMES:
                if score_name in names:
                    columns["score"] = names.index(score_name)
                    break
            return delimiter, columns
    return None, None


def _parse_score(text: str) -> tuple[float | None, str | None]:
    """(score, None) or (None, reason)."""
    stripped = text.strip()
    if not stripped:
        return None, "the score is empty"
    try:
        value = float(stripped)
    except ValueError:
        return None, f"the score {stripped[:30]!r} is not a number"
    if not math.isfinite(value):
        return None, f"the score {stripped!r} is not a finite number"
    return value, None


def _make_pair(result: PairFile, line: int, a: str, b: str, score: str | None) -> None:
    """Validate one row and append it to `result.pairs`, or count it as malformed."""
    a, b = a.strip(), b.strip()
    if not a or not b:
        result._skip(line, f"sentence {'1' if not a else '2'} is empty")
        return
    gold: float | None = None
    if score is not None:
        gold, reason = _parse_score(score)
        if reason is not None:
            result._skip(line, reason)
            return
    result.pairs.append(Pair(a, b, gold, line))


def _read_sts(path: str, lines: list[str]) -> PairFile:
    result = PairFile(path=path, format="stsb")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            result.blank += 1
            continue
        fields = line.split("\t")
        if len(fields) < STS_COLUMNS:
            result._skip(number, f"expected at least {STS_COLUMNS} tab-separated columns, found {len(fields)}")
            continue
        _make_pair(result, number, fields[5], fields[6], fields[4])
    return result


def _read_header(path: str, lines: list[str], first: int, delimiter: str, columns: dict[str, int]) -> PairFile:
    result = PairFile(path=path, format=_DELIMITER_FORMAT[delimiter])
    result.blank = first  # blank lines before the header
    needed = max(columns.values()) + 1
    body = lines[first + 1 :]
    if delimiter == "\t":  # TSV: quotes are text
        reader = csv.reader(_lines(body), delimiter=delimiter, quoting=csv.QUOTE_NONE, strict=False)
    else:
        reader = csv.reader(_lines(body), delimiter=delimiter, quoting=csv.QUOTE_MINIMAL, strict=False)
    offset = first + 1  # line number of the header
    previous_end = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            start = offset + previous_end + 1
            previous_end = reader.line_num
            result._skip(start, f"CSV syntax error ({exc})")
            continue
        start = offset + previous_end + 1
        previous_end = reader.line_num
        if not fields or all(not f.strip() for f in fields):
            result.blank += 1
            continue
        if len(fields) < needed:
            result._skip(start, f"expected {needed} columns, found {len(fields)}")
            continue
        score = fields[columns["score"]] if "score" in columns else None
        _make_pair(result, start, fields[columns["a"]], fields[columns["b"]], score)
    return result


def _lines(body: list[str]) -> Iterator[str]:
    for line in body:
        yield line + "\n"


def _read_jsonl(path: str, lines: list[str]) -> PairFile:
    result = PairFile(path=path, format="jsonl")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            result.blank += 1
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            result._skip(number, f"not valid JSON ({exc.args[0] if exc.args else exc})")
            continue
        if not isinstance(obj, dict):
            result._skip(number, "not a JSON object")
            continue
        a = obj.get("text_a", obj.get("sentence1"))
        b = obj.get("text_b", obj.get("sentence2"))
        if not isinstance(a, str) or not isinstance(b, str):
            result._skip(number, "needs string fields text_a and text_b")
            continue
        raw = obj.get("score")
        if raw is None:
            score = None
        elif isinstance(raw, (int, float)) and not isinstance(raw, bool):
            score = repr(float(raw))
        elif isinstance(raw, str):
            score = raw
        else:
            result._skip(number, f"the score {raw!r} is not a number")
            continue
        _make_pair(result, number, a, b, score)
    return result
