"""The one error body of the HTTP API and the OpenAPI `responses` that document it (shared by every router)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = ["ErrorBody", "errors"]


class ErrorBody(BaseModel):
    """Every error response: one sentence saying what went wrong and what to do."""

    detail: str = Field(description="A sentence saying what went wrong and what to do.")
    status: dict[str, Any] | None = Field(default=None, description="409 only: the job's status, as GET /jobs/{id}.")


_ERRORS = {
    400: "Malformed request: the body is not JSON in UTF-8, nests too deep, or the Host header is not this server's.",
    404: "Unknown model or job (or route).",
    409: "The job has not finished: ask again later.",
    410: "The job was cancelled.",
    413: "The request body is over the size limit.",
    422: "Wrong types or bad values, or the computation refused the input.",
    503: "The queue is full or the server is shutting down: try again later (Retry-After).",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error codes, each with the ErrorBody model."""
    return {code: {"model": ErrorBody, "description": _ERRORS[code]} for code in (400, *codes)}
