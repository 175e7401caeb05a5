"""The Ray backend of the corpus analysis: `pairlens analyze --ray [ADDRESS]`, the pairs computed by Ray actors.

    pairlens analyze --data FILE --out DIR --ray [ADDRESS] [--workers N] [--gpus-per-worker G]
        [--batch-size B] [--threads T] [every other analyze option]

Without ADDRESS a local Ray starts (N x T logical CPUs, no dashboard, its logs in a temporary
folder removed at the end, shut down at the end); with one ("HOST:PORT" of `ray start --head`,
"ray://HOST:10001" for Ray Client, or "auto") the run joins that cluster, whose every node needs
PairLens, its requirements and the model installed (or the model folder on shared storage).
Ray is started or joined, and its resources checked, before the --out folder is touched: Ray
missing, an address nothing answers at, or more GPUs (or CPUs) asked than the cluster has is an
InputError (one line, exit 2, nothing written).

Each actor (`PairWorker`, T torch threads, G GPUs) loads the model once. The driver sorts the
pairs by length (longest first) so that a batch holds pairs of similar shapes, sends batches of
B pairs with at most IN_FLIGHT_PER_WORKER batches per actor in flight, and appends each record
as its batch comes back (`ray.wait`) through corpus.store.RecordWriter: the driver is the only writer
and writes each key once, so run.json, the settings check, resume, the lock and the summary are
those of the serial run (records are in completion order, not file order). A worker that dies
(process killed, out of memory, node lost) is replaced by a new actor and its batches are sent
again as single pairs; a pair on which MAX_ATTEMPTS workers died is recorded as refused. The
convergence pass runs on the actors too, one (pair, layer) job per batch.

Ray is an optional extra (`pip install "pairlens[ray]"`), imported only here and only when used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import shutil
import socket
import tempfile
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ...core.options import ExplainOptions, Limits, RunOptions
from ...devices import resolve_device
from ...errors import InputError, ModelError, PairLensError
from ...models import LoadedModel, load_model
from ...models.registry import resolve_source
from ..data import Pair
from .backend import (
    Outcome,
    batch_outcomes,
    check_threads,
    convergence_outcome,
    convergence_record,
    pair_record,
)
from .settings import RunSettings

RAY_REQUIREMENT = "ray==2.60.0"  # the pin of the `ray` extra in pyproject.toml and requirements-test.txt
DEFAULT_BATCH_SIZE = 8
MAX_BATCH_SIZE = 10_000
IN_FLIGHT_PER_WORKER = 2  # batches queued on an actor: one computing, one waiting (no idle gap between them)
MAX_ATTEMPTS = 3  # workers that may die on one pair before it is recorded as refused
CONNECT_TIMEOUT_S = 5.0  # a TCP connection to ADDRESS before ray.init (which waits minutes for a dead address)
LOCAL_OBJECT_STORE_BYTES = 128 * 2**20  # records are small; Ray's default takes 30 % of the RAM
log = logging.getLogger(__name__)

BatchFn = Callable[[LoadedModel, Sequence[Pair], RunOptions], list[Outcome]]
Job = Any  # (Pair, key) for attributions, (Pair, key, layer) for convergence


def _explain_batch(model: LoadedModel, pairs: Sequence[Pair], options: RunOptions) -> list[Outcome]:
    """Each pair's Attribution (with POS tags), or the message of the InputError that refused it, in order.

    The one place where a worker computes attributions: one explain_many call per batch (texts of
    equal length share the first round of nodes; each result equals explain()'s).
    """
    return batch_outcomes(model, pairs, options)


def worker_options(options: RunOptions, device: str) -> RunOptions:
    """The options a worker computes with: its device set where the options have a `device` field."""
    if device != "cpu" and "device" in {f.name for f in dataclasses.fields(options)}:
        return options.replace(device=resolve_device(device))
    return options


# ----------------------------------------------------------------------------- what to run


@dataclass(frozen=True)
class RayOptions:
    """How to run on Ray. address None: start a local Ray; else join the cluster there.

    workers: actors, one loaded model each (None: local cores // threads, or as many as the
    cluster's CPUs (GPUs with gpus_per_worker) hold). gpus_per_worker: GPUs per actor, a fraction
    packs several actors on one GPU (0: CPU actors). batch_size: pairs per batch sent to an actor.
    threads: torch threads per actor (Ray reserves as many CPUs). batch_fn: what a worker runs on a
    batch (None: _explain_batch); tests pass one that fails on purpose.
    """

    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float = 0.0
    batch_size: int = DEFAULT_BATCH_SIZE
    threads: int = 1
    batch_fn: BatchFn | None = None

    def __post_init__(self) -> None:
        if self.address is not None and not (isinstance(self.address, str) and self.address.strip()):
            raise InputError("--ray ADDRESS must be HOST:PORT, ray://HOST:PORT or auto (or leave it out: a local Ray).")
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 1):
            raise InputError(f"--workers must be a whole number of at least 1 (got {self.workers}).")
        gpus = self.gpus_per_worker
        if not isinstance(gpus, int | float) or not math.isfinite(gpus) or gpus < 0:
            raise InputError(f"--gpus-per-worker must be 0 or a positive number such as 1 or 0.5 (got {gpus}).")
        if not isinstance(self.batch_size, int) or not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise InputError(f"--batch-size must be a whole number from 1 to {MAX_BATCH_SIZE} (got {self.batch_size}).")
        if not isinstance(self.threads, int) or self.threads < 1:
            raise InputError(f"--threads must be at least 1 (got {self.threads}).")

    @classmethod
    def create(
        cls,
        address: str | None = None,
        workers: int | None = None,
        gpus_per_worker: float | None = None,
        batch_size: int | None = None,
        threads: int = 1,
    ) -> RayOptions:
        """RayOptions from CLI values, None meaning the default."""
        return cls(
            address=address,
            workers=workers,
            gpus_per_worker=0.0 if gpus_per_worker is None else gpus_per_worker,
            batch_size=DEFAULT_BATCH_SIZE if batch_size is None else batch_size,
            threads=threads,
        )


def import_ray() -> Any:
    """The ray module, or an InputError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError(
            f"--ray needs Ray, which is not installed: pip install 'pairlens[ray]' (or {RAY_REQUIREMENT})."
        ) from None
    return ray


def local_init_kwargs(num_cpus: int, temp_dir: str) -> dict[str, Any]:
    """ray.init arguments of a small local Ray: no dashboard, logs in temp_dir, workers import this PairLens."""
    package_root = str(Path(__file__).resolve().parents[2])  # the folder holding attribution/
    path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
    return {
        "num_cpus": num_cpus,
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.ERROR,
        "object_store_memory": LOCAL_OBJECT_STORE_BYTES,
        "_temp_dir": temp_dir,
        "runtime_env": {"env_vars": {"PYTHONPATH": path}},
    }


def check_reachable(address: str) -> None:
    """InputError unless something accepts a TCP connection at ADDRESS ("auto" is left to Ray)."""
    if address == "auto":
        return
    text = address.removeprefix("ray://")
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(
            f"--ray '{address[:80]}' is not a Ray address: give HOST:PORT (the head of `ray start --head`, "
            "port 6379 by default), ray://HOST:10001 for Ray Client, or auto."
        )
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InputError(
            f"Cannot reach a Ray cluster at '{address[:80]}' ({reason}): start one with `ray start --head` there, "
            "check the address and port, or leave ADDRESS out to start a local Ray."
        ) from None


def model_source(model: LoadedModel | str) -> str:
    """What each worker loads: a folder that exists here as an absolute path (workers may run in
    another folder), else the name or hub id as given; for a loaded model, its name when that
    name loads the same folder (a built-in model), else its folder."""
    if isinstance(model, LoadedModel):
        with contextlib.suppress(PairLensError):
            if resolve_source(model.name)[1] == model.source:
                return model.name
        return model.source
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model


# ----------------------------------------------------------------------------- the cluster


@dataclass
class Cluster:
    """A connected Ray with the resources checked: `backend()` starts the actors."""

    ray: Any
    spec: RayOptions
    model: str
    workers: int
    where: str  # "local Ray", "Ray cluster at HOST:PORT" or "Ray session of this process"
    started: float  # perf_counter when connecting began

    @contextlib.contextmanager
    def backend(self, limits: Limits | None = None) -> Iterator[RayBackend]:
        """The actors for one run, killed at the end however it ends."""
        backend = RayBackend(self, limits)
        try:
            yield backend
        finally:
            backend.close()


@contextlib.contextmanager
def connect(spec: RayOptions, model: LoadedModel | str) -> Iterator[Cluster]:
    """Start a local Ray or join spec.address, check its resources, and leave it as found at the end.

    A Ray this process already runs (ray.init called before, e.g. by a test or a notebook) is used as
    it is. Every failure is an InputError raised before anything of the run is written.
    """
    ray = import_ray()
    started = time.perf_counter()
    temp_dir: str | None = None
    connected_here = False
    try:
        if ray.is_initialized():
            where = "Ray session of this process"
        elif spec.address is None:
            workers = spec.workers or max(1, _local_cores() // spec.threads)
            temp_dir = tempfile.mkdtemp(prefix="pairlens-ray-")
            ray.init(**local_init_kwargs(workers * spec.threads, temp_dir))
            connected_here = True
            where = "local Ray"
        else:
            check_reachable(spec.address)
            try:
                ray.init(address=spec.address, log_to_driver=False, logging_level=logging.ERROR)
            except Exception as exc:  # ConnectionError, RuntimeError, an authentication failure, ...
                raise InputError(
                    f"Cannot join the Ray cluster at '{spec.address[:80]}' ({_first_line(exc)}): check the address, "
                    "that its Ray version is the one installed here, and its authentication token."
                ) from None
            connected_here = True
            where = f"Ray cluster at {spec.address[:80]}"
        workers = check_resources(ray.cluster_resources(), spec, where)
        yield Cluster(ray, spec, model_source(model), workers, where, started)
    finally:
        if connected_here:
            ray.shutdown()
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)


def check_resources(total: dict[str, float], spec: RayOptions, where: str) -> int:
    """The number of workers, or an InputError when the cluster lacks the CPUs or GPUs they ask for."""
    cpus, gpus = float(total.get("CPU", 0.0)), float(total.get("GPU", 0.0))
    if spec.gpus_per_worker > 0:
        workers = spec.workers or int(gpus / spec.gpus_per_worker + 1e-9)
        asked = max(workers, 1) * spec.gpus_per_worker
        if workers < 1 or asked > gpus + 1e-9:
            raise InputError(
                f"{max(workers, 1)} worker(s) x --gpus-per-worker {spec.gpus_per_worker:g} ask for {asked:g} GPUs, but "
                f"the {where} has {gpus:g}: lower --workers or --gpus-per-worker, or join a cluster with GPU nodes."
            )
    else:
        workers = spec.workers or int(cpus // spec.threads)
    asked = max(workers, 1) * spec.threads
    if workers < 1 or asked > cpus + 1e-9:
        raise InputError(
            f"{max(workers, 1)} worker(s) x {spec.threads} thread(s) ask for {asked:g} CPUs, but the {where} has "
            f"{cpus:g}: lower --workers or --threads."
        )
    return workers


def _local_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _first_line(exc: BaseException, limit: int = 200) -> str:
    """The first non-empty line of an exception's message, cut short (Ray's messages run to pages)."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()[:limit]
    return type(exc).__name__


# ----------------------------------------------------------------------------- the actors


class PairWorker:
    """One Ray actor: the model loaded once, batches of pairs (or convergence jobs) computed on request.

    A model that cannot be loaded is reported by `describe` (the driver raises it), not by a crash.
    """

    def __init__(self, model: str, threads: int, gpu: bool, batch_fn: BatchFn | None) -> None:
        torch.set_num_threads(check_threads(threads))
        self.batch_fn = batch_fn
        self.device = "cuda" if gpu else "cpu"
        self.model: LoadedModel | None = None
        self.error: str | None = None
        try:
            self.model = load_model(model, device=self.device)
        except PairLensError as exc:
            self.error = str(exc)

    def describe(self, options: ExplainOptions, limits: Limits | None = None) -> dict[str, Any]:
        """Facts of this worker: {"name", "num_layers", "options" (resolved under the driver's limits)} or
        {"error"} / {"input_error"}."""
        facts: dict[str, Any] = {
            "pid": os.getpid(),
            "node": socket.gethostname(),
            "device": self.device,
            "threads": torch.get_num_threads(),
        }
        if self.model is None:
            return {**facts, "error": self.error}
        try:
            resolved = options.for_model(self.model, limits)
        except InputError as exc:
            return {**facts, "input_error": str(exc)}
        if worker_options(resolved, self.device) is resolved and self.device != "cpu":
            facts["note"] = "this PairLens computes on the CPU: the GPUs reserved for the workers stay idle"
        return {**facts, "name": self.model.name, "num_layers": self.model.num_layers, "options": resolved}

    def attributions(self, jobs: Sequence[tuple[Pair, str]], options: RunOptions) -> list[tuple[str, Any]]:
        """(key, attributions.jsonl record) for each (pair, key), in order."""
        assert self.model is not None, self.error
        compute = self.batch_fn or _explain_batch
        outcomes = compute(self.model, [pair for pair, _ in jobs], worker_options(options, self.device))
        return [(key, pair_record(pair, key, outcome)) for (pair, key), outcome in zip(jobs, outcomes, strict=True)]

    def convergence(
        self, jobs: Sequence[tuple[Pair, str, int]], settings: RunSettings
    ) -> list[tuple[tuple[str, int], Any]]:
        """((key, layer), convergence.jsonl record) for each (pair, key, layer), in order."""
        assert self.model is not None, self.error
        return [
            ((key, layer), convergence_record(pair, key, layer, convergence_outcome(self.model, pair, settings, layer)))
            for pair, key, layer in jobs
        ]


@dataclass
class _Batch:
    jobs: list[Job]
    attempts: int = 0  # workers that died while it was in flight


class RayBackend:
    """corpus.Backend on Ray actors: batches out, records back as they finish, dead workers replaced.

    Its generators yield a key more than once only if Ray returned a batch twice; corpus.RecordWriter
    drops repeats. Counters: deaths (workers lost), resent (batches sent again).
    """

    def __init__(self, cluster: Cluster, limits: Limits | None = None) -> None:
        self.cluster = cluster
        self.limits = limits or Limits()  # the driver's: every worker resolves the options under them
        self.ray = cluster.ray
        spec = cluster.spec
        self.exceptions = self.ray.exceptions
        self._lost_errors = (
            self.exceptions.RayActorError,
            self.exceptions.WorkerCrashedError,
            self.exceptions.NodeDiedError,
            self.exceptions.ObjectLostError,
            self.exceptions.OutOfMemoryError,
        )
        self._actor_class = self.ray.remote(
            num_cpus=spec.threads, num_gpus=spec.gpus_per_worker, max_restarts=0, max_task_retries=0
        )(PairWorker)
        self.slots: list[Any] = [self._spawn() for _ in range(cluster.workers)]
        self.respawns_left = 2 * cluster.workers + MAX_ATTEMPTS
        self.deaths = 0
        self.resent = 0
        self.startup_seconds: float | None = None
        self.note: str | None = None
        self._last_loss = ""

    def _spawn(self) -> Any:
        spec = self.cluster.spec
        return self._actor_class.remote(self.cluster.model, spec.threads, spec.gpus_per_worker > 0, spec.batch_fn)

    # -- corpus.Backend --------------------------------------------------------------------------------

    def resolve(self, options: ExplainOptions) -> tuple[str, int, RunOptions]:
        """Wait until every actor has loaded the model; its name, depth and the options resolved for it."""
        refs = [actor.describe.remote(options, self.limits) for actor in self.slots]
        facts: list[dict[str, Any]] = []
        for ref in refs:
            try:
                facts.append(self.ray.get(ref))
            except self.exceptions.RayError as exc:
                raise ModelError(
                    f"A Ray worker could not start ({_first_line(exc)}): install PairLens, its requirements and the "
                    "model on every node of the cluster."
                ) from None
        for fact in facts:
            if "error" in fact:
                raise ModelError(f"{fact['error']} (on Ray node {fact['node']})")
            if "input_error" in fact:
                raise InputError(fact["input_error"])
        models = {(fact["name"], fact["num_layers"], fact["options"]) for fact in facts}
        if len(models) > 1:
            raise ModelError(
                "The Ray workers loaded different models or resolved the options differently "
                f"({sorted((m[0], m[1]) for m in models)}): install the same PairLens and model on every node."
            )
        self.startup_seconds = time.perf_counter() - self.cluster.started
        self.note = next((fact["note"] for fact in facts if fact.get("note")), None)
        name, num_layers, resolved = models.pop()
        return name, num_layers, resolved

    def info(self) -> dict[str, Any]:
        spec = self.cluster.spec
        return {
            "torch_threads": spec.threads,
            "ray": {
                "where": self.cluster.where,
                "workers": self.cluster.workers,
                "gpus_per_worker": spec.gpus_per_worker,
                "batch_size": spec.batch_size,
                "startup_seconds": self.startup_seconds,
                "worker_deaths": self.deaths,
                "resent_batches": self.resent,
                "note": self.note,
            },
        }

    def attributions(self, jobs: Sequence[tuple[Pair, str]], options: RunOptions) -> Iterator[tuple[str, Any]]:
        """Longest pairs first (similar shapes share a batch; short batches even out the end)."""
        ordered = sorted(jobs, key=lambda job: -(len(job[0].text_a) + len(job[0].text_b)))
        size = self.cluster.spec.batch_size
        batches = [ordered[i : i + size] for i in range(0, len(ordered), size)]

        def refused(job: tuple[Pair, str], message: str) -> tuple[str, Any]:
            return job[1], pair_record(job[0], job[1], message)

        return self._stream("attributions", batches, options, refused)

    def convergence(
        self, jobs: Sequence[tuple[Pair, str, int]], settings: RunSettings
    ) -> Iterator[tuple[tuple[str, int], Any]]:
        """One (pair, layer) job per batch: each is as long as a few dozen attributions."""

        def refused(job: tuple[Pair, str, int], message: str) -> tuple[tuple[str, int], Any]:
            pair, key, layer = job
            return (key, layer), convergence_record(pair, key, layer, message)

        return self._stream("convergence", [[job] for job in jobs], settings, refused)

    def close(self) -> None:
        """Kill the actors (their processes end; the cluster keeps running)."""
        for actor in self.slots:
            if actor is not None:
                with contextlib.suppress(Exception):
                    self.ray.kill(actor)
        self.slots = [None] * len(self.slots)

    # -- scheduling ------------------------------------------------------------------------------------

    def _stream(
        self,
        method: str,
        batches: Sequence[list[Job]],
        argument: Any,
        refused: Callable[[Any, str], tuple[Hashable, Any]],
    ) -> Iterator[tuple[Any, Any]]:
        """Send batches to the least busy live actors (bounded in flight); yield their records as they finish."""
        queue = deque(_Batch(list(batch)) for batch in batches)
        in_flight: dict[Any, tuple[int, Any, _Batch]] = {}  # ObjectRef -> (slot, actor, batch)
        load = [0] * len(self.slots)
        while queue or in_flight:
            while queue and len(in_flight) < IN_FLIGHT_PER_WORKER * self._live():
                slot = min((i for i, a in enumerate(self.slots) if a is not None), key=lambda i: load[i])
                batch = queue.popleft()
                actor = self.slots[slot]
                in_flight[getattr(actor, method).remote(batch.jobs, argument)] = (slot, actor, batch)
                load[slot] += 1
            if not in_flight:
                raise PairLensError(
                    f"Every Ray worker died and {2 * self.cluster.workers + MAX_ATTEMPTS} replacements too (last: "
                    f"{self._last_loss}): see the Ray logs; finished pairs are kept, re-run the command to resume."
                )
            ready, _ = self.ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                slot, actor, batch = in_flight.pop(ref)
                load[slot] -= 1
                try:
                    records = self.ray.get(ref)
                except self.exceptions.RayTaskError as exc:  # raised by PairLens code in the worker
                    if isinstance(exc.cause, PairLensError):
                        raise exc.cause from None
                    raise
                except self._lost_errors as exc:  # the worker process (or its node) is gone
                    self._lost(slot, actor, exc)
                    yield from self._again(batch, queue, refused)
                    continue
                yield from records

    def _live(self) -> int:
        return sum(actor is not None for actor in self.slots)

    def _lost(self, slot: int, actor: Any, exc: BaseException) -> None:
        """Replace the dead actor of `slot` (once, however many of its batches fail), within the budget."""
        self._last_loss = _first_line(exc)
        if self.slots[slot] is not actor:
            return  # already replaced when another of its batches failed
        self.deaths += 1
        log.warning("Ray worker lost (%s); %d replacements left", self._last_loss, self.respawns_left)
        with contextlib.suppress(Exception):
            self.ray.kill(actor)
        if self.respawns_left > 0:
            self.respawns_left -= 1
            self.slots[slot] = self._spawn()
        else:
            self.slots[slot] = None

    def _again(
        self, batch: _Batch, queue: deque[_Batch], refused: Callable[[Any, str], tuple[Hashable, Any]]
    ) -> list[tuple[Any, Any]]:
        """Queue a lost batch again, first as single jobs; a job that has lost MAX_ATTEMPTS workers is refused."""
        self.resent += 1
        attempts = batch.attempts + 1
        if attempts >= MAX_ATTEMPTS and len(batch.jobs) == 1:
            message = (
                f"A Ray worker died on this pair {attempts} times (last: {self._last_loss}); it may need more memory "
                "than a worker has."
            )
            return [refused(batch.jobs[0], message)]
        for job in reversed(batch.jobs):
            queue.appendleft(_Batch([job], attempts))
        return []
