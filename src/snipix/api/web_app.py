"""The original web app's production build, served from the API's own origin.

Why: the web app's project list shows thumbnails with a plain, relative `<img src="/media/
{id}/thumbnail">`, which a browser can authorise only with the HttpOnly media cookie
(`api/media_cookie.py`), and a browser keeps that cookie only from a sign-in answer of the
page's own origin. The app's default build calls its API at `http://localhost:8001`; when
the same process also serves the build there, every call, the sign-in and the `<img>` are
same-origin and the thumbnails load, with no proxy to run.

Which requests are the app's (`SNIPIX_WEB_APP_DIR` set; GET or HEAD only), decided the way
the app's development server decides what it proxies to the API:

- a request with `Authorization` or `X-User-Id` is an API client's: always the API;
- the backend's own paths (`/api/`, `/media/`, `/docs`, `/redoc`, `/openapi.json`,
  `/health/`, `/metrics`) are never the app's: a signed media link or the API docs opened
  in a tab keep working;
- a page navigation (Accept ranks `text/html` above JSON) is the app's: the file it names
  if the build has one, else `index.html` (the app routes on the client, so `/projects`,
  `/timeline/{id}` and `/verify-email?token=...` are all its index page). The app's client
  routes share paths with its API (`/projects`, `/timeline/{id}`): the Accept header alone
  tells them apart, and an API client (Accept JSON, axios's or curl's `*/*`) never gets HTML;
- any other GET (a script, a stylesheet, an icon) is a file of the build if it exists and
  no API route has that path; else it goes on to the API (a JSON 404, as before).

Files are looked up safely (no `..`, no backslash, resolved inside the build directory, so
a symlink out of it is refused). Hashed assets under `/static/` may be cached for a year
(`immutable`): their names change with their content. `index.html` and the other files are
`no-cache` (revalidated with their ETag), so a new build is picked up on the next load.
The app's pages get a Content-Security-Policy that lets the build run (its scripts are
files of its own origin; its styles are injected at run time) but no inline or foreign
script; the API's answers keep theirs (`api/security_headers.py`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import anyio.to_thread
from starlette.datastructures import Headers
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Match
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

INDEX: Final = "index.html"
# Paths the app never routes to: they always reach the API, whatever the Accept header.
BACKEND_PATHS: Final = (
    "/api/",
    "/media/",
    "/docs",
    "/redoc",
    "/openapi.json",
    "/health/",
    "/metrics",
)
IMMUTABLE: Final = "public, max-age=31536000, immutable"
REVALIDATE: Final = "no-cache"
# The app's pages: scripts only from its own files (CRA's build inlines none); styles
# injected at run time (styled-components, video.js) need 'unsafe-inline'; its index page
# loads Google Fonts; data: and blob: for the player's fonts and the video it fetches into
# a blob URL; images from anywhere (a profile's `avatar_url`); its API calls may go to the
# origin its build names. What stays shut: inline and foreign scripts, plugins, framing.
APP_CSP: Final = (
    "default-src 'self'; script-src 'self'; "
    "style-src 'self' 'unsafe-inline' https://fonts.googleapis.com; "
    "font-src 'self' data: https://fonts.gstatic.com; img-src * data: blob:; "
    "media-src 'self' blob:; connect-src *; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# The few types a CRA build holds whose guess by `mimetypes` is missing or varies by system.
_TYPES: Final = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".json": "application/json",
    ".map": "application/json",
    ".txt": "text/plain",
    ".ico": "image/x-icon",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".svg": "image/svg+xml",
    ".webmanifest": "application/manifest+json",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
}
_HTML_TYPES: Final = ("text/html", "application/xhtml+xml")


@dataclass(frozen=True)
class _Label:
    """What the access log and the HTTP metrics name an answer by (a bounded set)."""

    path: str


PAGE: Final = _Label("<web app page>")
FILE: Final = _Label("<web app file>")


def _ranges(accept: str) -> list[tuple[str, float]]:
    """An Accept header's media ranges with their quality (1 when not given, 0 if unreadable)."""
    ranges: list[tuple[str, float]] = []
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if not media:
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    quality = 0.0
        ranges.append((media.lower(), quality))
    return ranges


def _quality(ranges: list[tuple[str, float]], media: str) -> float:
    """The quality the most specific matching range gives `media` (RFC 9110 12.5.1)."""
    kind = media.split("/", 1)[0]
    best: tuple[int, float] = (-1, 0.0)
    for candidate, quality in ranges:
        if candidate == media:
            specificity = 2
        elif candidate == f"{kind}/*":
            specificity = 1
        elif candidate == "*/*":
            specificity = 0
        else:
            continue
        if specificity > best[0]:
            best = (specificity, quality)
    return best[1]


def prefers_html(accept: str | None) -> bool:
    """A page navigation: HTML named explicitly and ranked above JSON (a tie is the API's)."""
    if not accept:
        return False
    ranges = _ranges(accept)
    named = {media for media, _ in ranges}
    html = max((_quality(ranges, media) for media in _HTML_TYPES if media in named), default=0.0)
    return html > 0 and html > _quality(ranges, "application/json")


def find_file(root: Path, path: str) -> Path | None:
    """The regular file `path` names inside `root` (resolved), or None; never outside it."""
    relative = path.lstrip("/")
    if not relative:
        return None
    parts = relative.split("/")
    if any(part in {"", ".", ".."} or "\\" in part or "\x00" in part for part in parts):
        return None
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


def content_type(file: Path) -> str | None:
    """The type to serve `file` as; None lets Starlette guess from the name."""
    return _TYPES.get(file.suffix.lower())


class WebAppMiddleware:
    """Answer the web app's page and asset requests from its build; pass the rest on."""

    def __init__(self, app: ASGIApp, root: Path, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.root = root.resolve()
        self.index = self.root / INDEX
        # The app's routes (the list, not a copy: read at request time).
        self.routes = routes
        # Starlette's rules for If-None-Match / If-Modified-Since (its 304s).
        self._conditions = StaticFiles(directory=self.root, check_dir=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in {"GET", "HEAD"}:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = Headers(scope=scope)
        if "authorization" in headers or "x-user-id" in headers or path.startswith(BACKEND_PATHS):
            await self.app(scope, receive, send)
            return
        page = prefers_html(headers.get("accept"))
        if not page and self._routed(scope):
            await self.app(scope, receive, send)
            return
        found = await anyio.to_thread.run_sync(self._locate, path, page)
        if found is None:
            await self.app(scope, receive, send)
            return
        file, stat = found
        media_type = content_type(file)
        index = file == self.index
        cache = IMMUTABLE if path.startswith("/static/") and not index else REVALIDATE
        extra = {"Cache-Control": cache}
        if file.suffix.lower() == ".html":
            extra["Content-Security-Policy"] = APP_CSP
        scope["route"] = PAGE if index else FILE
        response: Response = FileResponse(
            file, media_type=media_type, headers=extra, stat_result=stat
        )
        if self._conditions.is_not_modified(response.headers, headers):
            response = NotModifiedResponse(response.headers)
        await response(scope, receive, send)

    def _routed(self, scope: Scope) -> bool:
        """Does an API route have this path (whatever its method)?"""
        return any(route.matches(scope)[0] is not Match.NONE for route in self.routes)

    def _locate(self, path: str, page: bool) -> tuple[Path, os.stat_result] | None:
        """The file to answer with and its stat (in a worker thread: file system calls);
        None: the API answers (no such file, or the build went away under us)."""
        file = find_file(self.root, path)
        if file is None and page:
            file = self.index
        if file is None:
            return None
        try:
            return file, os.stat(file)
        except OSError:
            return None
