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
    POST   /faithfulness       perturbation sweep and deletion curves of one pair (service/faithfulness.py)
    POST   /rank ...           rankings of candidates against a query, as jobs (attribution.service.rank_http)

Bad input never gets a traceback: malformed JSON (or invalid UTF-8, or nesting too deep) 400, a
Host header the server does not answer to 400, wrong types and bad values 422, an unknown model
404, a body over the size limit 413, a full queue 503; every error body is `ErrorBody`,
{"detail": "<a sentence saying what to do>"} (409 adds the job's "status"), and the OpenAPI
schema documents each route's codes with that model. Numbers longer than 40 digits are cut in
the sentences.

`serve()` answers only requests whose Host header names this server (DNS rebinding): the
loopback names and the bound address, or PAIRLENS_ALLOWED_HOSTS (comma-separated names, "*"
for any); see docs/guides/security.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Iterable
from typing import Any, ClassVar, cast

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import Field, StrictBool, StrictInt, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..core.engine import ENGINE_VERSION
from ..core.execution import Cancelled
from ..errors import InputError, ModelError, PairLensError
from ..models import list_models, load_model
from ..result.output import explain_json
from ..settings import DEFAULT_MODEL, get_settings
from .api_errors import RequestBody, errors
from .faithfulness import faithfulness_router
from .rank_http import rank_router
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


class ExplainBody(RequestBody):
    """What POST /explain and POST /jobs accept (types strict: "3" is no number, 3 is no text)."""

    endpoint: ClassVar[str] = "POST /explain and POST /jobs"

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


LONG_NUMBER = re.compile(r"\d{41,}")


def cut_long_numbers(text: str) -> str:
    """A message with every number of more than 40 digits cut to its first 12 and its length."""
    return LONG_NUMBER.sub(lambda m: f"{m.group()[:12]}... ({len(m.group())} digits)", text)


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def allowed_hosts_for(bound: str, setting: str | None) -> list[str]:
    """The Host names a server bound to `bound` answers to: PAIRLENS_ALLOWED_HOSTS (`setting`) when
    given ("*": any), else the loopback names and the bound address (unless it is a wildcard)."""
    if setting is not None and setting.strip():
        return [h.strip().lower() for h in setting.split(",") if h.strip()]
    names = list(LOOPBACK_HOSTS)
    if bound not in ("0.0.0.0", "::", "") and bound.lower() not in names:
        names.append(bound.lower())
    return names


def host_name(header: str) -> str:
    """The host of a Host header, without its port ("[::1]:8000" -> "::1")."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class AllowedHosts:
    """ASGI middleware: 400 with a sentence for a Host header outside `hosts` (DNS rebinding)."""

    def __init__(self, app: ASGIApp, hosts: Iterable[str]) -> None:
        self.app = app
        self.hosts = frozenset(h.lower() for h in hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or "*" in self.hosts:
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
        if host_name(header) in self.hosts:
            await self.app(scope, receive, send)
            return
        shown = header[:60] + ("..." if len(header) > 60 else "")
        response = JSONResponse(
            {
                "detail": f"This server does not answer to the host {shown!r}: use one of "
                f"{', '.join(sorted(self.hosts))}, or ask the operator to add the name to PAIRLENS_ALLOWED_HOSTS."
            },
            status_code=400,
        )
        await response(scope, receive, send)


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
        else:
            parts.append(f"{where}: {error.get('msg', 'invalid value')}")
    return 422, "Invalid request: " + "; ".join(parts) + "."


def _methods_of(app: FastAPI, request: Request) -> list[str]:
    """Every method some route serves at the request's path (Starlette's Allow names only the first route's)."""
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def create_app(
    manager: JobManager | None = None, *, own_manager: bool | None = None, allowed_hosts: Iterable[str] | None = None
) -> FastAPI:
    """The API over `manager` (a new JobManager with the settings' limits by default).

    own_manager: shut the manager's workers down when the app stops (default: when it made them).
    allowed_hosts: the Host names it answers to (`allowed_hosts_for`); None: any (in-process use;
    `serve()` always passes them).
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
    if allowed_hosts is not None:
        app.add_middleware(AllowedHosts, hosts=list(allowed_hosts))  # outermost: checked first
    app.include_router(faithfulness_router(jobs))  # POST /faithfulness (attribution.service.faithfulness)
    app.include_router(rank_router(jobs))  # POST /rank, GET/DELETE /rank/{id}, GET /rank/{id}/result

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, message = _validation_message(exc)
        return JSONResponse({"detail": cut_long_numbers(message)}, status_code=status)

    @app.exception_handler(PairLensError)
    async def on_pairlens(request: Request, exc: PairLensError) -> JSONResponse:
        headers = {"Retry-After": "5"} if isinstance(exc, Busy) else None
        return JSONResponse({"detail": cut_long_numbers(str(exc))}, status_code=_status_code(exc), headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = str(exc.detail)
        if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
            detail = "The request body is not valid UTF-8: send one JSON object encoded in UTF-8."
        elif exc.status_code == 400 and isinstance(exc.__cause__, RecursionError):
            detail = "The request body nests too deeply to read: send one JSON object of the documented fields."
        elif exc.status_code == 400 and exc.__cause__ is not None:
            detail = f"The request body could not be read ({type(exc.__cause__).__name__}): send one JSON object."
        elif exc.status_code == 404 and detail == "Not Found":
            detail = f"No route {request.url.path[:80]!r}: see /docs for the routes of this API."
        headers = exc.headers
        if exc.status_code == 405:
            allowed = _methods_of(app, request)
            detail = f"{request.method} is not allowed on {request.url.path[:80]!r}: use {', '.join(allowed)}."
            headers = {**(headers or {}), "Allow": ", ".join(allowed)}  # every route of the path, not the first
        return JSONResponse({"detail": cut_long_numbers(detail)}, status_code=exc.status_code, headers=headers)

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

    @app.post("/explain", responses=errors(404, 413, 422, 503))
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

    @app.post("/jobs", status_code=202, responses=errors(404, 413, 422, 503))
    async def create_job(body: ExplainBody) -> JSONResponse:
        job_id = await submit(body)
        return JSONResponse(jobs.status(job_id).to_dict(), status_code=202, headers={"Location": f"/jobs/{job_id}"})

    @app.get("/jobs/{job_id}", responses=errors(404, 422))
    def job_status(job_id: str) -> dict[str, Any]:
        return jobs.status(job_id).to_dict()

    @app.delete("/jobs/{job_id}", responses=errors(404, 422))
    def cancel_job(job_id: str) -> dict[str, Any]:
        jobs.cancel(job_id)
        return jobs.wait(job_id, timeout=CANCEL_WAIT_SECONDS).to_dict()  # "cancelled" once its chunk is over

    @app.get("/jobs/{job_id}/result", responses=errors(404, 409, 410, 422))
    def job_result(job_id: str) -> JSONResponse:
        status = jobs.status(job_id)
        if status.state is JobState.QUEUED or status.state is JobState.RUNNING:
            detail = f"Job {job_id} is {status.state.value} ({100 * status.fraction:.0f} % done): ask again later."
            return JSONResponse({"detail": detail, "status": status.to_dict()}, status_code=409)
        return JSONResponse(payload(job_id))

    @app.get("/models", responses=errors())
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

    @app.get("/models/{name:path}", responses=errors(404, 422))
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

    @app.get("/health", responses=errors())
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
    hosts = allowed_hosts_for(host, get_settings().allowed_hosts)
    if host in ("0.0.0.0", "::") and "*" not in hosts:
        log.warning(
            "PairLens: listening on every interface; requests are answered only for the Host names %s "
            "(set PAIRLENS_ALLOWED_HOSTS to the names clients use)",
            ", ".join(hosts),
        )
    manager = JobManager(workers=workers, gate=FairGate(cast(Policy, policy)))
    app = create_app(manager, own_manager=True, allowed_hosts=hosts)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
