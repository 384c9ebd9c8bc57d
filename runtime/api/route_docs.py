"""The OpenAPI documentation every authenticated router shares: the X-Trace-Id header (asked for and answered),
the Retry-After header, the shape of an error answer and the 401/403 answers of a route behind a token."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Header

from runtime.api.schemas import ErrorOut

TRACE_HEADER_DOC = {
    "description": "The request's trace id (the caller's X-Trace-Id when valid, else generated).",
    "schema": {"type": "string"},
}
RETRY_AFTER_DOC = {"description": "Seconds to wait before asking again.", "schema": {"type": "integer"}}


def error_doc(description: str, **headers: dict[str, Any]) -> dict[str, Any]:
    """An error answer: the error body, `description` and X-Trace-Id plus `headers`."""
    return {"model": ErrorOut, "description": description, "headers": {"X-Trace-Id": TRACE_HEADER_DOC, **headers}}


def trace_id_header(
    x_trace_id: Annotated[
        str | None,
        Header(
            alias="X-Trace-Id",
            description="Optional correlation id (1-128 of A-Z a-z 0-9 . _ : -); answered in X-Trace-Id. Invalid "
            "values are replaced by a generated X-Ray compatible id (1-<8 hex>-<24 hex>).",
        ),
    ] = None,
) -> None:
    """Documents X-Trace-Id on every route; TraceIdMiddleware does the work."""


AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: error_doc(
        "`unauthorized`: missing, malformed, unknown, revoked or expired token (checked before any job is looked up).",
        **{"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
    ),
    403: error_doc("`forbidden`: the token lacks the scope this route needs."),
}
