"""The page's backend: computations as jobs with progress, in-process or over HTTP, and cached.

By default the page runs a JobManager in its own process (the fair scheduler, the persistent
result cache under PAIRLENS_HOME); with PAIRLENS_BACKEND_URL set it sends the same requests to
`pairlens serve` and loads no model itself. `start()` returns at once with a `Computation` (a
result already known, or a job); `wait()` polls the jobs, reporting progress through a callback
that draws with `st.` (so a rerun or a closed session interrupts it there) and, when
interrupted, lets go of its jobs: a job no session watches is cancelled after
`ABANDON_GRACE` seconds, unless a rerun with the same inputs (a view change) takes it up again,
or a connected session's page still shows it computing (`keep_computing`: a hidden tab's
throttled timers can hold its watcher back for a minute; closing the tab still cancels it).
Sessions asking for the same computation at once share one job. A small in-memory cache of
finished outcomes sits in front (PAIRLENS_RESULT_CACHE entries).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import streamlit as st
from streamlit import runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

from attribution.core.cost import CostEstimate, estimate_cost, measured_rate, result_units
from attribution.core.execution import Cancelled
from attribution.core.options import ExplainOptions
from attribution.core.work import estimate_work
from attribution.errors import InputError, ModelError, PairLensError
from attribution.models import LoadedModel, ModelInfo, list_models, load_model
from attribution.result import Attribution, linguistics
from attribution.service.scheduler import (
    Busy,
    ExplainRequest,
    JobFailed,
    JobManager,
    JobState,
    JobStatus,
    NotFinished,
    UnknownJob,
)
from attribution.settings import get_settings

ASSETS = Path(__file__).resolve().parent.parent / "assets"
POLL_SECONDS = 0.25  # how often a waiting page asks for progress
FIRST_POLL_SECONDS = 0.02  # the first wait; doubled up to POLL_SECONDS
ABANDON_GRACE = 3.0  # seconds an unwatched job may wait for a rerun to take it up before it is cancelled
# (the page lets go of a slow job between the runs of the column fragment that watches it: see pages/explain.py)


@dataclass(frozen=True)
class Failure:
    """A computation refused with a user-facing message."""

    message: str


Outcome = Attribution | Failure


# ----------------------------------------------------------------------------- backends


class Backend(Protocol):
    """What the page needs of a backend (in-process or HTTP)."""

    def model_layers(self, name: str) -> tuple[int, int]:
        """(number of layers, default layer) of a model; ModelError if it cannot be used."""
        ...

    def model_device(self, name: str) -> str | None:
        """Where the backend computes this model ("cpu", "cuda:0", ...), None when it does not say."""
        ...

    def submit(self, request: ExplainRequest) -> str: ...

    def status(self, job_id: str) -> JobStatus: ...

    def cancel(self, job_id: str) -> None: ...

    def result(self, job_id: str) -> Attribution:
        """The finished job's result; JobFailed, Cancelled or NotFinished otherwise."""
        ...


class LocalBackend:
    """A JobManager in this process; models load through `get_model` (once per process)."""

    def __init__(self) -> None:
        self.jobs = JobManager(load=lambda name: get_model(name))

    def model_layers(self, name: str) -> tuple[int, int]:
        model = get_model(name)
        return int(model.num_layers), int(model.default_layer)

    def model_device(self, name: str) -> str | None:
        return str(getattr(get_model(name), "device", "cpu"))

    def submit(self, request: ExplainRequest) -> str:
        return self.jobs.submit(request)

    def status(self, job_id: str) -> JobStatus:
        return self.jobs.status(job_id)

    def cancel(self, job_id: str) -> None:
        self.jobs.cancel(job_id)

    def result(self, job_id: str) -> Attribution:
        return self.jobs.result(job_id)


class BackendUnavailable(PairLensError):
    """The HTTP backend cannot be reached."""


