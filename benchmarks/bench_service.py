"""The backend as a service: fairness, cancellation, the persistent cache, HTTP clients, memory.

    python benchmarks/bench_service.py [--scenarios fairness,queue,pages,cancel,chunks,restart,concurrent,memory]
                                       [--requests 300] [--out benchmarks/service_results.md]

fairness    In-process JobManager (what the page runs), all-MiniLM-L6-v2, default options:
            a short pair alone, then the same pair submitted while a long pair (two ~240-token
            texts) computes, per gate policy (lock = main's FifoGate, a plain lock; fifo =
            waiting runs in arrival order; round-robin; shortest) and chunk cap. Ratio = short
            behind long / short alone (target <= 2). Then the long job is cancelled: seconds until
            it reports cancelled and the process CPU (cores busy) in windows after the cancel
            (target: idle within 2 s).
queue       Fairness that covers the queue (issue 27): a JobManager with `--workers` workers (2 for a
            2-core machine), all-MiniLM-L6-v2, no cache. (1) A short pair alone, then behind workers + 2
            long pairs (the long ones occupy every worker and two wait in the queue): ratio target <= 3.
            (2) Mixed load: `--clients` clients each explaining distinct short pairs one after another
            for `--duration` seconds, alone, then with a long pair submitted every 5 s: short-pair p95
            with / without the long pairs, target <= 3. Per policy: shortest (this branch: queued jobs
            shortest first, long ones overtaken at chunk boundaries) and fifo (arrival order: queued
            jobs wait for a free worker, like main's queue).
pages       The same through the page: two AppTest sessions in one process (the in-process
            backend), the whole page run of the short pair alone and behind the long pair, this
            page against main's behaviour (`lock`).
cancel      A long pair alone, cancelled 0.5, 1.3 and 2.1 s into its chunks (with the default chunk
            cap and without): seconds until it stops and the process CPU after (target: 2 s).
chunks      What capping a chunk's memory budget costs in throughput (interleaved, 3 rounds).
restart     `pairlens serve` on 127.0.0.1: a request computed, the server restarted, the same
            request timed (target <= 0.2 s, from the cache, before any model is loaded); a
            second server process and a second page process (AppTest, the in-process backend)
            on the same PAIRLENS_HOME answer it from the cache too. An abandoned request (the
            client gives up after 3 s) and the server's CPU after it.
concurrent  8 HTTP clients at once, 8 distinct pairs; every matrix against in-process explain
            (target <= 1e-6) and the server's RSS before and after.
memory      `--requests` distinct pairs of ~30-token texts through the page (AppTest in one
            process, the in-process backend, PAIRLENS_CACHE_MB=1 and PAIRLENS_RESULT_CACHE=32 so both
            bounds are reached), RSS every 50.

Every number comes from one run (ratios inside it); the load average is printed with them.
Network traffic stays on 127.0.0.1; every loop is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHORT = ("A man is playing a guitar on stage.", "Someone performs music with an instrument.")
LONG_A = (
    "The old theatre on the corner of the market square reopened last spring after years of repairs. "
    "On the first night a small orchestra played music by local composers, and the audience, many of whom "
    "had grown up in the neighbourhood, filled every seat and stood along the walls. Between the pieces the "
    "conductor told stories about the building: how it had survived a fire, a flood and two owners who wanted "
    "to turn it into a car park, and how a group of teachers, shopkeepers and students had raised the money "
    "to save it by selling cakes, old records and hand-painted postcards every Saturday for almost ten years. "
    "When the last piece ended, people did not want to leave; they stayed in the foyer, talking about the "
    "concerts they remembered from their childhood and the ones they hoped to hear next season, while the "
    "musicians packed their instruments slowly and the caretaker waited patiently with his keys. Outside, "
    "the rain had stopped, the cafés around the square were still open, and small groups walked home "
    "through the narrow streets, humming the melodies they had just heard and promising each other to "
    "come back for the winter festival, when the choir of the old school would sing with the orchestra "
    "again."
)
LONG_B = (
    "After a long restoration, the historic concert hall near the town market opened its doors again this "
    "year. The opening evening featured a chamber ensemble performing works written by composers from the "
    "region, and the hall was so crowded that some listeners had to stand at the back. The conductor shared "
    "anecdotes about the hall's history between performances, describing the fire and the flood it had "
    "endured and the developers who had once planned to demolish it, and he thanked the volunteers who had "
    "spent a decade collecting donations through bake sales, flea markets and charity auctions to keep it "
    "standing. Once the final applause faded, the crowd lingered in the lobby, sharing memories of concerts "
    "from decades ago and wishes for the coming programme, while the players put away their instruments "
    "and the night porter quietly waited to lock the doors behind the last guests. By then the weather had "
    "cleared, the coffee shops on the square were still serving, and people strolled home along the old "
    "lanes, whistling tunes from the concert and agreeing to return in December, when the school choir "
    "is expected to join the ensemble for the annual winter celebration, an evening that the younger "
    "players say they are already rehearsing for."
)
SUBJECTS = ["A man", "A woman", "The child", "An old farmer", "The teacher", "A young girl", "The chef", "A dog"]
VERBS = ["is slicing", "is painting", "is carrying", "is washing", "is looking at", "is buying", "is cleaning"]
OBJECTS = ["a tomato", "the fence", "a heavy box", "the car", "a small boat", "some bread", "the window", "a map"]
PLACES = ["in the kitchen", "near the river", "at the market", "in the garden", "on the street", "at home"]


def distinct_pairs(count: int) -> list[tuple[str, str]]:
    """`count` different short pairs (paraphrase-like), deterministic."""
    pairs = []
    for i in range(count):
        s, v, o, p = (
            SUBJECTS[i % 8],
            VERBS[(i // 8) % 7],
            OBJECTS[(i // 56) % 8],
            PLACES[(i // 448 + i) % 6],
        )
        pairs.append((f"{s} {v} {o} {p}.", f"{SUBJECTS[(i + 3) % 8]} {v} {o}."))
    assert len(set(pairs)) == count
    return pairs


CONTEXT = (
    "It was early in the morning, the streets were still quiet, and nobody else seemed to notice what was "
    "happening there."
)


def paragraph_pairs(count: int) -> list[tuple[str, str]]:
    """`count` different pairs of about 30 tokens a text (results of ~10 kB in the cache)."""
    return [(f"{a} {CONTEXT}", f"{CONTEXT} {b}") for a, b in distinct_pairs(count)]


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_memory(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process in MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, value = line.split(":")
            out[key] = int(value.split()[0]) / 1024
    return out


def cpu_after(read: Callable[[], float], windows: list[float]) -> list[float]:
    """Cores busy (CPU seconds per second) in consecutive windows of the given lengths."""
    rates = []
    for length in windows:
        before, started = read(), time.perf_counter()
        time.sleep(length)
        rates.append((read() - before) / (time.perf_counter() - started))
    return rates


LINES: list[str] = []


def say(text: str = "") -> None:
    print(text, flush=True)
    LINES.append(text)


# ----------------------------------------------------------------------------- fairness


def parse_configs(text: str) -> list[tuple[str, int | str | None]]:
    """ "shortest:default,fifo:none,shortest:512" -> [(policy, chunk cap in MB | None | "default")]."""
    configs: list[tuple[str, int | str | None]] = []
    for item in text.split(","):
        policy, _, cap = item.partition(":")
        configs.append((policy, "default" if cap in ("", "default") else None if cap == "none" else int(cap)))
    return configs


def fairness(configs: list[tuple[str, int | str | None]], fifo_cap: float) -> None:
    from attribution import load_model
    from attribution.core.execution import FifoGate
    from attribution.service import ExplainRequest, FairGate, JobManager, JobState
    from attribution.settings import get_settings

    model = load_model("all-MiniLM-L6-v2")
    tokens = [len(model.tokenizer(t)["input_ids"]) for t in (LONG_A, LONG_B)]
    default_cap = get_settings().chunk_mb
    say(f"### Two sessions: a short pair behind a long one ({tokens[0]} and {tokens[1]} tokens), MiniLM, defaults")
    say()
    say(
        "| policy | chunk cap (MB) | short alone (s) | short behind long (s) | ratio | long done when short "
        "finished | cancel -> stopped (s) | cores busy 0-0.5 / 0.5-1 / 1-2 / 2-3 s after cancel |"
    )
    say("|---|---|---|---|---|---|---|---|")
    short = ExplainRequest.create(*SHORT)
    long = ExplainRequest.create(LONG_A, LONG_B)
    for policy, cap in configs:
        gate = FifoGate() if policy == "lock" else FairGate(policy)  # type: ignore[arg-type]
        jobs = JobManager(workers=4, gate=gate, cache=None, chunk_mb=cap)  # type: ignore[arg-type]
        cap_text = f"{default_cap} (default)" if cap == "default" else "none (2048 budget)" if cap is None else cap
        try:
            jobs.explain(short)  # warm-up (tagger, first-call costs), not timed
            started = time.perf_counter()
            jobs.explain(short)
            alone = time.perf_counter() - started
            long_id = jobs.submit(long)
            deadline = time.monotonic() + 600
            while jobs.status(long_id).done == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            started = time.perf_counter()
            short_id = jobs.submit(short)
            status = jobs.wait(short_id, timeout=fifo_cap if policy in ("fifo", "lock") else 600)
            behind = time.perf_counter() - started
            finished = status.state is JobState.DONE
            long_share = f"{100 * jobs.status(long_id).fraction:.0f} %"
            cancel_at = time.perf_counter()
            jobs.cancel(long_id)
            jobs.cancel(short_id)
            stopped = jobs.wait(long_id, timeout=60)
            stop_seconds = time.perf_counter() - cancel_at
            rates = cpu_after(cpu_seconds, [0.5, 0.5, 1.0, 1.0])
            ratio = behind / alone
            shown = f"{behind:.1f}" if finished else f"> {behind:.0f} (not done)"
            say(
                f"| {policy} | {cap_text} | {alone:.1f} | {shown} | {'' if finished else '> '}{ratio:.2f} | "
                f"{long_share} | {stop_seconds:.2f} ({stopped.state.value}) | "
                f"{' / '.join(f'{r:.2f}' for r in rates)} |"
            )
        finally:
            jobs.shutdown()
    say()


def queue_fairness(policies: list[str], workers: int, clients: int, duration: float, fifo_cap: float) -> None:
    from attribution import load_model
    from attribution.service import ExplainRequest, FairGate, JobManager, JobState

    load_model("all-MiniLM-L6-v2")
    say(f"### A short pair behind {workers} workers + 2 long pairs, and mixed load (in-process JobManager, MiniLM)")
    say()
    say(
        "| policy | workers | short alone (s) | behind workers + 2 long (s) | ratio | short p95 alone (s) | "
        "short p95 with long pairs every 5 s (s) | ratio | short pairs done alone / mixed | long pairs submitted |"
    )
    say("|---|---|---|---|---|---|---|---|---|---|")
    long = ExplainRequest.create(LONG_A, LONG_B, pos=False)
    pairs = iter(distinct_pairs(2500))  # short pairs never repeat (no cache anyway)
    for policy in policies:
        jobs = JobManager(workers=workers, max_jobs=64, gate=FairGate(policy), cache=None)  # type: ignore[arg-type]
        try:
            short = ExplainRequest.create(*SHORT, pos=False)
            jobs.explain(short)  # warm-up, not timed
            alone = statistics.median(
                timed_explain(jobs, ExplainRequest.create(*next(pairs), pos=False)) for _ in range(3)
            )
            longs = [jobs.submit(long) for _ in range(workers + 2)]
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and not all(jobs.status(j).done > 0 for j in longs[:workers]):
                time.sleep(0.05)
            wait_cap = fifo_cap if policy == "fifo" else 300.0
            started = time.perf_counter()
            status = jobs.wait(jobs.submit(ExplainRequest.create(*next(pairs), pos=False)), timeout=wait_cap)
            behind = time.perf_counter() - started
            behind_text = f"{behind:.2f}" if status.state is JobState.DONE else f"> {behind:.0f} (not done)"
            for job in longs:
                jobs.cancel(job)
            for job in longs:
                jobs.wait(job, timeout=60)
            quiet = mixed_load(jobs, pairs, clients, duration, None)
            loaded = mixed_load(jobs, pairs, clients, duration, long)
            p95 = [statistics.quantiles(q[0], n=20)[-1] if len(q[0]) >= 2 else float("nan") for q in (quiet, loaded)]
            say(
                f"| {policy} | {workers} | {alone:.2f} | {behind_text} | {behind / alone:.1f} | {p95[0]:.2f} | "
                f"{p95[1]:.2f} | {p95[1] / p95[0]:.1f} | {len(quiet[0])} / {len(loaded[0])} | {loaded[1]} |"
            )
        finally:
            for job in jobs.statuses():
                jobs.cancel(job.id)
            jobs.shutdown()
    say()


def timed_explain(jobs: Any, request: Any) -> float:
    started = time.perf_counter()
    jobs.explain(request, timeout=300)
    return time.perf_counter() - started


def mixed_load(jobs: Any, pairs: Any, clients: int, duration: float, long: Any) -> tuple[list[float], int]:
    """`clients` threads explaining distinct short pairs for `duration` s (a long pair every 5 s when
    `long` is given): the short pairs' latencies (those finished) and the long pairs submitted."""
    from attribution.service import Busy, ExplainRequest

    lock = threading.Lock()
    latencies: list[float] = []
    end = time.monotonic() + duration

    def client() -> None:
        while time.monotonic() < end:
            with lock:
                request = ExplainRequest.create(*next(pairs), pos=False)
            started = time.perf_counter()
            try:
                job = jobs.submit(request)
            except Busy:
                time.sleep(0.5)
                continue
            status = jobs.wait(job, timeout=max(end - time.monotonic(), 0.1))
            if status.state.value == "done":
                with lock:
                    latencies.append(time.perf_counter() - started)
            else:
                jobs.cancel(job)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    submitted: list[str] = []
    while long is not None and time.monotonic() < end:
        with contextlib.suppress(Busy):
            submitted.append(jobs.submit(long))
        time.sleep(min(5.0, max(end - time.monotonic(), 0.0)))
    for thread in threads:
        thread.join(duration + 60)
    for job in submitted:
        jobs.cancel(job)
    for job in submitted:
        jobs.wait(job, timeout=60)
    return latencies, len(submitted)


