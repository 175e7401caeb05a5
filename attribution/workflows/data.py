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
U+FFFD and the lines affected are counted in `PairFile.invalid_utf8`, like JSON strings holding
lone surrogates (escapes of broken UTF-8). A file with no usable row raises `InputError` that
says which formats are expected.

Files are streamed: `read_pairs(path, limit=N)` reads only as far as the N-th usable pair. Lines
are read in pieces of at most `max_line_bytes` (1 MiB by default, far above two texts at the
character limit): a longer line refuses the file as soon as that much of it has been read, so a
one-line 1 GB file costs about 1 MiB of memory, not the line.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..core.tokens import repair_surrogates
from ..errors import InputError

MAX_EXAMPLES = 5
MAX_LINE_BYTES = 1 << 20  # a pairs file line longer than this is refused (texts are at most 20,000 characters)
_SURROGATE = re.compile("[\ud800-\udfff]")  # lone surrogates: JSON escapes of broken UTF-8
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
    complete: bool = True  # False: reading stopped at `limit` pairs, the rest of the file was not read
    lines_read: int = 0  # lines read (every count above covers these lines only)
    _last_invalid: int = field(default=0, repr=False, compare=False)

    @property
    def has_gold(self) -> bool:
        """True when every pair has a gold score."""
        return bool(self.pairs) and all(p.gold is not None for p in self.pairs)

    def summary(self) -> str:
        """One line for people: how many pairs, what was skipped and why."""
        text = f"{len(self.pairs)} pairs from {self.path} ({FORMAT_NAMES[self.format]})"
        if not self.complete:
            text += f", the first {len(self.pairs)} only: read up to line {self.lines_read}, counts cover those lines"
        if self.malformed:
            text += f"; {self.malformed} malformed rows skipped ({'; '.join(self.malformed_examples)}"
            text += ", ...)" if self.malformed > len(self.malformed_examples) else ")"
        if self.invalid_utf8:
            lines = ", ".join(str(n) for n in self.invalid_utf8_lines)
            more = ", ..." if self.invalid_utf8 > len(self.invalid_utf8_lines) else ""
            text += f"; {self.invalid_utf8} lines had invalid UTF-8, replaced by U+FFFD (lines {lines}{more})"
        return text

    def _invalid(self, line: int) -> None:
        """Count line `line` as holding broken UTF-8 (replaced by U+FFFD); once per line."""
        if line == self._last_invalid:
            return
        self._last_invalid = line
        self.invalid_utf8 += 1
        if len(self.invalid_utf8_lines) < MAX_EXAMPLES:
            self.invalid_utf8_lines.append(line)

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