class HttpBackend:
    """`pairlens serve` at `url` (PAIRLENS_BACKEND_URL), through httpx."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        import httpx

        self.url = url.rstrip("/")
        self._httpx = httpx
        self.client = httpx.Client(base_url=self.url, timeout=httpx.Timeout(timeout, connect=5.0))

    def model_layers(self, name: str) -> tuple[int, int]:
        facts = self._call("GET", f"/models/{name}")
        return int(facts["num_layers"]), int(facts["default_layer"])

    def model_device(self, name: str) -> str | None:
        device = self._call("GET", f"/models/{name}").get("device")
        return str(device) if device else None

    def submit(self, request: ExplainRequest) -> str:
        body = {
            "text_a": request.text_a,
            "text_b": request.text_b,
            "model": request.model,
            "options": request.options.to_dict(),
            "pos": request.pos,
        }
        return str(self._call("POST", "/jobs", json=body)["id"])

    def status(self, job_id: str) -> JobStatus:
        return JobStatus.from_dict(self._call("GET", f"/jobs/{job_id}"))

    def cancel(self, job_id: str) -> None:
        with contextlib.suppress(PairLensError):  # gone already
            self._call("DELETE", f"/jobs/{job_id}")

    def result(self, job_id: str) -> Attribution:
        return Attribution.from_dict(self._call("GET", f"/jobs/{job_id}/result"))

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.client.request(method, path, **kwargs)
        except self._httpx.HTTPError as exc:
            raise BackendUnavailable(
                f"The PairLens backend at {self.url} cannot be reached ({type(exc).__name__}): start it with "
                "`pairlens serve`, or unset PAIRLENS_BACKEND_URL to compute inside the page."
            ) from None
        try:
            data = response.json()
        except ValueError:
            data = {"detail": response.text[:200]}
        if response.status_code < 400:
            return data if isinstance(data, dict) else {"items": data}
        detail = str(data.get("detail", "")) if isinstance(data, dict) else str(data)
        code = response.status_code
        if code == 404 and detail.startswith("No job"):
            raise UnknownJob(detail)
        if code == 404:
            raise ModelError(detail)
        if code == 409:
            raise NotFinished(detail)
        if code == 410:
            raise Cancelled(detail)
        if code == 503:
            raise Busy(detail)
        if code >= 500:
            raise JobFailed(detail or f"The backend failed (HTTP {code}).", "internal")
        raise InputError(detail or f"The backend refused the request (HTTP {code}).")


@st.cache_resource(show_spinner=False)
def get_backend() -> Backend:
    """The HTTP backend when PAIRLENS_BACKEND_URL is set, else an in-process one (once per process)."""
    url = get_settings().backend_url
    return HttpBackend(url) if url else LocalBackend()


def is_remote() -> bool:
    """True when the page computes through a `pairlens serve` backend (PAIRLENS_BACKEND_URL)."""
    return isinstance(get_backend(), HttpBackend)


# ----------------------------------------------------------------------------- computations


@dataclass
class Computation:
    """One model's computation for the page: an outcome already, or a job to wait for."""

    key: Hashable
    model: str
    options: ExplainOptions | None = None
    job_id: str | None = None
    outcome: Outcome | None = None
    status: JobStatus | None = None
    watching: bool = False  # holds one of its job's watchers (Registry.attach) until released

    @property
    def pending(self) -> bool:
        return self.outcome is None


@dataclass
class _Watched:
    job_id: str
    watchers: int = 0
    timer: threading.Timer | None = None


