"""Fair scheduling of explain() calls, and jobs: submit, progress, cancel, result.

The engine runs its work in chunks, each through a gate that lets one chunk through at a time
(torch's forward-mode AD levels are process-global). `FairGate` decides which waiting chunk goes
next: by default the one of the computation with the least estimated work left (units left x
its measured seconds per unit), so a short request is never stuck behind a long one; a chunk
that has waited longer than `max_wait` seconds goes first, so a long one is never starved.
"round-robin" (the longest waiting first) and "fifo" (arrival order of whole computations, the
old behaviour) exist for comparison (benchmarks/bench_service.py).

`JobManager` runs requests on worker threads through one FairGate: submit() returns a job id at
once; status() reports progress (units done of planned, seconds, an estimate of the time left);
cancel() stops the job before its next chunk (a queued job never starts); result() waits for it.
Results go through the persistent cache (attribution.service.cache): a repeated request is done
at submit time, without loading the model. Scheduled runs cap their chunk's memory budget at
PAIRLENS_CHUNK_MB, so chunks stay short enough to interleave (the budget does not change the
numbers). Queued and running jobs are bounded by PAIRLENS_MAX_JOBS (`Busy` beyond); finished
jobs are forgotten after `keep_seconds`.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import itertools
import logging
import os
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..core.execution import Cancelled, Gate, Progress, Run
from ..core.options import ExplainOptions, Limits
from ..core.tokens import check_text
from ..core.work import within_work
from ..errors import InputError, ModelError, PairLensError
from ..models import load_model
from ..models.registry import BUILTIN_MODELS, MAX_MODEL_NAME_BYTES, is_builtin_name, resolve_source
from ..result import Attribution
from ..settings import DEFAULT_MODEL, get_settings
from .cache import CacheChoice, ResultCache, cached_explain, default_cache, lookup_unloaded

log = logging.getLogger(__name__)

CHUNK_SECONDS = 1.0  # a scheduled chunk's target length: a cancelled job stops within about 2 s
MIN_CHUNK_MB = 32  # the smallest budget the time bound gives a chunk (smaller ones cost throughput)

Policy = Literal["shortest", "round-robin", "fifo"]
POLICIES: tuple[Policy, ...] = ("shortest", "round-robin", "fifo")


# ----------------------------------------------------------------------------- the gate


@dataclass
class _Account:
    """What the gate knows of one run: arrival order and seconds spent inside."""

    order: int
    busy: float = 0.0
    entered: float = 0.0
    waiting_since: float = 0.0
    seen_done: int = 0  # run.done and busy when the gate last learned from this run
    seen_busy: float = 0.0


class FairGate:
    """A Gate (attribution.core.execution) that lets waiting chunks through by policy.

    One chunk is inside at a time. When it leaves, the policy's choice among the waiting runs
    goes next; under "shortest", a run that leaves while it would still be the choice keeps the
    gate reserved for `grace` seconds, long enough to come back with its next chunk (otherwise a
    short run would wait behind one chunk of the long run for each of its own chunks). A
    waiting run that is cancelled leaves the queue within `poll` seconds and raises Cancelled.
    """

    def __init__(
        self, policy: Policy = "shortest", *, max_wait: float = 30.0, grace: float = 0.1, poll: float = 0.05
    ) -> None:
        if policy not in POLICIES:
            raise InputError(f"Unknown scheduling policy {policy!r}: choose one of {', '.join(POLICIES)}.")
        self.policy = policy
        self.max_wait = max_wait
        self.grace = grace
        self.poll = poll
        self._cond = threading.Condition()
        self._holder: Run | None = None
        self._reserved: tuple[Run, float] | None = None  # (run, until) after it left with work to do
        self._waiting: list[Run] = []
        self._accounts: weakref.WeakKeyDictionary[Run, _Account] = weakref.WeakKeyDictionary()
        self._arrivals = itertools.count()
        self._unit_seconds: float | None = None  # seconds per unit over every run so far (moving average)
        self.switches = 0  # times a chunk of another run followed (tests, benchmarks)
        self._last: Run | None = None

    def enter(self, run: Run) -> None:
        with self._cond:
            account = self._account(run)
            self._learn(run, account)
            account.waiting_since = time.perf_counter()
            self._waiting.append(run)
            try:
                while not self._may_take(run, time.perf_counter()):
                    if run.cancel.is_set():
                        raise Cancelled("The computation was cancelled.")
                    self._cond.wait(self.poll)
            finally:
                self._waiting.remove(run)
            self._holder, self._reserved = run, None
            if self._last is not None and self._last is not run:
                self.switches += 1
            self._last = run
            account.entered = time.perf_counter()

    def leave(self, run: Run) -> None:
        with self._cond:
            if self._holder is not run:
                return
            now = time.perf_counter()
            account = self._account(run)
            account.busy += now - account.entered
            self._holder = None
            if self.policy == "shortest" and self.grace > 0 and self._waiting and self._would_choose(run, now):
                self._reserved = (run, now + self.grace)
            self._cond.notify_all()

    def account_busy(self, run: Run) -> float:
        """Seconds `run` has spent inside the gate."""
        with self._cond:
            account = self._accounts.get(run)
            return account.busy if account is not None else 0.0

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)

    # -- choice ---------------------------------------------------------------------------------

    def _account(self, run: Run) -> _Account:
        account = self._accounts.get(run)
        if account is None:
            account = self._accounts[run] = _Account(order=next(self._arrivals))
        return account

    def _learn(self, run: Run, account: _Account) -> None:
        """Fold the run's chunks since it last came into the gate's average seconds per unit."""
        units, seconds = run.done - account.seen_done, account.busy - account.seen_busy
        if units > 0 and seconds > 0:
            rate = seconds / units
            self._unit_seconds = rate if self._unit_seconds is None else 0.8 * self._unit_seconds + 0.2 * rate
        account.seen_done, account.seen_busy = run.done, account.busy

    def _may_take(self, run: Run, now: float) -> bool:
        if self._holder is not None:
            return False
        if self._reserved is not None:
            reserved, until = self._reserved
            if now < until:
                return reserved is run
            self._reserved = None
        return self._choose(self._waiting, now) is run

    def _would_choose(self, run: Run, now: float) -> bool:
        """Whether `run`, waiting now, would go before every run that waits."""
        if any(now - self._accounts[r].waiting_since > self.max_wait for r in self._waiting):
            return False
        mine = self._seconds_left(run, self._accounts[run])
        return all(mine <= self._seconds_left(r, self._accounts[r]) for r in self._waiting)

    def _choose(self, runs: list[Run], now: float) -> Run:
        accounts = [(run, self._accounts[run]) for run in runs]
        if self.policy == "fifo":
            return min(accounts, key=lambda ra: ra[1].order)[0]
        if self.policy == "round-robin":
            return min(accounts, key=lambda ra: (ra[1].waiting_since, ra[1].order))[0]
        starved = [ra for ra in accounts if now - ra[1].waiting_since > self.max_wait]
        if starved:
            return min(starved, key=lambda ra: ra[1].waiting_since)[0]
        return min(accounts, key=lambda ra: (self._seconds_left(*ra), ra[1].order))[0]

    def _seconds_left(self, run: Run, account: _Account) -> float:
        """Units left times the run's own seconds per unit (else the gate's average, else 1)."""
        known = run.done > 0 and account.busy > 0
        rate = account.busy / run.done if known else (self._unit_seconds or 1.0)
        return run.remaining * rate


# ----------------------------------------------------------------------------- requests and jobs


class Busy(PairLensError):
    """Too many jobs queued or running (PAIRLENS_MAX_JOBS): try again later."""


class UnknownJob(PairLensError, KeyError):
    """No such job (never submitted, or finished and forgotten)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "Unknown job."


