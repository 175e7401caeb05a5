"""HTTP endpoints for rankings (attribution.ranking), with progress and cancellation like /jobs.

    POST   /rank                {"query", "candidates", "model"?, "options"?, "top"?, "pos"?, "scores_only"?}
                                -> 202 {"id", "state", "progress", "maps": {"done", "planned"}, ...} at once
    GET    /rank/{id}           state (queued|running|done|failed|cancelled), progress, maps done
    DELETE /rank/{id}           cancel (stops before its next chunk); answers once stopped (at most 5 s)
    GET    /rank/{id}/result    200 Ranking.to_dict() | 409 not finished | 410 cancelled | 4xx failed

Input is checked when the job is submitted (empty query or list, duplicates, too many candidates,
options): a 422 with a sentence, before anything is queued. Rankings run in their own threads and
take their turns at the backend's differentiation gate (the JobManager's), so they share the
machine fairly with /jobs; each map is held to the operator's work cap per request
(PAIRLENS_MAX_PAGE_WORK, judged on the query and the longest candidate) as /jobs holds one pair.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, ClassVar

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import Field, StrictBool, StrictInt, StrictStr

from ..core.execution import Cancelled, Progress, Run
from ..core.options import ExplainOptions, Limits
from ..core.work import estimate_work, limit_work
from ..errors import InputError, ModelError, PairLensError
from ..models import load_model
from ..ranking import (
    MAX_EXPLAINED,
    MAX_RANKED,
    Ranking,
    check_candidates,
    explain_ranking,
    rank_scores,
    ranking_options,
)
from ..settings import DEFAULT_MODEL, get_settings
from .api_errors import RequestBody, errors
from .scheduler import Busy, JobFailed, JobManager, JobState, UnknownJob, check_model_name

CANCEL_WAIT_SECONDS = 5.0
KEEP_SECONDS = 600.0


class RankBody(RequestBody):
    """What POST /rank accepts (types strict)."""

    endpoint: ClassVar[str] = "POST /rank"

    query: StrictStr
    candidates: list[StrictStr] = Field(max_length=MAX_RANKED + 1)  # the cap's own message says what to do
    model: StrictStr = DEFAULT_MODEL
    options: dict[str, Any] = Field(default_factory=dict)
    top: StrictInt | None = Field(default=None, ge=1, le=MAX_EXPLAINED)
    pos: StrictBool = False
    scores_only: StrictBool = False


@dataclass
class RankJob:
    id: str
    model: str
    body: RankBody
    options: ExplainOptions
    cancel: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    state: JobState = JobState.QUEUED
    submitted: float = field(default_factory=time.perf_counter)
    ended: float | None = None
    progress: Progress = field(default_factory=lambda: Progress(0, 0, 0.0))
    maps_done: int = 0
    maps_planned: int = 0
    result: Ranking | None = None
    error: str | None = None
    error_kind: str | None = None

    def to_dict(self) -> dict[str, Any]:
        p = self.progress
        done = self.state is JobState.DONE
        return {
            "id": self.id,
            "state": self.state.value,
            "model": self.model,
            "progress": {
                "done": p.done,
                "planned": p.planned,
                "fraction": 1.0 if done else (min(p.done / p.planned, 1.0) if p.planned else 0.0),
                "seconds": (self.ended or time.perf_counter()) - self.submitted,
                "seconds_left": 0.0 if done else (None if self.state.finished else p.seconds_left),
            },
            "maps": {"done": self.maps_done, "planned": self.maps_planned},
            "error": self.error,
        }


class RankJobs:
    """Ranking jobs: one thread each, at most the manager's max_jobs at once, chunks through its gate."""

    def __init__(self, manager: JobManager) -> None:
        self.manager = manager
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, RankJob] = OrderedDict()

    def submit(self, body: RankBody) -> RankJob:
        check_candidates(body.query, body.candidates, MAX_RANKED, get_settings().limits.max_text_chars)
        if not isinstance(body.options, dict):
            raise InputError("options must be an object of option names and values.")
        options = ExplainOptions.create(**{str(k): v for k, v in body.options.items()})
        if not body.scores_only and min(body.top or len(body.candidates), len(body.candidates)) > MAX_EXPLAINED:
            raise InputError(
                f"{len(body.candidates)} maps are more than the {MAX_EXPLAINED} one ranking computes: send top "
                f"(at most {MAX_EXPLAINED}) to explain the best ones, or scores_only for the ranking alone."
            )
        job = RankJob(uuid.uuid4().hex, check_model_name(body.model), body, options)
        with self._lock:
            self._forget_old()
            active = sum(1 for j in self._jobs.values() if not j.state.finished)
            if active >= self.manager.max_jobs:
                raise Busy(f"The backend is busy ({active} rankings running): try again in a moment.")
            self._jobs[job.id] = job
        threading.Thread(target=self._run, args=(job,), name=f"pairlens-rank-{job.id[:8]}", daemon=True).start()
        return job

    def get(self, job_id: str) -> RankJob:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise UnknownJob(f"No ranking {job_id[:64]!r}: it never existed or finished long ago.")
        return job

    def cancel(self, job_id: str) -> RankJob:
        job = self.get(job_id)
        job.cancel.set()
        job.finished.wait(CANCEL_WAIT_SECONDS)
        return job

    def _forget_old(self) -> None:
        now = time.perf_counter()
        for job in [j for j in self._jobs.values() if j.ended is not None and now - j.ended > KEEP_SECONDS]:
            del self._jobs[job.id]

    def _run(self, job: RankJob) -> None:
        job.state = JobState.RUNNING

        def on_progress(progress: Progress) -> None:
            job.progress = progress

        def on_maps(done: int, planned: int) -> None:
            job.maps_done, job.maps_planned = done, planned

        run = Run(cancel=job.cancel, on_progress=on_progress, gate=self.manager.gate)
        body = job.body
        limits = get_settings().limits
        try:
            run.check()
            model = (self.manager.load or _load)(job.model)
            if body.scores_only:
                result = rank_scores(model, body.query, body.candidates, job.options, limits=limits)
            else:
                options = self._work_capped(model, body, job.options, limits)
                job.maps_planned = min(body.top or len(body.candidates), len(body.candidates))
                result = explain_ranking(
                    model, body.query, body.candidates, options, top=body.top, pos=body.pos, run=run,
                    progress=on_maps, limits=limits,
                )  # fmt: skip
        except Cancelled:
            self._end(job, JobState.CANCELLED, "The ranking was cancelled.")
        except PairLensError as exc:
            job.error_kind = "model" if isinstance(exc, ModelError) else "input"
            self._end(job, JobState.FAILED, str(exc))
        except Exception as exc:  # a bug: the caller gets a sentence
            job.error_kind = "internal"
            self._end(job, JobState.FAILED, f"The ranking failed unexpectedly ({type(exc).__name__}); try again.")
        else:
            job.result = result
            self._end(job, JobState.DONE, None)

    def _work_capped(self, model: Any, body: RankBody, options: ExplainOptions, limits: Limits) -> ExplainOptions:
        """The options within the operator's work cap per map (PAIRLENS_MAX_PAGE_WORK, as /jobs applies it to
        one pair), judged on the query and the longest candidate."""
        chosen = getattr(self.manager, "_max_work", "default")
        max_work = get_settings().max_page_work if chosen == "default" else chosen
        if not isinstance(max_work, int):
            return options
        longest = max(body.candidates, key=len)
        estimate = estimate_work(model, body.query, longest, ranking_options(options), limits)
        return limit_work(estimate, options, max_work)

    def _end(self, job: RankJob, state: JobState, error: str | None) -> None:
        with self._lock:
            job.state, job.error, job.ended = state, error, time.perf_counter()
        job.finished.set()


