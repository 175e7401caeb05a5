"""POST /faithfulness: the perturbation sweep and deletion / insertion curves of one pair (attribution.faithfulness).

    POST /faithfulness  {"text_a", "text_b", "model"?, "options"?, "methods"?, "op"?, "level"?, "order"?,
                         "draws"?, "seed"?}
                        -> the object `pairlens faithfulness --json` prints (waits for the result)

The texts, model and options are checked as for POST /explain (same messages and status codes); the
server's work cap (PAIRLENS_MAX_PAGE_WORK) applies to each method's explain, and its differentiation
chunks take turns with the job queue's at the same gate; a client that disconnects cancels the computation
(at its next step). Random orders are capped at MAX_DRAWS here.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, ClassVar

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import Field, StrictInt, StrictStr

from ..core.execution import Run
from ..core.work import within_work
from ..faithfulness.curves import DEFAULT_DRAWS, Order
from ..faithfulness.methods import DEFAULT_METHOD, SECOND_METHOD, Method
from ..faithfulness.report import faithfulness_report
from ..faithfulness.scoring import Op
from ..faithfulness.units import Level
from ..models import load_model
from ..settings import DEFAULT_MODEL, get_settings
from .api_errors import RequestBody, errors
from .scheduler import ExplainRequest, JobManager

MAX_DRAWS = 20
POLL_SECONDS = 0.05


class FaithfulnessBody(RequestBody):
    """What POST /faithfulness accepts (types strict, unknown fields refused with this endpoint's field list)."""

    endpoint: ClassVar[str] = "POST /faithfulness"

    text_a: StrictStr
    text_b: StrictStr
    model: StrictStr = DEFAULT_MODEL
    options: dict[str, Any] = Field(default_factory=dict)
    methods: list[Method] = Field(default_factory=lambda: [DEFAULT_METHOD, SECOND_METHOD], min_length=1, max_length=2)
    op: Op = "mask"
    level: Level = "token"
    order: Order = "unit"
    draws: StrictInt = Field(default=DEFAULT_DRAWS, ge=1, le=MAX_DRAWS)
    seed: StrictInt = Field(default=0, ge=0, le=2**32 - 1)


def compute(body: FaithfulnessBody, jobs: JobManager, cancel: threading.Event | None = None) -> dict[str, Any]:
    """The report's JSON for a checked body (runs in a worker thread; `cancel` stops it at its next step)."""
    request = ExplainRequest.create(body.text_a, body.text_b, body.model, body.options, pos=False)
    settings = get_settings()  # read per request, as the job queue does
    limits = settings.limits
    model = load_model(request.model)
    options = request.options
    options = within_work(model, request.text_a, request.text_b, options, limits, settings.max_page_work)
    report = faithfulness_report(
        model, request.text_a, request.text_b, options, methods=body.methods, op=body.op, level=body.level,
        order=body.order, draws=body.draws, seed=body.seed, run=Run(cancel=cancel, gate=jobs.gate), limits=limits,
    )  # fmt: skip
    return report.to_dict()


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark an abandoned computation's outcome as seen (its client went away)."""
    if not task.cancelled():
        task.exception()


def faithfulness_router(jobs: JobManager) -> APIRouter:
    """The /faithfulness route over the app's job manager (for its gate)."""
    router = APIRouter()

    @router.post("/faithfulness", responses=errors(404, 413, 422, 503))
    async def faithfulness(body: FaithfulnessBody, request: Request) -> JSONResponse:
        cancel = threading.Event()
        task = asyncio.ensure_future(run_in_threadpool(compute, body, jobs, cancel))
        task.add_done_callback(_retrieve)
        try:
            while not task.done():
                if await request.is_disconnected():  # a client that goes away cancels the computation
                    cancel.set()
                    return JSONResponse({"detail": "The client went away."}, status_code=499)
                await asyncio.wait({task}, timeout=POLL_SECONDS)
        except BaseException:
            cancel.set()
            raise
        return JSONResponse(task.result())

    return router
