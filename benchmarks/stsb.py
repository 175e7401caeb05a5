"""The STS Benchmark beside the project (../shared/data/stsbenchmark, never copied into the repo), sampled
the same way by every benchmark here, so their tables are about the same pairs."""

from __future__ import annotations

from pathlib import Path

from attribution.workflows.data import read_pairs

STSB_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "stsbenchmark"
STSB_TEST = STSB_DIR / "sts-test.csv"


def sample_pairs(n: int, fallback: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    """n sts-test pairs spread over the file (every len // n-th), as (text_a, text_b).

    Where the file is absent: `fallback[:n]` when given, else exit with a message naming the path.
    """
    if not STSB_TEST.is_file():
        if fallback is None:
            raise SystemExit(f"STS Benchmark test split not found at {STSB_TEST}")
        return fallback[:n]
    pairs = read_pairs(STSB_TEST).pairs
    step = max(1, len(pairs) // n)
    return [(p.text_a, p.text_b) for p in pairs[::step][:n]]
