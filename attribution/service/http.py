"""The HTTP API of `pairlens serve` (FastAPI on uvicorn; bound to 127.0.0.1 unless told otherwise).

    POST   /explain            {"text_a", "text_b", "model"?, "options"?, "pos"?, "words"?, "top"?}
                               -> the object `pairlens explain --json` prints (waits for the result;
                               a client that disconnects cancels the computation)
    POST   /jobs               the same body -> 202 {"id", "state", "progress", ...} at once
    GET    /jobs/{id}          state (queued|running|done|failed|cancelled), progress
                               {done, planned, fraction, seconds, seconds_left}, cached, error
    DELETE /jobs/{id}          cancel (a running job stops before its next chunk); answers once it has
                               stopped (at most 5 s), with its status
    GET    /jobs/{id}/result   200 the explain object | 409 not finished | 410 cancelled | 4xx failed
    GET    /models             the models this backend serves
    GET    /models/{name}      layers, default layer, mode and similarity of one model (loads it)
    GET    /health             status, job counts, cache statistics, engine version

Bad input never gets a traceback: malformed JSON 400, wrong types and bad values 422, an unknown
model 404, a body over the size limit 413, a full queue 503; every error body is
{"detail": "<a sentence saying what to do>"}.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..core.engine import ENGINE_VERSION
from ..core.execution import Cancelled
from ..errors import InputError, ModelError, PairLensError
from ..models import list_models, load_model
from ..result.output import explain_json
from ..settings import DEFAULT_MODEL, get_settings
from .scheduler import (
    POLICIES,
    Busy,
    ExplainRequest,
    FairGate,
    JobFailed,
    JobManager,
    JobState,
    NotFinished,
    Policy,
    UnknownJob,
    check_model_name,
)

log = logging.getLogger(__name__)
POLL_SECONDS = 0.05
CANCEL_WAIT_SECONDS = 5.0  # DELETE /jobs/{id} answers once the job has stopped, or after this long


class ExplainBody(BaseModel):
    """What POST /explain and POST /jobs accept (types strict: "3" is no number, 3 is no text)."""

    model_config = ConfigDict(extra="forbid")

    text_a: StrictStr
    text_b: StrictStr
    model: StrictStr = DEFAULT_MODEL
    options: dict[str, Any] = Field(default_factory=dict)
    pos: StrictBool = False
    words: StrictBool = False
    top: StrictInt | None = Field(default=None, ge=0, le=100_000)

    def request(self) -> ExplainRequest:
        return ExplainRequest.create(
            self.text_a, self.text_b, self.model, self.options, pos=self.pos or self.words or bool(self.top)
        )


def max_body_bytes() -> int:
    """Two texts at the character limit (4 bytes each, worst case) plus room for the rest."""
    return 8 * get_settings().max_text_chars + 64 * 1024


class BodyLimit:
    """ASGI middleware: 413 for a request body over `max_body_bytes()` (declared or streamed)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = max_body_bytes()
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _too_large(limit, send)
            return
        seen, over, answered = 0, False, False

        async def limited() -> Message:
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    over = True
                    raise _BodyTooLarge
            return message

        async def guarded(message: Message) -> None:
            # whatever answer the app makes of a cut-short body (FastAPI: 400) becomes the 413
            nonlocal answered
            if not over:
                await send(message)
            elif message["type"] == "http.response.start" and not answered:
                answered = True
                await _too_large(limit, send)

        try:
            await self.app(scope, limited, guarded)
        except _BodyTooLarge:
            if not answered:
                await _too_large(limit, send)


class _BodyTooLarge(Exception):
    pass


async def _too_large(limit: int, send: Send) -> None:
    response = JSONResponse(
        {"detail": f"The request body is larger than {limit:,} bytes: send shorter texts."}, status_code=413
    )
    await response({"type": "http"}, _nothing, send)


async def _nothing() -> Message:
    return {"type": "http.disconnect"}


def _status_code(exc: PairLensError) -> int:
    if isinstance(exc, JobFailed):
        return {"model": 404, "input": 422}.get(exc.kind, 500)
    if isinstance(exc, (UnknownJob, ModelError)):
        return 404
    if isinstance(exc, Busy):
        return 503
    if isinstance(exc, NotFinished):
        return 409
    if isinstance(exc, Cancelled):
        return 410
    return 422


