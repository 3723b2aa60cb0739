"""Security headers on every response, as plain ASGI middleware (outermost, so 500s, 413s
and CORS preflight answers carry them too).

- `X-Content-Type-Options: nosniff`: a browser renders a response only as its declared type
  (a JSON error quoting user input is never sniffed into HTML).
- `X-Frame-Options: DENY` and CSP `frame-ancestors 'none'`: no page may frame any answer
  (the header for old browsers, the directive for current ones).
- `Content-Security-Policy: default-src 'none'; frame-ancestors 'none'` on JSON and text
  answers: opened as a document, they may load and run nothing. Other types (the video and
  thumbnail files, the HTML of `/docs`, which loads Swagger UI's scripts) get only
  `frame-ancestors 'none'`: a policy of `default-src 'none'` on a video can stop a browser
  from playing it when the URL is opened directly. The web app's pages, when this
  service serves its build, bring their own policy (`api/web_app.py`), kept as set.
- `Referrer-Policy: no-referrer`: URLs (media links carry a `?token=`) never leak to
  other sites through the Referer header.
- `Cache-Control: no-store` unless the route set its own: answers carry user data (and
  health and metrics answers must never be served from a cache either). The media file
  routes set `private, no-cache` with `ETag`/`Last-Modified`: a browser may keep the
  bytes and revalidate (Range requests and 304s keep working); shared caches may not.
- `Strict-Transport-Security: max-age=31536000` when the request came over HTTPS (directly,
  or from a trusted proxy's X-Forwarded-Proto); over plain HTTP browsers ignore it anyway.

A header the app already set is left as it is.
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

FRAME_ANCESTORS: Final = b"frame-ancestors 'none'"
LOCKED_DOWN_CSP: Final = b"default-src 'none'; " + FRAME_ANCESTORS
_ALWAYS: Final[tuple[tuple[bytes, bytes], ...]] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)
_HSTS: Final = (b"strict-transport-security", b"max-age=31536000")
# Responses that are data, never a page: nothing in them may load or run.
_DATA_TYPES: Final = (b"application/json", b"application/problem+json", b"text/plain")


def _policy_for(content_type: bytes | None) -> bytes:
    if content_type is not None and content_type.lower().startswith(_DATA_TYPES):
        return LOCKED_DOWN_CSP
    return FRAME_ANCESTORS


class SecurityHeadersMiddleware:
    """Add the security headers a response does not already carry."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        secure = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower(): value for name, value in headers}
                added = [
                    (b"content-security-policy", _policy_for(present.get(b"content-type"))),
                    *_ALWAYS,
                ]
                if secure:
                    added.append(_HSTS)
                headers.extend((name, value) for name, value in added if name not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