class NotFinished(PairLensError):
    """The job has no result yet."""


class JobFailed(PairLensError):
    """The job ended without a result; the message says why. kind: "input", "model" or "internal"."""

    def __init__(self, message: str, kind: str = "input") -> None:
        super().__init__(message)
        self.kind = kind


def check_model_name(name: object, allow_custom: bool | None = None) -> str:
    """A model name the backend may load: built-in names and fine-tuned models under PAIRLENS_HOME
    always; other folders and hub ids only with PAIRLENS_ALLOW_CUSTOM_MODELS=1. ModelError otherwise.

    Nothing outside the operator's models folder is touched before that permission check, and the
    refusal is the same sentence whether a path exists or not (no probing of the file system). A
    built-in name is the built-in model, never a folder of that name. A name over 255 bytes is an
    InputError. Returns the name to load (a fine-tuned model's full path under PAIRLENS_HOME).
    """
    if not isinstance(name, str) or not name.strip():
        raise ModelError(f"model must be a model name such as {DEFAULT_MODEL!r}.")
    name = name.strip()
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_MODEL_NAME_BYTES:
        raise InputError(
            f"The model name is {size:,} bytes long; names are at most {MAX_MODEL_NAME_BYTES} bytes: use a "
            f"built-in model ({', '.join(BUILTIN_MODELS)}) or a name listed by /models."
        )
    if is_builtin_name(name):
        return name
    settings = get_settings()
    allow = settings.allow_custom_models if allow_custom is None else allow_custom
    if allow:
        resolve_source(name)  # ModelError for what cannot be a model
        return name
    folder = _fine_tuned_folder(name, settings.models_dir)
    if folder is not None:
        try:
            found = (folder / "modules.json").is_file()
        except (OSError, ValueError):
            found = False
        if found:
            return str(folder)
    shown = name if len(name) <= 80 else name[:80] + "..."
    raise ModelError(
        f"Unknown model {shown!r}: this server serves the built-in models ({', '.join(BUILTIN_MODELS)}) and the "
        "fine-tuned models listed by /models (the operator can allow folders and hub ids with "
        "PAIRLENS_ALLOW_CUSTOM_MODELS=1)."
    )