def read_pairs(path: str | Path, limit: int | None = None, max_line_bytes: int = MAX_LINE_BYTES) -> PairFile:
    """Read text pairs from `path` in any supported format. Raises InputError on no usable row.

    The file is streamed line by line. With `limit`, reading stops at the `limit`-th usable
    pair: the rest of the file is never read, and `PairFile.complete` is False (the counts of
    malformed and invalid lines then cover only the lines read, see `lines_read`).
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InputError(f"--limit must be a whole number of at least 1 (got {limit!r}).")
    file = Path(path).expanduser()
    if not file.exists():
        raise InputError(f"Data file '{path}' does not exist: give the path of a pairs file ({EXPECTED}).")
    if not file.is_file():
        raise InputError(f"'{path}' is not a file: give the path of a pairs file ({EXPECTED}).")
    result = PairFile(path=str(path), format="")
    try:
        with file.open("rb") as handle:
            lines = _decode_lines(handle, result, max_line_bytes)
            head = _first_line(lines, result)
            if head is None:
                raise InputError(f"Data file '{path}' is empty: {EXPECTED}.")
            number, text = head
            delimiter, columns = _header(text)
            if text.lstrip().startswith("{"):
                result.format = "jsonl"
                _read_jsonl(result, itertools.chain([head], lines), limit)
            elif delimiter is not None and columns is not None:
                result.format = _DELIMITER_FORMAT[delimiter]
                _read_header(result, lines, number, delimiter, columns, limit)
            elif "\t" in text:
                result.format = "stsb"
                _read_sts(result, itertools.chain([head], lines), limit)
            else:
                raise InputError(f"Cannot tell the format of '{path}' from its first line {text[:80]!r}: {EXPECTED}.")
    except OSError as exc:
        raise InputError(f"Cannot read '{path}' ({exc.strerror or exc}).") from None
    if not result.pairs:
        found = ""
        if result.malformed:
            found = f" ({result.malformed} malformed rows: {'; '.join(result.malformed_examples)})"
        raise InputError(f"No usable text pairs in '{path}'{found}: {EXPECTED}.")
    return result


Line = tuple[int, str]  # (1-based line number, text without its line end)


def _decode_lines(handle: BinaryIO, result: PairFile, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[Line]:
    """The file's lines one at a time, decoded; invalid UTF-8 is replaced and counted in `result`.

    InputError for a line over `max_line_bytes`, after reading at most that many bytes of it.
    """
    number = 0
    while chunk := handle.readline(max_line_bytes + 1):
        number += 1
        if len(chunk) > max_line_bytes and not (len(chunk) == max_line_bytes + 1 and chunk.endswith(b"\n")):
            raise InputError(
                f"Line {number} of '{result.path}' is longer than {max_line_bytes:,} bytes: a line holds one pair "
                f"of texts ({EXPECTED}). Check that this is a pairs file with one pair a line."
            )
        if number == 1 and chunk.startswith(b"\xef\xbb\xbf"):
            chunk = chunk[3:]
        chunk = chunk.removesuffix(b"\n").removesuffix(b"\r")
        result.lines_read = number
        try:
            yield number, chunk.decode("utf-8")
        except UnicodeDecodeError:
            result._invalid(number)
            yield number, chunk.decode("utf-8", errors="replace")


def _first_line(lines: Iterator[Line], result: PairFile) -> Line | None:
    """The first line that is not blank (blank lines before it are counted), or None."""
    for number, text in lines:
        if text.strip():
            return number, text
        result.blank += 1
    return None


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


def _make_pair(result: PairFile, line: int, a: str, b: str, score: str | None) -> bool:
    """Validate one row and append it to `result.pairs` (True), or count it as malformed (False)."""
    a, b = a.strip(), b.strip()
    if _SURROGATE.search(a) or _SURROGATE.search(b):  # JSON escapes of broken UTF-8: repaired like the engine does
        a, b = repair_surrogates(a), repair_surrogates(b)
        result._invalid(line)
    if not a or not b:
        result._skip(line, f"sentence {'1' if not a else '2'} is empty")
        return False
    gold: float | None = None
    if score is not None:
        gold, reason = _parse_score(score)
        if reason is not None:
            result._skip(line, reason)
            return False
    result.pairs.append(Pair(a, b, gold, line))
    return True


def _full(result: PairFile, limit: int | None) -> bool:
    """True when `limit` pairs have been read: reading stops there (the rest is not read)."""
    if limit is not None and len(result.pairs) >= limit:
        result.complete = False
        return True
    return False


def _read_sts(result: PairFile, lines: Iterable[Line], limit: int | None) -> None:
    for number, line in lines:
        if not line.strip():
            result.blank += 1
            continue
        fields = line.split("\t")
        if len(fields) < STS_COLUMNS:
            result._skip(number, f"expected at least {STS_COLUMNS} tab-separated columns, found {len(fields)}")
            continue
        if _make_pair(result, number, fields[5], fields[6], fields[4]) and _full(result, limit):
            return


def _read_header(
    result: PairFile, lines: Iterator[Line], header: int, delimiter: str, columns: dict[str, int], limit: int | None
) -> None:
    """Rows after the header (line `header`), through the csv module (multi-line quoted fields)."""
    needed = max(columns.values()) + 1
    body = (text + "\n" for _, text in lines)
    if delimiter == "\t":  # TSV: quotes are text
        reader = csv.reader(body, delimiter=delimiter, quoting=csv.QUOTE_NONE, strict=False)
    else:
        reader = csv.reader(body, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL, strict=False)
    previous_end = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            start = header + previous_end + 1
            previous_end = reader.line_num
            result._skip(start, f"CSV syntax error ({exc})")
            continue
        start = header + previous_end + 1
        previous_end = reader.line_num
        if not fields or all(not f.strip() for f in fields):
            result.blank += 1
            continue
        if len(fields) < needed:
            result._skip(start, f"expected {needed} columns, found {len(fields)}")
            continue
        score = fields[columns["score"]] if "score" in columns else None
        if _make_pair(result, start, fields[columns["a"]], fields[columns["b"]], score) and _full(result, limit):
            return


def _read_jsonl(result: PairFile, lines: Iterable[Line], limit: int | None) -> None:
    for number, line in lines:
        if not line.strip():
            result.blank += 1
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            result._skip(number, f"not valid JSON ({exc.args[0] if exc.args else exc})")
            continue
        except RecursionError:
            result._skip(number, "JSON nested too deeply")
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
            try:
                score = repr(float(raw))
            except OverflowError:  # an integer beyond float's range
                score = "inf"
        elif isinstance(raw, str):
            score = raw
        else:
            result._skip(number, f"the score {_short(raw)} is not a number")
            continue
        if _make_pair(result, number, a, b, score) and _full(result, limit):
            return


def _short(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
