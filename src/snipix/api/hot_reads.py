"""The hot-read lane: `GET` of a project or its timeline answered from process memory.

Opening a project is the editor's most frequent request, and on a cache hit the answer is
bytes the process already holds. FastAPI's routing and dependency resolution cost more
than everything else such a request does (docs/decisions.md, "Performance"), so this
middleware, inside the request-context and security middleware (request id, access
line, metrics and headers as for every request), answers those requests itself:

- only `GET /api/v1/projects/{id}` and `GET /api/v1/projects/{id}/timeline` with no query
  string, no body and at most one short `If-None-Match`;
- only when the caller is authenticated (`api.identity.authenticate`, the same function,
  session generation check included, and the same per-request outcome the routes use)
  and `Cache.peek` holds a fresh entry of that caller (for the timeline: the project's
  too, the route's access check);
- with the route's own answer (`api.representations.json_response`: ETag, X-Cache, 304).

Anything else, a miss, a 401 or an id the route would refuse included, goes on to the
app unchanged, which answers it as before: this lane never produces an error. The route
is recorded in the scope as the router would, so the access line and the metrics name it.
`tests/api/test_hot_reads.py` holds both paths to the same answers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from starlette.datastructures import Headers
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from snipix.api.identity import authenticate
from snipix.api.representations import IF_NONE_MATCH_MAX, json_response
from snipix.cache.service import Loaded
from snipix.projects.schemas import PROJECT_ID_PATTERN
from snipix.projects.service import CACHED_PROJECT
from snipix.resources import Resources
from snipix.timelines.service import CACHED_TIMELINE

PROJECT_ROUTE: Final = "/api/v1/projects/{project_id}"
TIMELINE_ROUTE: Final = "/api/v1/projects/{project_id}/timeline"
# The routes' own id pattern, so the lane takes no id the routes would refuse.
_PATH: Final = re.compile(
    rf"/api/v1/projects/({PROJECT_ID_PATTERN.removeprefix('^').removesuffix('$')})(/timeline)?"
)


class HotReadsMiddleware:
    """Answer cached project and timeline reads before routing; pass everything else on."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        by_path = {
            getattr(route, "path", None): route
            for route in routes
            if "GET" in (getattr(route, "methods", None) or ())
        }
        self._project_route = by_path[PROJECT_ROUTE]
        self._timeline_route = by_path[TIMELINE_ROUTE]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and not scope["query_string"]:
            match = _PATH.fullmatch(scope["path"])
            if match is not None and await self._answer(scope, receive, send, match):
                return
        await self.app(scope, receive, send)

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, match: re.Match[str]
    ) -> bool:
        state = scope.get("state")
        resources = state.get("resources") if isinstance(state, dict) else None
        if state is None or not isinstance(resources, Resources):
            return False
        headers = Headers(scope=scope)
        if "content-length" in headers or "transfer-encoding" in headers:
            return False
        conditions = headers.getlist("if-none-match")
        if len(conditions) > 1 or (conditions and len(conditions[0]) > IF_NONE_MATCH_MAX):
            return False
        try:
            principal = await authenticate(resources, state, headers)
        except Exception:  # noqa: BLE001 (a 401, or a 503 of the session check: the app's to answer)
            return False
        project_id, timeline = match.group(1), match.group(2)
        cache = resources.cache
        found: Loaded | None = cache.peek(CACHED_PROJECT, project_id, principal.user_id)
        route = self._project_route
        if found is not None and timeline:
            found = cache.peek(CACHED_TIMELINE, project_id, principal.user_id)
            route = self._timeline_route
        if found is None:
            return False
        # Counted as the route counts: one hit per entry it looked up.
        for _ in range(2 if timeline else 1):
            cache.hit()
        scope["route"] = route
        response = json_response(
            found.payload,
            version=found.version,
            if_none_match=conditions[0] if conditions else None,
        )
        await response(scope, receive, send)
        return True
