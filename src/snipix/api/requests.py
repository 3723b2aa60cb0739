"""Request id and access log, as plain ASGI middleware (no per-request task or body copy).

The id comes from `X-Request-ID` when the client sends a sane one (so a trace spans the
web app, a proxy and this service) and is generated otherwise. It is bound to the log
context for every line of the request, stored in `request.state.request_id` for the error
handler, and echoed in the response.

The same place records the HTTP metrics (count, latency, error code) when the app passes
its `Metrics`: labelled by the route template, never the raw path.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import structlog
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from snipix.api.errors import internal_error_body
from snipix.api.identity import AUTH_OUTCOME_KEY
from snipix.cache.service import reset_request_outcome
from snipix.observability.metrics import Metrics

REQUEST_ID_HEADER = b"x-request-id"
# Bounded and free of anything that could forge a log line or a header.
_SAFE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
# Every error body starts `{"error":{"code":"...` (api.errors.error_body, compact JSON), or
# `{"success":false,"code":"...` on the original web app's paths (api.envelope.failure): the
# code is the error's class for the metrics, read without parsing the body.
_ERROR_CODE = re.compile(rb'^\{(?:"error":\{|"success":false,)"code":"([a-z0-9_]{1,64})"')

log = structlog.get_logger("snipix.access")


def _incoming_request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER and _SAFE_REQUEST_ID.match(value):
            return str(value.decode("ascii"))
    return uuid.uuid4().hex


def _route_template(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    # Unmatched paths are logged by a fixed label, so scanners cannot flood the route label.
    return str(path) if path else "<unmatched>"


class RequestContextMiddleware:
    """Assign the request id, write one access line and record metrics per request."""

    def __init__(self, app: ASGIApp, metrics: Metrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope)
        # A copy per request, as uvicorn makes: a server that shares one lifespan state dict
        # between requests (asgi-lifespan in tests) must not carry one request's user id
        # into the next request's access log.
        scope["state"] = {**scope.get("state", {}), "request_id": request_id}
        scope["state"].pop("user_id", None)
        scope["state"].pop(AUTH_OUTCOME_KEY, None)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        reset_request_outcome()
        started = time.perf_counter()
        status = 500
        error_code: str | None = None
        first_body = True
        header_value = request_id.encode("ascii")

        async def send_with_id(message: Message) -> None:
            nonlocal status, error_code, first_body
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", ()))
                headers.append((b"x-request-id", header_value))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and first_body:
                first_body = False
                if status >= 400:
                    match = _ERROR_CODE.match(message.get("body", b""))
                    error_code = match.group(1).decode("ascii") if match else None
            await send(message)

        response_started = False

        async def send_tracked(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send_with_id(message)

        try:
            await self.app(scope, receive, send_tracked)
        except Exception as error:
            # Registered handlers covered every expected error; this is a bug. Answer in the
            # common shape with the request id (Starlette's fallback would drop both), and
            # keep the traceback in the log only.
            log.error("unhandled error", error_class=type(error).__name__, exc_info=error)
            if response_started:
                raise
            response = JSONResponse(
                internal_error_body(request_id, str(scope.get("path", ""))), status_code=500
            )
            await response(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            state = scope.get("state", {})
            user_id = state.get("user_id")
            route = _route_template(scope)
            log.info(
                "request",
                method=scope.get("method"),
                route=route,
                status=status,
                latency_ms=round(elapsed * 1000, 2),
                user_id=user_id,
            )
            if self.metrics is not None:
                self.metrics.http_request(
                    str(scope.get("method", "")), route, status, elapsed, error_code=error_code
                )
            structlog.contextvars.clear_contextvars()