def _fine_tuned_folder(name: str, models_dir: Path) -> Path | None:
    """models_dir/<name> for a bare folder name or a path whose parent is models_dir, decided from
    the text alone (no file system access outside models_dir); None otherwise."""
    if any(ord(c) < 32 for c in name) or "\\" in name:
        return None
    if "/" not in name:
        return None if name in (".", "..") or name.startswith("~") else models_dir / name
    if not name.startswith("/"):
        return None
    candidate = Path(os.path.normpath(name))
    if candidate.name in ("", ".", "..") or os.path.normpath(str(candidate.parent)) != os.path.normpath(
        str(models_dir)
    ):
        return None
    return candidate


@dataclass(frozen=True)
class ExplainRequest:
    """One validated computation: model name, the two texts, options and whether to annotate POS."""

    model: str
    text_a: str
    text_b: str
    options: ExplainOptions = field(default_factory=ExplainOptions)
    pos: bool = True

    @classmethod
    def create(
        cls,
        text_a: object,
        text_b: object,
        model: object = DEFAULT_MODEL,
        options: ExplainOptions | Mapping[str, Any] | None = None,
        pos: object = True,
        *,
        allow_custom: bool | None = None,
    ) -> ExplainRequest:
        """Check user input: InputError (texts, options) or ModelError (model) with a message."""
        max_chars = get_settings().max_text_chars
        a = check_text(text_a, "A", max_chars)
        b = check_text(text_b, "B", max_chars)
        if options is None:
            opts = ExplainOptions()
        elif isinstance(options, ExplainOptions):
            opts = options
        elif isinstance(options, Mapping):
            opts = ExplainOptions.create(**{str(k): v for k, v in options.items()})
        else:
            raise InputError(f"options must be an object of option names and values, not {type(options).__name__}.")
        if not isinstance(pos, bool):
            raise InputError(f"pos must be true or false (got {pos!r}).")
        return cls(check_model_name(model, allow_custom), a, b, opts, pos)


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True)
class JobStatus:
    """A job as its caller sees it: state, progress and, when it failed, why."""

    id: str
    state: JobState
    model: str
    done: int
    planned: int
    seconds: float  # since submission
    seconds_left: float | None  # linear estimate from the rate so far; None before the first chunk
    cached: bool  # served from the persistent cache
    error: str | None

    @property
    def fraction(self) -> float:
        if self.state is JobState.DONE:
            return 1.0
        return min(self.done / self.planned, 1.0) if self.planned else 0.0

    @property
    def finished(self) -> bool:
        return self.state.finished

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state.value,
            "model": self.model,
            "progress": {
                "done": self.done,
                "planned": self.planned,
                "fraction": self.fraction,
                "seconds": self.seconds,
                "seconds_left": self.seconds_left,
            },
            "cached": self.cached,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobStatus:
        progress = data.get("progress") or {}
        return cls(
            id=str(data["id"]),
            state=JobState(data["state"]),
            model=str(data.get("model", "")),
            done=int(progress.get("done", 0)),
            planned=int(progress.get("planned", 0)),
            seconds=float(progress.get("seconds", 0.0)),
            seconds_left=None if progress.get("seconds_left") is None else float(progress["seconds_left"]),
            cached=bool(data.get("cached", False)),
            error=data.get("error"),
        )