@dataclass
class Registry:
    """Process-wide: finished outcomes (bounded, least recently used out) and jobs being watched."""

    max_outcomes: int
    outcomes: OrderedDict[Hashable, Outcome] = field(default_factory=OrderedDict)
    watched: dict[Hashable, _Watched] = field(default_factory=dict)
    shown: dict[str, frozenset[Hashable]] = field(default_factory=dict)  # session id -> keys its page shows computing
    lock: threading.Lock = field(default_factory=threading.Lock)

    def remember(self, key: Hashable, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes[key] = outcome
            self.outcomes.move_to_end(key)
            while len(self.outcomes) > self.max_outcomes:
                self.outcomes.popitem(last=False)

    def recall(self, key: Hashable) -> Outcome | None:
        with self.lock:
            outcome = self.outcomes.get(key)
            if outcome is not None:
                self.outcomes.move_to_end(key)
            return outcome

    def attach(self, key: Hashable, submit: Callable[[], str]) -> str:
        """The job computing `key` (shared with other sessions), submitting one if there is none."""
        with self.lock:
            entry = self.watched.get(key)
            if entry is None:
                entry = self.watched[key] = _Watched(submit())
            if entry.timer is not None:
                entry.timer.cancel()
                entry.timer = None
            entry.watchers += 1
            return entry.job_id

    def show_computing(self, session: str, keys: Iterable[Hashable]) -> None:
        """The computations a session's page shows running now (replacing what its last run showed)."""
        with self.lock:
            shown = frozenset(keys)
            if shown:
                self.shown[session] = shown
            else:
                self.shown.pop(session, None)

    def detach(
        self,
        key: Hashable,
        job_id: str,
        finished: bool,
        cancel: Callable[[str], None],
        alive: Callable[[str], bool],
    ) -> None:
        """Stop watching; the last watcher of an unfinished job leaves it ABANDON_GRACE seconds to be taken up.
        Then it is cancelled unless a session that `alive` says is connected still shows it computing."""
        with self.lock:
            entry = self.watched.get(key)
            if entry is None or entry.job_id != job_id:
                return
            if entry.watchers <= 0:
                return  # not watched: nothing to let go (each watcher is released once)
            entry.watchers -= 1
            if finished:
                if entry.watchers <= 0:
                    del self.watched[key]
                return
            if entry.watchers <= 0:
                self._arm(entry, key, cancel, alive)

    def _arm(self, entry: _Watched, key: Hashable, cancel: Callable[[str], None], alive: Callable[[str], bool]) -> None:
        """(Re)start an unwatched job's grace timer; the caller holds the lock."""
        if entry.timer is not None:
            entry.timer.cancel()
        entry.timer = threading.Timer(ABANDON_GRACE, self._expire, (key, entry.job_id, cancel, alive))
        entry.timer.daemon = True
        entry.timer.start()

    def _expire(self, key: Hashable, job_id: str, cancel: Callable[[str], None], alive: Callable[[str], bool]) -> None:
        with self.lock:
            entry = self.watched.get(key)
            if entry is None or entry.job_id != job_id or entry.watchers > 0:
                return
            for session in [s for s in self.shown if not alive(s)]:
                del self.shown[session]  # closed: what its page showed is wanted no more
            if any(key in keys for keys in self.shown.values()):
                self._arm(entry, key, cancel, alive)  # its watcher is late, not gone
                return
            del self.watched[key]
        with contextlib.suppress(PairLensError):
            cancel(job_id)

    def is_watched(self, key: Hashable) -> bool:
        with self.lock:
            return key in self.watched

    def clear(self) -> None:
        with self.lock:
            self.outcomes.clear()


@st.cache_resource(show_spinner=False)
def registry() -> Registry:
    return Registry(max_outcomes=get_settings().result_cache)


def computation_key(model: str, text_a: str, text_b: str, options: ExplainOptions) -> Hashable:
    return (model, text_a, text_b, options)


def is_known(key: Hashable) -> bool:
    """True when the outcome of this computation is already at hand (no cost to announce)."""
    return registry().recall(key) is not None


def is_running(key: Hashable) -> bool:
    """True while a job computes this key for some session: a map that started is never asked about again
    (a changed estimate would otherwise stop watching it, and the job would be cancelled)."""
    return registry().is_watched(key)


def start(model: str, text_a: str, text_b: str, options: ExplainOptions) -> Computation:
    """Begin computing (or find) the POS-annotated attribution of a pair with one model."""
    key = computation_key(model, text_a, text_b, options)
    known = registry().recall(key)
    if known is not None:
        return Computation(key, model, options, outcome=known)
    backend = get_backend()
    request = ExplainRequest(model=model, text_a=text_a, text_b=text_b, options=options, pos=True)
    try:
        job_id = registry().attach(key, lambda: backend.submit(request))
    except PairLensError as exc:
        outcome = Failure(str(exc))
        if not isinstance(exc, (Busy, BackendUnavailable)):
            registry().remember(key, outcome)
        return Computation(key, model, options, outcome=outcome)
    return Computation(key, model, options, job_id=job_id, watching=True)


def _release(backend: Backend, computation: Computation, finished: bool) -> None:
    """Let go of the computation's watcher, once (a second wait() on the same computation must not count a
    release twice: the job's count fell below its watchers and an abandoned-job timer cancelled a watched job)."""
    if computation.watching and computation.job_id is not None:
        computation.watching = False
        registry().detach(computation.key, computation.job_id, finished, backend.cancel, session_connected)


def session_connected(session: str) -> bool:
    """Whether a browser session (a tab) is still connected to this server. Only a True from the runtime
    counts: Streamlit's AppTest stands a mock runtime in, whose answers are mocks, and it has no tabs."""
    return runtime.exists() and runtime.get_instance().is_active_session(session) is True


def keep_computing(keys: Iterable[Hashable]) -> None:
    """Tell the registry which computations this session's page shows running (none: an empty iterable).
    While the session stays connected their jobs outlive a late watcher; a page run that no longer shows
    one (new texts, another page of the app) lets it be cancelled as before."""
    context = get_script_run_ctx()
    if context is not None:
        registry().show_computing(context.session_id, keys)


def wait(
    computations: list[Computation],
    show: Callable[[Computation], None],
    budget: float | None = None,
    first: bool = False,
) -> None:
    """Poll until every computation has an outcome, calling `show` after each poll of a pending one.

    budget: return after about this many seconds even if some are pending (each is polled at least
    once); those are let go as below, and a later `start()` with the same inputs takes them up again.
    first: return as soon as one has an outcome.

    `show` draws the progress with `st.`; when Streamlit interrupts it (a rerun, a closed
    session) or anything fails, the jobs still running are let go (see Registry.detach).
    """
    backend = get_backend()
    pause = FIRST_POLL_SECONDS  # short results show at once; long ones are polled every POLL_SECONDS
    deadline = None if budget is None else time.monotonic() + budget
    for computation in computations:  # waited for again after an earlier wait let go of it: take it up again
        if computation.pending and computation.job_id is not None and not computation.watching:
            registry().attach(computation.key, partial(str, computation.job_id))  # the job it already has
            computation.watching = True
    try:
        while True:
            pending = [c for c in computations if c.pending]
            if not pending:
                return
            for computation in pending:
                _poll(backend, computation)
                show(computation)
            if first and any(not c.pending for c in computations):
                return
            if any(c.pending for c in computations):
                if deadline is not None and time.monotonic() + pause > deadline:
                    return
                time.sleep(pause)
                pause = min(POLL_SECONDS, pause * 2)
    finally:
        for computation in computations:
            if computation.pending:
                _release(backend, computation, False)


def explain_cached(
    model: str, text_a: str, text_b: str, options: ExplainOptions, show: Callable[[Computation], None] | None = None
) -> Outcome:
    """One computation started and waited for (the page's extra views: layer sweep, what-if edits)."""
    computation = start(model, text_a, text_b, options)
    wait([computation], show or (lambda _: None))
    assert computation.outcome is not None
    return computation.outcome


def _poll(backend: Backend, computation: Computation) -> None:
    assert computation.job_id is not None
    try:
        status = backend.status(computation.job_id)
    except UnknownJob:
        _finish(backend, computation, Failure("The backend lost this computation (restarted?): press Explain again."))
        return
    except PairLensError as exc:
        _finish(backend, computation, Failure(str(exc)))
        return
    computation.status = status
    if not status.finished:
        return
    try:
        outcome: Outcome = backend.result(computation.job_id)
    except JobFailed as exc:
        outcome = Failure(str(exc))
        if exc.kind != "internal":
            registry().remember(computation.key, outcome)
    except PairLensError as exc:  # cancelled by someone else, the backend went away
        outcome = Failure(str(exc))
    else:
        registry().remember(computation.key, outcome)
    _finish(backend, computation, outcome)


def _finish(backend: Backend, computation: Computation, outcome: Outcome) -> None:
    computation.outcome = outcome
    if isinstance(outcome, Attribution):
        record_rate(computation.model, outcome)
    _release(backend, computation, True)


def progress_text(model: str, status: JobStatus | None) -> tuple[float, str]:
    """(fraction, caption) for a progress bar: done %, and the time left once it can be estimated."""
    if status is None or status.state is JobState.QUEUED:
        return 0.0, f"{model}: waiting for a free worker…"
    if status.planned == 0:
        return 0.0, f"{model}: preparing…"
    text = f"{model}: {100 * status.fraction:.0f} % of {status.planned:,} tangent passes"
    if status.seconds_left is not None and not status.finished:
        text += f" · about {_duration(status.seconds_left)} left"
    return status.fraction, text


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "a second"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


# ----------------------------------------------------------------------------- models, assets


@st.cache_resource(show_spinner=False)
def get_model(name: str) -> LoadedModel:
    """The loaded model (once per server process)."""
    return load_model(name)


@st.cache_data(ttl=600, show_spinner=False)
def model_layers(name: str) -> tuple[int, int]:
    """(number of layers, default layer) from the backend (loads the model there once)."""
    return get_backend().model_layers(name)


def model_device(name: str) -> str | None:
    """Where the backend computes the model (PAIRLENS_DEVICE there), None when it does not say."""
    return get_backend().model_device(name)


@st.cache_resource(show_spinner=False)
def tagger_status() -> tuple[str | None, str | None]:
    """Load the spaCy tagger once; (model name or None, note saying what to install)."""
    return linguistics.tagger_status()


@st.cache_data(ttl=60, show_spinner=False)
def available_models() -> list[ModelInfo]:
    """list_models(), refreshed every minute (so a model installed meanwhile shows up)."""
    return list_models()


@st.cache_data(show_spinner=False)
def load_examples() -> list[dict[str, str]]:
    """The example pairs of assets/examples.json."""
    data = json.loads((ASSETS / "examples.json").read_text(encoding="utf-8"))
    return list(data["pairs"])


@st.cache_data(show_spinner=False)
def read_asset(name: str) -> str:
    """A text asset (CSS, SVG) by file name."""
    return (ASSETS / name).read_text(encoding="utf-8")


def capped_by_page_work(result: Attribution) -> bool:
    """steps=auto did not converge under a cap below PAIRLENS_MAX_STEPS: the operator's work cap stopped it
    (the job lowered the result's step_cap to what PAIRLENS_MAX_PAGE_WORK allows)."""
    cap = result.step_cap
    return result.tolerance is not None and not result.converged and cap is not None and cap < get_settings().max_steps


# ----------------------------------------------------------------------------- cost before computing

RATE_SAMPLES = 20  # recent maps per model whose work-units-per-second this server remembers
RATE_MIN_UNITS = 10_000  # a map with less work measures mostly fixed overhead (about 700 units/s for 11 tokens)
DEFAULT_RATE = 10_000.0  # work units/s of all-MiniLM-L6-v2 on a 60-token pair, measured on the 2-core dev machine
# (commit 6d79686): the estimate until this server has computed a map large enough to measure its own rate.
_rates: dict[str, list[tuple[int, float]]] = {}
_rates_lock = threading.Lock()


def record_rate(name: str, result: Attribution) -> None:
    """Remember how fast this server computed `result` (work units per second of compute); nothing with a
    remote backend (it computed elsewhere, and the model is not loaded here)."""
    if is_remote():
        return
    try:
        dim = int(get_model(name).embedding_dim)
    except Exception:
        return
    units = result_units(
        (len(result.a.tokens), len(result.b.tokens)), result.num_layers, result.layer, dim, result.steps
    )
    with _rates_lock:
        samples = _rates.setdefault(name, [])
        samples.append((units, float(result.seconds)))
        del samples[:-RATE_SAMPLES]


def rate_of(name: str) -> float | None:
    """The fastest work units per second this server reached lately on a map of at least RATE_MIN_UNITS,
    for the model, else for any model; None before it computed one."""
    with _rates_lock:
        own = [s for s in _rates.get(name, []) if s[0] >= RATE_MIN_UNITS]
        every = [s for samples in _rates.values() for s in samples if s[0] >= RATE_MIN_UNITS]
    return measured_rate(own) or measured_rate(every)


def cost_of(name: str, text_a: str, text_b: str, options: ExplainOptions) -> CostEstimate | None:
    """How long this request should take here (None when it cannot be estimated: the engine then says why,
    or with a remote backend, whose models this process does not load)."""
    if is_remote():
        return None
    try:
        model = get_model(name)
        estimate = estimate_work(model, text_a, text_b, options, get_settings().limits)
    except Exception:  # a model that cannot be loaded or tokenized: the computation itself says why
        return None
    # Never a calibration run here: it would hold up a new server's first map by seconds.
    return estimate_cost(estimate, rate_of(name) or DEFAULT_RATE, auto=options.fixed_steps is None)
