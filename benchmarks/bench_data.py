"""Reading pair files: the whole file against `read_pairs(path, limit=5)` (what `analyze --limit 5` reads).

    python benchmarks/bench_data.py [--rows 1000000] [--repeat 3] [--out benchmarks/data_results.md]

Writes a JSON Lines file of `--rows` rows to a temporary folder, then reads it in fresh
processes, alternating whole and limited reads, and reports the median seconds and the peak
resident memory each read added (ru_maxrss after the read minus before it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROW = {"text_a": "A man is playing a guitar on stage.", "text_b": "Someone performs music.", "score": 3.8}

MEASURE = """
import json, resource, sys, time
from attribution.workflows.data import read_pairs
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
data = read_pairs(sys.argv[1], limit=None if sys.argv[2] == "all" else int(sys.argv[2]))
seconds = time.perf_counter() - started
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "mib": (after - before) / 1024, "pairs": len(data.pairs),
                  "lines_read": data.lines_read}))
"""


def measure(path: Path, limit: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path), limit], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this Markdown file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pairs.jsonl"
        path.write_text((json.dumps(ROW) + "\n") * args.rows, encoding="utf-8")
        size = path.stat().st_size / 2**20
        runs: dict[str, list[dict[str, float]]] = {"all": [], "5": []}
        for _ in range(args.repeat):  # interleaved, so machine load hits both alike
            for limit in runs:
                runs[limit].append(measure(path, limit))
    with open("/proc/loadavg", encoding="ascii") as handle:
        load = handle.read().split()[0]
    lines = [
        f"## Reading {args.rows:,} JSON Lines rows ({size:.0f} MiB): whole file against --limit 5",
        "",
        f"`python benchmarks/bench_data.py --rows {args.rows} --repeat {args.repeat}` "
        f"({time.strftime('%Y-%m-%d')}, load average {load}; medians of {args.repeat} fresh processes)",
        "",
        "| read | lines read | median s | peak memory added (MiB) |",
        "|---|---|---|---|",
    ]
    for limit, rows in runs.items():
        seconds = statistics.median(r["seconds"] for r in rows)
        mib = statistics.median(r["mib"] for r in rows)
        label = "whole file" if limit == "all" else f"limit={limit}"
        lines.append(f"| {label} | {int(rows[0]['lines_read']):,} | {seconds:.4f} | {mib:.1f} |")
    whole = statistics.median(r["seconds"] for r in runs["all"])
    head = statistics.median(r["seconds"] for r in runs["5"])
    lines += ["", f"limit=5 is {whole / head:,.0f}x faster than reading the whole file."]
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
