"""The one error body of the HTTP API, the OpenAPI `responses` that document it, and the base of every request
body (an unknown field is refused with that endpoint's own field list). Shared by every router."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

__all__ = ["ErrorBody", "RequestBody", "errors"]


class RequestBody(BaseModel):
    """A request body with strict fields: an unknown one is a 422 naming the endpoint and its fields
    ("colour is not a field of POST /rank (use query, candidates, ...)"). `endpoint`: what the message calls it."""

    model_config = ConfigDict(extra="forbid")  # OpenAPI: additionalProperties false
    endpoint: ClassVar[str] = "this request"

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(cls.model_fields))
            if unknown:
                raise PydanticCustomError(
                    "unknown_field",
                    "{name} is not a field of {endpoint} (use {fields})",
                    {"name": str(unknown[0]), "endpoint": cls.endpoint, "fields": ", ".join(cls.model_fields)},
                )
        return data


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
