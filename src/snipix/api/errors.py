"""Errors rendered at the HTTP edge: one JSON shape for every failure.

`install_error_handlers` turns a `SnipixError`, FastAPI's validation errors, routing errors
and driver connectivity errors into the API's one shape (anything unexpected is rendered
by the request middleware, see `snipix.api.requests`):

    {"error": {"code": "...", "message": "...", "details": ..., "requestId": "..."}}

The original web app's paths get its own envelope instead (`snipix.api.envelope`).
"""

from __future__ import annotations

from typing import Any, Final

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pymongo.errors import ConnectionFailure, ExecutionTimeout, WTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from snipix.api.envelope import failure, is_compat_path
from snipix.api.openapi import documented
from snipix.errors import SnipixError, database_failure

log = structlog.get_logger(__name__)


class ErrorBody(BaseModel):
    """The `error` member of every error response (documented in OpenAPI)."""

    code: str
    message: str
    details: Any = None
    requestId: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


def error_answer(description: str | None = None) -> dict[str, Any]:
    """A `responses=` entry for an error answered in this shape (see `api.openapi`)."""
    return documented(ErrorResponse, description)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    412: "version_mismatch",
    413: "too_large",
    415: "unsupported_media_type",
    428: "precondition_required",
    422: "validation_error",
    429: "rate_limited",
    503: "service_unavailable",
}


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def error_response(
    request: Request,
    *,
    status_code: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    # The original web app's paths get its envelope; everything else the service's shape.
    shape = failure if is_compat_path(request.url.path) else error_body
    body = shape(code, message, details, request_id_of(request))
    return JSONResponse(body, status_code=status_code, headers=headers)


def error_body(code: str, message: str, details: Any, request_id: str | None) -> dict[str, Any]:
    return {
        "error": {"code": code, "message": message, "details": details, "requestId": request_id}
    }


def _render(request: Request, exc: SnipixError) -> JSONResponse:
    return error_response(
        request,
        status_code=exc.status_code,
        code=exc.code,
        message=exc.message,
        details=exc.details,
        headers=exc.headers,
    )


async def _snipix_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SnipixError)
    if exc.status_code >= 500:
        log.warning("request failed", error_code=exc.code, error_class=type(exc).__name__)
    return _render(request, exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Only where and why: echoing the rejected input could reflect a password or a token.
    problems = [
        {
            "loc": [str(part) for part in item.get("loc", ())],
            "msg": str(item.get("msg", "")),
            "type": str(item.get("type", "")),
        }
        for item in exc.errors()
    ]
    first = problems[0] if problems else None
    where = ".".join(p for p in first["loc"] if p not in {"body"}) if first else ""
    if first is None:
        message = "Invalid request."
    elif where:
        message = f"Invalid request: {where}: {first['msg']}"
    else:  # a problem of the whole body (its shape, an unsafe key): the msg names the place
        message = f"Invalid request: {first['msg']}"
    return error_response(
        request, status_code=422, code="validation_error", message=message, details=problems
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and isinstance(exc.__cause__, ValueError | RecursionError):
        # Found by the fuzzer: FastAPI answers 400 for a JSON body whose bytes are
        # not UTF-8, or that nests past the parser's recursion limit (its JSON syntax errors
        # are 422 already). All are a body that cannot be read: one status, one code.
        too_deep = isinstance(exc.__cause__, RecursionError)
        problem = "nests too deeply" if too_deep else "is not valid JSON (UTF-8)"
        return error_response(
            request,
            status_code=422,
            code="validation_error",
            message=f"Invalid request: the body {problem}.",
            details=[
                {
                    "loc": ["body"],
                    "msg": problem,
                    "type": "json_too_deep" if too_deep else "json_invalid",
                }
            ],
        )
    code = _HTTP_CODES.get(exc.status_code, "error" if exc.status_code < 500 else "internal_error")
    message = str(exc.detail) if exc.detail else code.replace("_", " ").capitalize() + "."
    if exc.status_code == 404 and exc.detail == "Not Found":
        message = f"No route matches {request.method} {request.url.path}."
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 405:
        # Starlette names the methods of the first route whose path matched; a path served
        # by several routes (GET, PATCH and DELETE of a project) allows all of theirs.
        headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
    return error_response(
        request, status_code=exc.status_code, code=code, message=message, headers=headers
    )


def _allowed_methods(request: Request) -> list[str]:
    """The methods some route serves at this path: each asked of the router as a request
    with that method would be (an included router hides its routes' methods)."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]


_METHODS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable", error_class=type(exc).__name__)
    return _render(request, database_failure(request.method, exc))


INTERNAL_ERROR_MESSAGE = (
    "Something went wrong on our side; the request may not have been applied. "
    "Retry, and quote the request id if it happens again."
)


def internal_error_body(request_id: str | None, path: str = "") -> dict[str, Any]:
    """The 500 body; rendered by the request middleware, which sees every unhandled error."""
    return error_body_for(path, "internal_error", INTERNAL_ERROR_MESSAGE, None, request_id)


def error_body_for(
    path: str, code: str, message: str, details: Any, request_id: str | None
) -> dict[str, Any]:
    """The error body for a request to `path`, for ASGI middleware that answers by itself
    (the envelope on the original web app's paths, the service's shape elsewhere)."""
    shape = failure if is_compat_path(path) else error_body
    return shape(code, message, details, request_id)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SnipixError, _snipix_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # ConnectionFailure covers AutoReconnect, NetworkTimeout and ServerSelectionTimeoutError.
    for driver_error in (ConnectionFailure, ExecutionTimeout, WTimeoutError):
        app.add_exception_handler(driver_error, _database_error)
