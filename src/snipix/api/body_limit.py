"""The request body limit, as plain ASGI middleware: 413 `too_large`, and nothing read on.

Every request body is limited to SNIPIX_MAX_BODY_BYTES, except where a route allows more
(`allowances`): timeline saves, patches and imports get SNIPIX_TIMELINE_MAX_BYTES plus
64 KiB for the request's other fields (the timeline service then measures the state
itself), and media uploads SNIPIX_MEDIA_MAX_BYTES plus 128 KiB (the upload route checks the
Content-Length and counts the stream against its own limit, with its own message and
`details.maxBytes`; here only the bytes read are counted, as a backstop). An allowance
never lowers the general limit.

A `Content-Length` over the limit is refused before the app is called: no handler,
dependency or rate limit runs, nothing is read. Otherwise (a chunked body, or a
Content-Length that understates) the bytes are counted as the app receives them; the chunk
that passes the limit raises `BodyTooLarge` inside the app's read. That is an
`HTTPException` on purpose: FastAPI re-raises those from body parsing (any other error
there becomes a 400), so it stops the read wherever it happens (FastAPI's body parsing, a
route streaming `request.stream()`), and the app answers at once. Whatever the app answers
then, this middleware sends its own 413 in its place (one shape, with `details.maxBytes`,
the request id and the path's error shape). Either way the handler never got a body, so
nothing was written.

Refusals carry `Connection: close`: the unread rest of the body is not worth receiving.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from snipix.api.errors import error_body_for
from snipix.settings import Settings

# A timeline save is `{"state": ..., "label": ...}`: the state may use the whole timeline
# limit, the rest of the body needs far less than this.
TIMELINE_BODY_SLACK: Final = 64 * 1024
# More than the upload route's own allowance for the multipart framing (64 KiB), so its
# own 413 (with `details.maxBytes`) is the one a client sees.
UPLOAD_BODY_SLACK: Final = 128 * 1024


class BodyTooLarge(HTTPException):
    """The body passed the limit while the app was reading it (413 `too_large`)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(status_code=413, detail=_message(max_bytes))
        self.max_bytes = max_bytes


@dataclass(frozen=True, slots=True)
class Allowance:
    """A larger body limit for some methods on paths matching `path`.

    `route_checks_length`: the route refuses a Content-Length over its own limit itself
    (with its own message and details), so this middleware only counts the bytes read.
    """

    methods: frozenset[str]
    path: re.Pattern[str]
    max_bytes: int
    route_checks_length: bool = False


def allowances(settings: Settings) -> tuple[Allowance, ...]:
    """The routes that accept more than SNIPIX_MAX_BODY_BYTES, and how much."""
    timeline = max(settings.max_body_bytes, settings.timeline_max_bytes + TIMELINE_BODY_SLACK)
    upload = max(settings.max_body_bytes, settings.media_max_bytes + UPLOAD_BODY_SLACK)
    return (
        Allowance(
            frozenset({"PUT", "PATCH"}), re.compile(r"/api/v1/projects/[^/]+/timeline/?"), timeline
        ),
        Allowance(
            frozenset({"POST"}), re.compile(r"/api/v1/projects/[^/]+/timeline/import/?"), timeline
        ),
        # The original web app's full-state save.
        Allowance(frozenset({"POST"}), re.compile(r"/timeline/?"), timeline),
        Allowance(frozenset({"POST"}), re.compile(r"/media/upload/?"), upload, True),
    )


def _message(max_bytes: int, declared: int | None = None) -> str:
    if declared is not None:
        return f"The request body is {declared:,} bytes; the limit here is {max_bytes:,}."
    return f"The request body is larger than the limit here ({max_bytes:,} bytes)."


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class BodyLimitMiddleware:
    """Refuse request bodies over the limit for their route with 413 `too_large`."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, allowances: Sequence[Allowance] = ()
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.allowances = tuple(allowances)

    def allowance_for(self, method: str, path: str) -> Allowance | None:
        for allowance in self.allowances:
            if method in allowance.methods and allowance.path.fullmatch(path):
                return allowance
        return None

    def limit_for(self, method: str, path: str) -> int:
        allowance = self.allowance_for(method, path)
        return allowance.max_bytes if allowance is not None else self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        allowance = self.allowance_for(str(scope.get("method", "")), str(scope.get("path", "")))
        limit = allowance.max_bytes if allowance is not None else self.max_bytes
        declared = _content_length(scope)
        checks_length = allowance is None or not allowance.route_checks_length
        if checks_length and declared is not None and declared > limit:
            await self._refuse(scope, receive, send, limit, declared)
            return

        received = 0
        exceeded = False
        started = False
        replaced = False

        async def receive_limited() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge(limit)
            return message

        async def send_checked(message: Message) -> None:
            nonlocal started, replaced
            if replaced:
                return
            if message["type"] == "http.response.start":
                if exceeded:
                    # The app's answer to a body it could not read whole (its handler's
                    # rendering of BodyTooLarge, or anything else): ours, with details.
                    replaced = True
                    await self._refuse(scope, receive, send, limit)
                    return
                started = True
            await send(message)

        try:
            await self.app(scope, receive_limited, send_checked)
        except BodyTooLarge:
            if started:
                raise
            if not replaced:
                await self._refuse(scope, receive, send, limit)

    @staticmethod
    async def _refuse(
        scope: Scope, receive: Receive, send: Send, limit: int, declared: int | None = None
    ) -> None:
        request_id = scope.get("state", {}).get("request_id")
        body = error_body_for(
            str(scope.get("path", "")),
            "too_large",
            _message(limit, declared),
            {"maxBytes": limit},
            request_id,
        )
        response = JSONResponse(body, status_code=413, headers={"Connection": "close"})
        await response(scope, receive, send)
