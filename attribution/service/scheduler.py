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

import enum
import itertools
import logging
import queue
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..core.execution import Cancelled, Gate, Progress, Run
from ..core.options import ExplainOptions, Limits
from ..core.tokens import check_text
from ..core.work import estimate_work, limit_work
from ..errors import InputError, ModelError, PairLensError
from ..models import load_model
from ..models.registry import BUILTIN_MODELS, resolve_source
from ..result import Attribution
from ..settings import DEFAULT_MODEL, get_settings
from .cache import CacheChoice, ResultCache, cached_explain, default_cache, lookup_unloaded

log = logging.getLogger(__name__)

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
    always; folders and hub ids only with PAIRLENS_ALLOW_CUSTOM_MODELS=1. ModelError otherwise."""
    if not isinstance(name, str) or not name.strip():
        raise ModelError(f"model must be a model name such as {DEFAULT_MODEL!r}.")
    name = name.strip()
    settings = get_settings()
    allow = settings.allow_custom_models if allow_custom is None else allow_custom
    display, source = resolve_source(name)  # ModelError for what cannot be a model
    if display in BUILTIN_MODELS or allow:
        return name
    try:
        inside = Path(source).resolve().parent == settings.models_dir.resolve()
    except OSError:
        inside = False
    if inside:
        return name
    raise ModelError(
        f"Model {name[:80]!r} is not available here: use a built-in model ({', '.join(BUILTIN_MODELS)}) or a "
        "fine-tuned model listed by /models (the operator can allow others with PAIRLENS_ALLOW_CUSTOM_MODELS=1)."
    )


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
        self._cache_choice = cache
        self.keep_seconds = keep_seconds
        self.load = load
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, _Job] = OrderedDict()
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
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
            self._jobs[job.id] = job
            self._queue.put(job)  # under the lock: an idle worker cannot leave between the two
            self._start_workers()
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
        for _ in threads:
            self._queue.put(None)
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
        """The options a job runs with: its memory budget at most chunk_mb (the scheduler's fairness unit)."""
        if self.chunk_mb is not None and (options.memory_budget_mb or limits.memory_budget_mb) > self.chunk_mb:
            return options.replace(memory_budget_mb=self.chunk_mb)
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

    def _start_workers(self) -> None:
        self._threads = [t for t in self._threads if t.is_alive()]
        busy = sum(1 for j in self._jobs.values() if not j.state.finished)
        while len(self._threads) < min(self.workers, busy):
            thread = threading.Thread(target=self._work, name=f"pairlens-worker-{len(self._threads)}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _work(self) -> None:
        while True:
            try:
                job = self._queue.get(timeout=30.0)
            except queue.Empty:
                with self._lock:  # idle: let the thread go (a new one starts with the next job)
                    if self._queue.empty():
                        self._threads = [t for t in self._threads if t is not threading.current_thread()]
                        return
                continue
            if job is None:
                return
            self._run(job)

    def _run(self, job: _Job) -> None:
        with self._lock:
            if job.state is not JobState.QUEUED:
                return  # cancelled while queued
            job.state = JobState.RUNNING
        request = job.request
        options = request.options
        settings = get_settings()  # read per job: an operator's change applies without a restart
        limits = settings.limits
        options = self._chunked(options, limits)
        run = _ScheduledRun(job, self.gate)
        try:
            model = (self.load or load_model)(request.model)
            max_work = settings.max_page_work if self._max_work == "default" else self._max_work
            if max_work is not None:
                estimate = estimate_work(model, request.text_a, request.text_b, options, limits)
                options = limit_work(estimate, options, max_work)
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

    @staticmethod
    def _end(job: _Job, state: JobState, error: str | None) -> None:
        if job.state.finished:
            return
        job.state, job.error, job.ended = state, error, time.perf_counter()
        job.finished.set()


class _ScheduledRun(Run):
    """A Run whose progress lands in its job."""

    def __init__(self, job: _Job, gate: Gate) -> None:
        super().__init__(cancel=job.cancel, on_progress=self._progress, gate=gate)
        self.job = job

    def _progress(self, progress: Progress) -> None:
        self.job.progress = progress