def cancel_latency(caps: list[int | str | None], delays: list[float]) -> None:
    """A long pair alone; cancelled `delay` seconds into its chunks: until it stops, and the CPU after."""
    from attribution.service import ExplainRequest, JobManager
    from attribution.settings import get_settings

    default_cap = get_settings().chunk_mb
    say("### Cancelling a running long pair (MiniLM, defaults; in-process JobManager)")
    say()
    say(
        "| chunk cap (MB) | cancelled after (s) | cancel -> stopped (s) | cores busy before | "
        "cores busy 0-0.5 / 0.5-1 / 1-2 / 2-3 s after the cancel |"
    )
    say("|---|---|---|---|---|")
    long = ExplainRequest.create(LONG_A, LONG_B, pos=False)
    for cap in caps:
        cap_text = f"{default_cap} (default)" if cap == "default" else "none (2048 budget)" if cap is None else cap
        for delay in delays:
            jobs = JobManager(workers=2, cache=None, chunk_mb=cap)  # type: ignore[arg-type]
            try:
                job = jobs.submit(long)
                deadline = time.monotonic() + 600
                while jobs.status(job).done == 0 and time.monotonic() < deadline:
                    time.sleep(0.02)
                before = cpu_seconds()
                time.sleep(delay)
                busy = (cpu_seconds() - before) / delay
                started = time.perf_counter()
                jobs.cancel(job)
                status = jobs.wait(job, timeout=120)
                stopped = time.perf_counter() - started
                rates = cpu_after(lambda: cpu_seconds(), [0.5, 0.5, 1.0, 1.0])
                say(
                    f"| {cap_text} | {delay:.1f} | {stopped:.2f} ({status.state.value}) | {busy:.2f} | "
                    f"{' / '.join(f'{r:.2f}' for r in rates)} |"
                )
            finally:
                jobs.shutdown()
    say()