def _load(name: str) -> Any:
    return load_model(name)


def rank_router(manager: JobManager) -> APIRouter:
    """The /rank endpoints over `manager`'s gate and limits."""
    router = APIRouter()
    rankings = RankJobs(manager)

    @router.post("/rank", status_code=202, responses=errors(404, 413, 422, 503))
    async def create_ranking(body: RankBody) -> JSONResponse:
        job = await run_in_threadpool(rankings.submit, body)
        return JSONResponse(job.to_dict(), status_code=202, headers={"Location": f"/rank/{job.id}"})

    @router.get("/rank/{job_id}", responses=errors(404, 422))
    def ranking_status(job_id: str) -> dict[str, Any]:
        return rankings.get(job_id).to_dict()

    @router.delete("/rank/{job_id}", responses=errors(404, 422))
    def cancel_ranking(job_id: str) -> dict[str, Any]:
        return rankings.cancel(job_id).to_dict()

    @router.get("/rank/{job_id}/result", responses=errors(404, 409, 410, 422))
    def ranking_result(job_id: str) -> JSONResponse:
        job = rankings.get(job_id)
        if not job.state.finished:
            detail = f"Ranking {job_id} is {job.state.value}: ask again later."
            return JSONResponse({"detail": detail, "status": job.to_dict()}, status_code=409)
        if job.state is JobState.CANCELLED:
            return JSONResponse({"detail": job.error or "The ranking was cancelled."}, status_code=410)
        if job.state is JobState.FAILED:
            raise JobFailed(job.error or "The ranking failed.", job.error_kind or "internal")
        assert job.result is not None
        return JSONResponse(job.result.to_dict())

    return router