AUTO_NODES_GUESS = 16  # nodes charged to steps="auto" when ordering jobs (its first rounds)


def rough_work(request: ExplainRequest) -> int:
    """A model-free estimate of a request's work, to order queued jobs (attribution.core.work's units,
    with about 4 characters a token and the auto rule's first rounds): nodes x sum of S^2."""
    nodes = request.options.fixed_steps or AUTO_NODES_GUESS
    tokens = [min(len(text) // 4 + 2, 512) for text in (request.text_a, request.text_b)]
    return nodes * sum(t * t for t in tokens)


class _Job:
    """A job's mutable state (guarded by its manager's lock)."""

    def __init__(self, job_id: str, request: ExplainRequest) -> None:
        self.id = job_id
        self.request = request
        self.cancel = threading.Event()
        self.finished = threading.Event()
        self.state = JobState.QUEUED
        self.submitted = time.perf_counter()
        self.ended: float | None = None
        self.progress = Progress(0, 0, 0.0)
        self.result: Attribution | None = None
        self.error: str | None = None
        self.error_kind: str | None = None  # "input" | "model" | "internal" when it failed
        self.cached = False
        self.rough = rough_work(request)
        self.order = 0  # arrival order (set by the manager)

    def rough_left(self) -> float:
        """`rough` scaled by the fraction of planned units not done yet."""
        p = self.progress
        return self.rough * (1.0 - min(p.done / p.planned, 1.0)) if p.planned else float(self.rough)

    def status(self) -> JobStatus:
        seconds = (self.ended or time.perf_counter()) - self.submitted
        p = self.progress
        left = 0.0 if self.state is JobState.DONE else (p.seconds_left if not self.state.finished else None)
        return JobStatus(
            self.id, self.state, self.request.model, p.done, p.planned, seconds, left, self.cached, self.error
        )


class JobManager:
    """Worker threads computing ExplainRequests through one gate (a FairGate) and the result cache.

    workers, max_jobs: PAIRLENS_WORKERS and PAIRLENS_MAX_JOBS by default. chunk_mb: the cap on a
    scheduled chunk's memory budget (PAIRLENS_CHUNK_MB; None leaves the options' budget alone).
    chunk_seconds: the time a chunk should take at most (so that a cancelled job stops within about
    twice that): every chunk's seconds per MB of budget is measured, and a job starting later gets
    a budget of chunk_seconds / (the slowest recent rate), rounded down to a power of two and at
    least MIN_CHUNK_MB, when that is below chunk_mb; None: memory alone bounds chunks. The budget is
    part of the cache key, so a result computed under one cap is served to jobs that get the same.
    cache: a ResultCache, None (no cache) or "default" (PAIRLENS_HOME's, per process).
    keep_seconds: how long a finished job stays readable. load: model name -> loaded model
    (default attribution.load_model; the page passes its own per-process loader). max_work: the
    operator's cap on one request's work (attribution.core.work; PAIRLENS_MAX_PAGE_WORK by default,
    None for no cap): steps=auto is capped to what fits, a fixed N that does not fit is refused.
    """

    def __init__(
        self,
        *,
        workers: int | None = None,
        max_jobs: int | None = None,
        gate: Gate | None = None,
        chunk_mb: int | Literal["default"] | None = "default",
        chunk_seconds: float | None = CHUNK_SECONDS,
        cache: CacheChoice = "default",
        keep_seconds: float = 600.0,
        load: Callable[[str], Any] | None = None,
        max_work: int | Literal["default"] | None = "default",
    ) -> None:
        settings = get_settings()
        self._max_work = max_work
        self.workers = workers or settings.workers
        self.max_jobs = max_jobs or settings.max_jobs
        self.gate: Gate = gate or FairGate()
        self.chunk_mb = settings.chunk_mb if chunk_mb == "default" else chunk_mb
        self.chunk_seconds = chunk_seconds
        self._chunk_rates: collections.deque[float] = collections.deque(maxlen=32)  # seconds per MB of budget
        self._cache_choice = cache
        self.keep_seconds = keep_seconds
        self.load = load
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # a job was queued or ended, or the manager closed
        self._jobs: OrderedDict[str, _Job] = OrderedDict()
        self._pending: list[_Job] = []  # queued jobs, in arrival order
        self._running: set[_Job] = set()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads waiting for a job
        self._arrivals = itertools.count()
        self._closed = False

    @property
    def cache(self) -> ResultCache | None:
        return default_cache() if self._cache_choice == "default" else self._cache_choice

    # -- the API --------------------------------------------------------------------------------

    def submit(self, request: ExplainRequest) -> str:
        """Queue a request; its job id. Busy when PAIRLENS_MAX_JOBS jobs are queued or running."""
        job = _Job(uuid.uuid4().hex, request)
        hit = self._lookup(request)
        with self._lock:
            if self._closed:
                raise Busy("The backend is shutting down: try again in a moment.")
            self._forget_old()
            if hit is not None:
                job.result, job.cached, job.state, job.ended = hit, True, JobState.DONE, time.perf_counter()
                job.finished.set()
                self._jobs[job.id] = job
                return job.id
            active = sum(1 for j in self._jobs.values() if not j.state.finished)
            if active >= self.max_jobs:
                raise Busy(
                    f"The backend is busy ({active} requests queued or running, the limit is {self.max_jobs}): "
                    "try again in a moment."
                )
            job.order = next(self._arrivals)
            self._jobs[job.id] = job
            self._pending.append(job)
            self._start_workers()
            self._wake.notify_all()
        return job.id

    def status(self, job_id: str) -> JobStatus:
        with self._lock:
            return self._job(job_id).status()

    def cancel(self, job_id: str) -> JobStatus:
        """Ask the job to stop: a queued job never starts, a running one stops before its next chunk."""
        with self._lock:
            job = self._job(job_id)
            if not job.state.finished:
                job.cancel.set()
                if job.state is JobState.QUEUED:
                    self._end(job, JobState.CANCELLED, "The computation was cancelled.")
            return job.status()

    def wait(self, job_id: str, timeout: float | None = None) -> JobStatus:
        """The status once the job has finished or `timeout` seconds passed."""
        with self._lock:
            job = self._job(job_id)
        job.finished.wait(timeout)
        with self._lock:
            return job.status()

    def result(self, job_id: str, timeout: float | None = 0.0) -> Attribution:
        """The job's result, waiting up to `timeout` seconds (None: forever).

        NotFinished while it runs, Cancelled when cancelled, JobFailed with the reason when it failed.
        """
        status = self.wait(job_id, timeout) if timeout != 0.0 else self.status(job_id)
        if status.state is JobState.DONE:
            with self._lock:
                result = self._job(job_id).result
            assert result is not None
            return result
        if status.state is JobState.CANCELLED:
            raise Cancelled(status.error or "The computation was cancelled.")
        if status.state is JobState.FAILED:
            with self._lock:
                kind = self._job(job_id).error_kind or "internal"
            raise JobFailed(status.error or "The computation failed.", kind)
        raise NotFinished(f"Job {job_id} is {status.state.value} ({100 * status.fraction:.0f} % done).")

    def explain(self, request: ExplainRequest, timeout: float | None = None) -> Attribution:
        """submit() and wait for the result; the job is cancelled if the waiting is interrupted."""
        job_id = self.submit(request)
        try:
            return self.result(job_id, timeout=timeout)
        except NotFinished:
            self.cancel(job_id)
            raise
        except BaseException:
            self.cancel(job_id)
            raise

    def statuses(self) -> list[JobStatus]:
        """Every job still known, oldest first."""
        with self._lock:
            return [job.status() for job in self._jobs.values()]

    def counts(self) -> dict[str, int]:
        """Jobs known by state (queued, running, done, failed, cancelled)."""
        with self._lock:
            counts = {state.value: 0 for state in JobState}
            for job in self._jobs.values():
                counts[job.state.value] += 1
            return counts

    def shutdown(self, cancel: bool = True, timeout: float = 10.0) -> None:
        """Stop the workers (cancelling what runs when `cancel`)."""
        with self._lock:
            self._closed = True
            jobs = list(self._jobs.values())
            threads = list(self._threads)
        if cancel:
            for job in jobs:
                job.cancel.set()
        with self._lock:
            self._wake.notify_all()
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # -- internals ------------------------------------------------------------------------------

    def _job(self, job_id: str) -> _Job:
        job = self._jobs.get(job_id) if isinstance(job_id, str) else None
        if job is None:
            raise UnknownJob(f"No job {str(job_id)[:64]!r}: it never existed or finished long ago.")
        return job

    def _chunked(self, options: ExplainOptions, limits: Limits) -> ExplainOptions:
        """The options a job runs with: its memory budget at most `chunk_cap_mb()` (chunk_mb, or less so
        that a chunk takes about chunk_seconds). The budget is part of the cache key (it changes the
        numbers by float rounding), so the submit-time lookup and the run use this same cap."""
        cap = self.chunk_cap_mb()
        if cap is not None and (options.memory_budget_mb or limits.memory_budget_mb) > cap:
            return options.replace(memory_budget_mb=cap)
        return options

    def _lookup(self, request: ExplainRequest) -> Attribution | None:
        """A cached result without loading the model (None when unknown or the cache is off).

        InputError when the model's facts are known and the options do not fit it (layer too deep).
        """
        cache = self.cache
        if cache is None:
            return None
        limits = get_settings().limits
        options = self._chunked(request.options, limits)
        try:
            return lookup_unloaded(cache, request.model, request.text_a, request.text_b, options, request.pos, limits)
        except InputError:
            raise  # a layer the model does not have: refused at once
        except PairLensError:
            return None  # the worker reports it with the model loaded

    def _forget_old(self) -> None:
        """Drop finished jobs older than keep_seconds, and the oldest beyond 4 x max_jobs."""
        now = time.perf_counter()
        finished = [j for j in self._jobs.values() if j.state.finished]
        excess = len(finished) - 4 * self.max_jobs
        for job in finished:
            assert job.ended is not None
            if excess > 0 or now - job.ended > self.keep_seconds:
                del self._jobs[job.id]
                excess -= 1

    @property
    def _max_wait(self) -> float:
        return float(getattr(self.gate, "max_wait", 30.0))

    @property
    def _shortest_first(self) -> bool:
        return getattr(self.gate, "policy", None) == "shortest"

    def _start_workers(self) -> None:
        """Enough threads for the queued jobs: `workers`, plus up to `workers` more for jobs that
        overtake running ones (called with the lock held)."""
        self._threads = [t for t in self._threads if t.is_alive()]
        wanted = min(
            2 * self.workers if self._shortest_first else self.workers, len(self._running) + len(self._pending)
        )
        while len(self._threads) < wanted and self._idle < len(self._pending):
            thread = threading.Thread(target=self._work, name=f"pairlens-worker-{len(self._threads)}", daemon=True)
            self._threads.append(thread)
            self._idle += 1  # counted idle until it takes its first job
            thread.start()

    def _next_job(self, now: float) -> _Job | None:
        """The queued job to start now, or None (called with the lock held).

        Under the "shortest" policy, workers take queued jobs as the gate lets chunks through: the
        least estimated work first, except that a job queued longer than the gate's max_wait goes
        first (oldest first). When all `workers` run, a queued job whose estimate is under half of
        the work a running job has left starts anyway, on one of `workers` extra threads: the long
        job is preempted at its next chunk boundary, since the gate then lets the short one's chunks
        through first. Other policies take queued jobs in arrival order, `workers` at a time.
        """
        self._pending = [j for j in self._pending if j.state is JobState.QUEUED]
        if not self._pending:
            return None
        if not self._shortest_first:
            return self._pending[0] if len(self._running) < self.workers else None
        starved = [j for j in self._pending if now - j.submitted > self._max_wait]
        choice = min(starved or self._pending, key=lambda j: (j.order if starved else j.rough, j.order))
        if len(self._running) < self.workers:
            return choice
        overtakes = self._running and 2 * choice.rough < max(j.rough_left() for j in self._running)
        return choice if overtakes and len(self._running) < 2 * self.workers else None

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            with self._lock:
                idle_until = time.monotonic() + 30.0
                while True:
                    job = None if self._closed else self._next_job(time.perf_counter())
                    if job is not None:
                        break
                    left = idle_until - time.monotonic()
                    extra = len(self._threads) > self.workers
                    if self._closed or left <= 0 or (extra and not self._pending):
                        self._idle -= 1  # idle (or closing): let the thread go; a new one starts with the next job
                        self._threads = [t for t in self._threads if t is not me]
                        return
                    self._wake.wait(min(left, 0.5))  # 0.5 s: a running job's progress can make room to overtake
                self._idle -= 1
                self._pending.remove(job)
                job.state = JobState.RUNNING
                self._running.add(job)
            try:
                self._run(job)
            finally:
                with self._lock:
                    self._running.discard(job)
                    self._idle += 1
                    self._wake.notify_all()

    def _run(self, job: _Job) -> None:
        request = job.request
        options = request.options
        settings = get_settings()  # read per job: an operator's change applies without a restart
        limits = settings.limits
        options = self._chunked(options, limits)
        run = _ScheduledRun(job, self.gate, options.memory_budget_mb or limits.memory_budget_mb, self._chunk_rates)
        try:
            model = (self.load or load_model)(request.model)
            max_work = settings.max_page_work if self._max_work == "default" else self._max_work
            options = within_work(model, request.text_a, request.text_b, options, limits, max_work)
            result, cached = cached_explain(
                model, request.text_a, request.text_b, options, pos=request.pos, run=run, cache=self.cache,
                limits=limits,
            )  # fmt: skip
        except Cancelled:
            with self._lock:
                self._end(job, JobState.CANCELLED, "The computation was cancelled.")
        except PairLensError as exc:
            with self._lock:
                job.error_kind = "model" if isinstance(exc, ModelError) else "input"
                self._end(job, JobState.FAILED, str(exc))
        except Exception as exc:  # a bug: the traceback goes to the log, the caller gets a sentence
            log.exception("PairLens: job %s failed", job.id)
            with self._lock:
                job.error_kind = "internal"
                name = request.model.rstrip("/").rsplit("/", 1)[-1] or request.model
                message = (
                    f"{name} failed unexpectedly ({type(exc).__name__}). Try again or pick another model; "
                    "the details are in the server log."
                )
                self._end(job, JobState.FAILED, message)
        else:
            with self._lock:
                job.result, job.cached = result, cached
                if job.progress.planned:
                    job.progress = Progress(job.progress.planned, job.progress.planned, job.progress.seconds)
                self._end(job, JobState.DONE, None)

    def chunk_cap_mb(self) -> int | None:
        """The memory budget cap for a job starting now: chunk_mb, lowered so that a chunk takes about
        chunk_seconds at the slowest rate measured recently (None: no cap)."""
        cap = self.chunk_mb
        rates = list(self._chunk_rates)
        if self.chunk_seconds is not None and rates and max(rates) > 0:
            by_time = max(MIN_CHUNK_MB, int(self.chunk_seconds / max(rates)))
            by_time = 1 << (by_time.bit_length() - 1)  # a power of two: few distinct budgets, few cache keys
            cap = by_time if cap is None else min(cap, by_time)
        return cap

    @staticmethod
    def _end(job: _Job, state: JobState, error: str | None) -> None:
        if job.state.finished:
            return
        job.state, job.error, job.ended = state, error, time.perf_counter()
        job.finished.set()


class _ScheduledRun(Run):
    """A Run whose progress lands in its job, and whose chunks' seconds per MB of budget are recorded."""

    def __init__(self, job: _Job, gate: Gate, budget_mb: int, rates: collections.deque[float]) -> None:
        super().__init__(cancel=job.cancel, on_progress=self._progress, gate=gate)
        self.job = job
        self.budget_mb = max(int(budget_mb), 1)
        self.rates = rates

    def _progress(self, progress: Progress) -> None:
        self.job.progress = progress

    @contextlib.contextmanager
    def unit(self, units: int) -> Iterator[None]:
        with super().unit(units):
            started = time.perf_counter()
            yield
            if units > 0:  # a chunk of tangent passes (not a primal-only step)
                self.rates.append((time.perf_counter() - started) / self.budget_mb)