def chunks(budgets: list[int], reps: int) -> None:
    """What a chunk cap costs: one ~240-token text, one node, forward JVPs, by memory budget (interleaved)."""
    import numpy as np

    from attribution import Run, load_model
    from attribution.core.engine import prepare_path
    from attribution.core.jacobian import node_contributions

    model = load_model("all-MiniLM-L6-v2")
    path = prepare_path(model, LONG_A, model.default_layer, "A")
    seq = path.h.shape[0]
    tail = model.tail(model.default_layer)
    say(f"### What a chunk cap costs: {seq} tangent passes (one {seq}-token text, one node), by chunk budget")
    say()
    seconds: dict[int, list[float]] = {b: [] for b in budgets}
    longest: dict[int, list[float]] = {b: [] for b in budgets}
    for _ in range(reps):
        for budget in budgets:
            times: list[float] = []
            last = [time.perf_counter()]

            def tick(progress: Any, times: list[float] = times, last: list[float] = last) -> None:
                now = time.perf_counter()
                times.append(now - last[0])
                last[0] = now

            started = time.perf_counter()
            node_contributions(
                tail,
                path.h,
                path.r,
                np.array([0.5]),
                direction="forward",
                budget_bytes=budget * 2**20,
                bytes_per_sequence=model.sequence_bytes(seq),
                run=Run(on_progress=tick),
            )
            seconds[budget].append(time.perf_counter() - started)
            longest[budget].append(max(times))
    base = statistics.median(seconds[budgets[0]])
    say("| chunk budget (MB) | passes per chunk | time (s, median) | vs first | longest chunk (s, median) |")
    say("|---|---|---|---|---|")
    for budget in budgets:
        per_chunk = max(1, min(seq, budget * 2**20 // model.sequence_bytes(seq)))
        median = statistics.median(seconds[budget])
        say(
            f"| {budget} | {per_chunk} | {median:.1f} | {median / base:.2f} | "
            f"{statistics.median(longest[budget]):.2f} |"
        )
    say()


PAGE_SESSIONS = """
import json, os, sys, threading, time
root, policy, cap = sys.argv[1], sys.argv[2], float(sys.argv[3])
sys.path.insert(0, os.path.join(root, "benchmarks"))
from streamlit.testing.v1 import AppTest
from bench_service import SHORT, LONG_A, LONG_B
from components import backend
if policy == "lock":  # main's behaviour: engine calls in the script threads behind one lock, no chunk cap
    from attribution.core.execution import FifoGate
    from attribution.service import JobManager
    def init(self):
        self.jobs = JobManager(load=lambda name: backend.get_model(name), gate=FifoGate(), chunk_mb=None)
    backend.LocalBackend.__init__ = init
APP = os.path.join(root, "app.py")

def session(a, b, timeout=900):
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.query_params["a"], at.query_params["b"] = a, b
    return at

def timed(at):
    started = time.perf_counter()
    try:
        at.run()
    except RuntimeError:  # AppTest's timeout: the run is stopped
        return None
    assert not at.exception and len(at.get("plotly_chart")) == 1, [e.value for e in at.error]
    return time.perf_counter() - started

session("A warm-up sentence.", "Another sentence.").run()
for _ in range(2):  # the short pair's own shapes and words once more, untimed
    backend.registry().clear()
    session(*SHORT).run()
alone = []
for _ in range(3):
    backend.registry().clear()
    alone.append(timed(session(*SHORT)))
backend.registry().clear()
jobs = backend.get_backend().jobs
long = session(LONG_A, LONG_B)
thread = threading.Thread(target=long.run, daemon=True)
thread.start()
deadline = time.monotonic() + 600
def long_job():  # the long pair plans thousands of units, the short one a few hundred
    return [s for s in jobs.statuses() if s.planned > 1000 and not s.finished]
while not any(s.done > 0 for s in long_job()) and time.monotonic() < deadline:
    time.sleep(0.05)
behind = []
for _ in range(3):  # while the long pair still computes
    backend.registry().clear()
    behind.append(timed(session(*SHORT, timeout=cap)))
    if behind[-1] is None or not long_job():
        break
long_done = max((s.fraction for s in long_job()), default=1.0)
for status in jobs.statuses():
    jobs.cancel(status.id)
thread.join(120)
for _ in range(3):  # alone again, after: the order of the runs favours neither side
    backend.registry().clear()
    alone.append(timed(session(*SHORT)))
print(json.dumps({"alone": alone, "behind": behind, "long_done": long_done}), flush=True)
os._exit(0)  # daemon threads of Streamlit and torch must not run into interpreter shutdown
"""


def page_sessions(policies: list[str], cap: float) -> None:
    say("### Two page sessions (AppTest, one process, the in-process backend, no disk cache)")
    say()
    say("Session 2 explains the short pair alone (whole page run, 3 times), then 3 times while session 1 computes")
    say("the long pair, then alone 3 times more; `lock` is main's behaviour (one lock, no chunk cap). A run may")
    say(f"wait {cap:.0f} s at most. Two untimed warm-up runs of the short pair come first.")
    say()
    say("| policy | short alone (s, median (runs)) | short behind long (s, median (runs)) | ratio | long done |")
    say("|---|---|---|---|---|")
    for policy in policies:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PAIRLENS_CACHE_MB": "0"}
        env.pop("PAIRLENS_BACKEND_URL", None)
        out = subprocess.run(
            [sys.executable, "-c", PAGE_SESSIONS, str(ROOT), policy, str(cap)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=3000,
            check=False,
        )
        if out.returncode != 0:
            say(f"| {policy} | failed: {out.stderr.strip().splitlines()[-1][:120] if out.stderr else '?'} | | | |")
            continue
        row = json.loads(out.stdout.strip().splitlines()[-1])
        alone = statistics.median(row["alone"])
        runs = row["behind"]
        if None in runs:
            shown, ratio = f"> {cap:.0f} (stopped)", f"> {cap / alone:.1f}"
        else:
            behind = statistics.median(runs)
            shown, ratio = f"{behind:.1f} ({', '.join(f'{x:.1f}' for x in runs)})", f"{behind / alone:.2f}"
        alone_text = f"{alone:.1f} ({', '.join(f'{x:.1f}' for x in row['alone'])})"
        say(f"| {policy} | {alone_text} | {shown} | {ratio} | {100 * row['long_done']:.0f} % |")
    say()


# ----------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(home: Path, port: int, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    import httpx

    env = {**os.environ, "PAIRLENS_HOME": str(home), "PYTHONPATH": str(ROOT), **(extra_env or {})}
    cmd = [sys.executable, "-m", "attribution", "serve", "--port", str(port), "--log-level", "warning"]
    server = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("pairlens serve exited")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("pairlens serve did not start")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(10)


PAGE_REPLICA = """
import sys, time, json
from streamlit.testing.v1 import AppTest
from attribution.core import engine
calls = []
real = engine.explain
def counted(*args, **kwargs):
    calls.append(1)
    return real(*args, **kwargs)
engine.explain = counted
at = AppTest.from_file(sys.argv[1], default_timeout=600)
at.query_params["a"], at.query_params["b"] = sys.argv[2], sys.argv[3]
started = time.perf_counter()
at.run()
took = time.perf_counter() - started
print(json.dumps({"seconds": took, "engine_calls": len(calls), "charts": len(at.get("plotly_chart")),
                  "errors": [str(e.value) for e in at.error]}))
"""


def page_replica(home: Path, pair: tuple[str, str]) -> dict[str, Any]:
    env = {**os.environ, "PAIRLENS_HOME": str(home), "PYTHONPATH": str(ROOT)}
    env.pop("PAIRLENS_BACKEND_URL", None)
    out = subprocess.run(
        [sys.executable, "-c", PAGE_REPLICA, str(ROOT / "app.py"), *pair],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def restart(home: Path) -> None:
    import httpx

    say("### Persistent cache across restarts, processes and page replicas (`pairlens serve` on 127.0.0.1)")
    say()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    body = {"text_a": SHORT[0], "text_b": SHORT[1]}
    server = start_server(home, port)
    try:
        started = time.perf_counter()
        first = httpx.post(f"{base}/explain", json=body, timeout=600)
        computed = time.perf_counter() - started
        assert first.status_code == 200, first.text
        repeat = []
        for _ in range(5):
            started = time.perf_counter()
            httpx.post(f"{base}/explain", json=body, timeout=60).raise_for_status()
            repeat.append(time.perf_counter() - started)
        # an abandoned request: the client gives up after 3 s
        before = proc_cpu_seconds(server.pid)
        given_up = time.perf_counter()
        with contextlib.suppress(httpx.ReadTimeout):
            httpx.post(f"{base}/explain", json={"text_a": LONG_A, "text_b": LONG_B}, timeout=3)
        busy_before = (proc_cpu_seconds(server.pid) - before) / (time.perf_counter() - given_up)
        rates = cpu_after(lambda: proc_cpu_seconds(server.pid), [0.5, 0.5, 1.0, 1.0, 2.0])
        cancelled = httpx.get(f"{base}/health").json()["jobs"]["cancelled"]
    finally:
        stop_server(server)
    say(
        f"- first request, computed (model loaded on demand): {computed:.2f} s; repeated in the same server: "
        f"median {statistics.median(repeat):.3f} s"
    )
    say(
        f"- abandoned request (client gave up after 3 s; server cores busy meanwhile {busy_before:.2f}): "
        f"server cores busy 0-0.5 / 0.5-1 / 1-2 / 2-3 / 3-5 s after: {' / '.join(f'{r:.2f}' for r in rates)}; "
        f"jobs cancelled: {cancelled}"
    )

    server = start_server(home, port)
    try:
        started = time.perf_counter()
        again = httpx.post(f"{base}/explain", json=body, timeout=600)
        after_restart = time.perf_counter() - started
        same = again.json()["matrix"] == first.json()["matrix"]
        job = httpx.post(f"{base}/jobs", json=body).json()
        loaded = "model not loaded" if job["cached"] else "?"
    finally:
        stop_server(server)
    verdict = "ok" if after_restart <= 0.2 else "MISSED"
    say(
        f"- after a restart: {after_restart:.3f} s (target <= 0.2 s: {verdict}); same matrix: {same}; "
        f"served at submission from the cache ({loaded})"
    )

    port2 = free_port()
    second = start_server(home, port2)
    try:
        started = time.perf_counter()
        other = httpx.post(f"http://127.0.0.1:{port2}/explain", json=body, timeout=600)
        second_seconds = time.perf_counter() - started
    finally:
        stop_server(second)
    say(
        f"- a second server process on the same PAIRLENS_HOME: {second_seconds:.3f} s, same matrix: "
        f"{other.json()['matrix'] == first.json()['matrix']}"
    )
    replica_one = page_replica(home, ("Two dogs are running through a snowy field.", "Puppies play in the snow."))
    replica_two = page_replica(home, ("Two dogs are running through a snowy field.", "Puppies play in the snow."))
    say(
        f"- page replica 1 (new link, own process): {replica_one['seconds']:.2f} s for the whole page run, engine "
        f"calls {replica_one['engine_calls']}; page replica 2 (same link, another process): "
        f"{replica_two['seconds']:.2f} s, engine calls {replica_two['engine_calls']} (charts "
        f"{replica_two['charts']}, errors {replica_two['errors'] or 'none'})"
    )
    say()


def concurrent(home: Path, clients: int) -> None:
    import httpx
    import numpy as np

    from attribution import explain, load_model

    say(f"### {clients} HTTP clients at once (distinct pairs, defaults) against in-process explain")
    say()
    pairs = distinct_pairs(1000)[-clients:]
    model = load_model("all-MiniLM-L6-v2")
    expected = [explain(model, a, b, pos=False).matrix for a, b in pairs]
    port = free_port()
    server = start_server(home, port, {"PAIRLENS_WORKERS": str(clients)})
    base = f"http://127.0.0.1:{port}"
    try:
        httpx.get(f"{base}/models/all-MiniLM-L6-v2", timeout=600).raise_for_status()  # load before timing
        before = proc_memory(server.pid)
        results: list[Any] = [None] * clients
        took: list[float] = [0.0] * clients

        def client(k: int) -> None:
            started = time.perf_counter()
            body = {"text_a": pairs[k][0], "text_b": pairs[k][1]}
            results[k] = httpx.post(f"{base}/explain", json=body, timeout=900).json()
            took[k] = time.perf_counter() - started

        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(1200)
        wall = time.perf_counter() - started
        after = proc_memory(server.pid)
    finally:
        stop_server(server)
    errors = [float(np.abs(np.array(r["matrix"]) - e).max()) for r, e in zip(results, expected, strict=True)]
    verdict = "ok" if max(errors) <= 1e-6 else "MISSED"
    say(
        f"- all {clients} answered in {wall:.1f} s (per client median {statistics.median(took):.1f} s, "
        f"max {max(took):.1f} s); largest |difference| to in-process explain: {max(errors):.2e} "
        f"(target <= 1e-6: {verdict})"
    )
    say(
        f"- server RSS {before['VmRSS']:.0f} MiB before, {after['VmRSS']:.0f} MiB after; peak (VmHWM) "
        f"{after['VmHWM']:.0f} MiB"
    )
    say()


MEMORY_DRIVER = """
import json, os, sys, time
from streamlit.testing.v1 import AppTest
sys.path.insert(0, os.path.join(sys.argv[1], "benchmarks"))
from bench_service import paragraph_pairs
from attribution.service.cache import default_cache

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

count = int(sys.argv[2])
at = AppTest.from_file(os.path.join(sys.argv[1], "app.py"), default_timeout=600)
at.query_params["steps"] = "8"
pairs = paragraph_pairs(count)
started = time.perf_counter()
for i, (a, b) in enumerate(pairs, 1):
    at.session_state["text_a"], at.session_state["text_b"] = a, b
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    if i == 1 or i % 50 == 0:
        stats = default_cache().stats()
        print(json.dumps({"requests": i, "rss": rss(), "cache_entries": stats["entries"],
                          "cache_bytes": stats["bytes"], "seconds": time.perf_counter() - started}), flush=True)
"""


def memory(home: Path, requests: int) -> None:
    say(
        f"### {requests} distinct pairs (~30 tokens a text) through the page (AppTest, in-process backend, "
        "PAIRLENS_CACHE_MB=1, PAIRLENS_RESULT_CACHE=32)"
    )
    say()
    env = {
        **os.environ,
        "PAIRLENS_HOME": str(home),
        "PYTHONPATH": str(ROOT),
        "PAIRLENS_CACHE_MB": "1",
        "PAIRLENS_RESULT_CACHE": "32",
    }
    env.pop("PAIRLENS_BACKEND_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", MEMORY_DRIVER, str(ROOT), str(requests)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    say("| requests | page process RSS (MiB) | cache entries | cache bytes | elapsed (s) |")
    say("|---|---|---|---|---|")
    assert proc.stdout is not None
    for line in proc.stdout:
        row = json.loads(line)
        say(
            f"| {row['requests']} | {row['rss']:.0f} | {row['cache_entries']} | {row['cache_bytes']:,} | "
            f"{row['seconds']:.0f} |"
        )
    if proc.wait(timeout=60) != 0:
        say("| (the page driver failed) | | | | |")
    say()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default="fairness,queue,pages,cancel,chunks,restart,concurrent,memory")
    parser.add_argument(
        "--configs",
        default="shortest:default,round-robin:default,shortest:none,lock:none",
        help="policy:chunk cap in MB (default = PAIRLENS_CHUNK_MB, none = the full memory budget)",
    )
    parser.add_argument("--page-policies", default="shortest,lock", help="shortest = this page; lock = main's")
    parser.add_argument("--page-cap", type=float, default=240.0, help="seconds the short page run may wait")
    parser.add_argument("--budgets", default="2048,1024,512,256", help="chunk budgets (MB) for the chunks scenario")
    parser.add_argument("--fifo-cap", type=float, default=150.0, help="seconds the fifo short pair may wait")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--queue-policies", default="shortest,fifo", help="policies for the queue scenario")
    parser.add_argument("--workers", type=int, default=2, help="JobManager workers in the queue scenario")
    parser.add_argument("--queue-clients", type=int, default=4, help="short-pair clients in the queue scenario")
    parser.add_argument("--duration", type=float, default=45.0, help="seconds of each mixed-load phase")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--out", default=None, help="write the tables to this markdown file")
    args = parser.parse_args()
    scenarios = args.scenarios.split(",")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    say(f"load average at start: {load()} ({os.cpu_count()} cores)")
    say()
    with tempfile.TemporaryDirectory(prefix="pairlens-bench-") as tmp:
        home = Path(tmp)
        os.environ["PAIRLENS_HOME"] = str(home)
        if "fairness" in scenarios:
            fairness(parse_configs(args.configs), args.fifo_cap)
        if "queue" in scenarios:
            queue_fairness(
                args.queue_policies.split(","), args.workers, args.queue_clients, args.duration, args.fifo_cap
            )
        if "pages" in scenarios:
            page_sessions(args.page_policies.split(","), args.page_cap)
        if "cancel" in scenarios:
            cancel_latency(["default", None], [0.5, 1.3, 2.1])
        if "chunks" in scenarios:
            chunks([int(b) for b in args.budgets.split(",")], reps=3)
        if "restart" in scenarios:
            restart(home / "restart")
        if "concurrent" in scenarios:
            concurrent(home / "concurrent", args.clients)
        if "memory" in scenarios:
            memory(home / "memory", args.requests)
    say(f"load average at end: {load()}")
    if args.out:
        command = "python benchmarks/bench_service.py " + " ".join(sys.argv[1:])
        Path(args.out).write_text(
            f"# Service benchmark\n\n`{command.strip()}`\n\n" + "\n".join(LINES) + "\n", encoding="utf-8"
        )


if __name__ == "__main__":
    main()