def _validation_message(exc: RequestValidationError) -> tuple[int, str]:
    """(status, one sentence) for pydantic's errors: 400 for malformed JSON, 422 for the rest."""
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        reason = next(str(e.get("ctx", {}).get("error", "")) for e in errors if e.get("type") == "json_invalid")
        return 400, f"The request body is not valid JSON ({reason[:120]}): send one JSON object."
    parts = []
    for error in errors[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        kind = error.get("type", "")
        if kind == "missing":
            parts.append(f"{where} is required")
        elif kind == "extra_forbidden":
            parts.append(f"{where} is not a field (use text_a, text_b, model, options, pos, words, top)")
        else:
            parts.append(f"{where}: {error.get('msg', 'invalid value')}")
    return 422, "Invalid request: " + "; ".join(parts) + "."


def create_app(manager: JobManager | None = None, *, own_manager: bool | None = None) -> FastAPI:
    """The API over `manager` (a new JobManager with the settings' limits by default).

    own_manager: shut the manager's workers down when the app stops (default: when it made them).
    """
    jobs = manager or JobManager()
    own = manager is None if own_manager is None else own_manager

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if own:
            await run_in_threadpool(jobs.shutdown)

    outputs: dict[str, tuple[bool, bool, int | None]] = {}  # job id -> (pos, words, top) of its request

    app = FastAPI(
        title="PairLens",
        version=__version__,
        description="Token-pair attributions of sentence-encoder similarity (integrated Jacobians).",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.jobs = jobs
    app.add_middleware(BodyLimit)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, message = _validation_message(exc)
        return JSONResponse({"detail": message}, status_code=status)

    @app.exception_handler(PairLensError)
    async def on_pairlens(request: Request, exc: PairLensError) -> JSONResponse:
        headers = {"Retry-After": "5"} if isinstance(exc, Busy) else None
        return JSONResponse({"detail": str(exc)}, status_code=_status_code(exc), headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def on_bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("PairLens: %s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "Internal error: the details are in the server log."}, status_code=500)

    async def submit(body: ExplainBody) -> str:
        request = await run_in_threadpool(body.request)
        job_id = await run_in_threadpool(jobs.submit, request)
        outputs[job_id] = (body.pos, body.words, body.top)
        if len(outputs) > 8 * jobs.max_jobs:  # forget what the manager has forgotten
            for old in list(outputs)[: len(outputs) // 2]:
                try:
                    jobs.status(old)
                except UnknownJob:
                    outputs.pop(old, None)
        return job_id

    def payload(job_id: str) -> dict[str, Any]:
        result = jobs.result(job_id)
        pos, words, top = outputs.get(job_id, (False, False, None))
        return explain_json(result, pos=pos, words=words, top=top)

    @app.post("/explain")
    async def explain(body: ExplainBody, request: Request) -> JSONResponse:
        job_id = await submit(body)
        try:
            while not jobs.status(job_id).finished:
                if await request.is_disconnected():
                    jobs.cancel(job_id)
                    return JSONResponse({"detail": "The client went away."}, status_code=499)
                await asyncio.sleep(POLL_SECONDS)
        except BaseException:
            jobs.cancel(job_id)
            raise
        content = await run_in_threadpool(payload, job_id)
        return JSONResponse(content)

    @app.post("/jobs", status_code=202)
    async def create_job(body: ExplainBody) -> JSONResponse:
        job_id = await submit(body)
        return JSONResponse(jobs.status(job_id).to_dict(), status_code=202, headers={"Location": f"/jobs/{job_id}"})

    @app.get("/jobs/{job_id}")
    def job_status(job_id: str) -> dict[str, Any]:
        return jobs.status(job_id).to_dict()

    @app.delete("/jobs/{job_id}")
    def cancel_job(job_id: str) -> dict[str, Any]:
        jobs.cancel(job_id)
        return jobs.wait(job_id, timeout=CANCEL_WAIT_SECONDS).to_dict()  # "cancelled" once its chunk is over

    @app.get("/jobs/{job_id}/result")
    def job_result(job_id: str) -> JSONResponse:
        status = jobs.status(job_id)
        if status.state is JobState.QUEUED or status.state is JobState.RUNNING:
            detail = f"Job {job_id} is {status.state.value} ({100 * status.fraction:.0f} % done): ask again later."
            return JSONResponse({"detail": detail, "status": status.to_dict()}, status_code=409)
        return JSONResponse(payload(job_id))

    @app.get("/models")
    def models() -> list[dict[str, Any]]:
        return [
            {
                "name": m.name,
                "kind": m.kind,
                "installed": m.installed,
                "description": m.description,
                "install_hint": m.install_hint,
            }
            for m in list_models()
        ]

    @app.get("/models/{name:path}")
    def model_facts(name: str) -> dict[str, Any]:
        model = load_model(check_model_name(name))
        return {
            "name": model.name,
            "num_layers": model.num_layers,
            "default_layer": model.default_layer,
            "default_mode": model.default_mode,
            "similarity": model.similarity,
            "max_tokens": model.max_tokens,
            "embedding_dim": model.embedding_dim,
            "device": model.device,
        }

    @app.get("/health")
    def health() -> dict[str, Any]:
        cache = jobs.cache
        return {
            "status": "ok",
            "version": __version__,
            "engine": ENGINE_VERSION,
            "policy": getattr(jobs.gate, "policy", type(jobs.gate).__name__),
            "workers": jobs.workers,
            "max_jobs": jobs.max_jobs,
            "jobs": jobs.counts(),
            "cache": cache.stats() if cache is not None else None,
        }

    return app


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    policy: str = "shortest",
    workers: int | None = None,
    log_level: str = "info",
) -> None:
    """Run the API with uvicorn until interrupted."""
    import uvicorn  # only to run the server (create_app serves tests and other ASGI servers without it)

    if policy not in POLICIES:
        raise InputError(f"Unknown --policy {policy!r}: choose one of {', '.join(POLICIES)}.")
    app = create_app(JobManager(workers=workers, gate=FairGate(cast(Policy, policy))), own_manager=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
