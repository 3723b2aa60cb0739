"""Rate limits on writes and searches: a FastAPI dependency on every API router.

Writes are POST, PUT, PATCH and DELETE on any route of the API (the original web app's
routes, accounts and media included); searches are `GET /api/v1/projects?q=` and the two
transcript searches. Each is counted per user (the verified identity: token `sub`, or the
local profile's `X-User-Id`), or per client address for a request without a valid identity,
in a moving window of SNIPIX_RATE_LIMIT_WINDOW_S (`security.limiter`: Redis when
configured). Over the limit: 429 `rate_limited` with `Retry-After` (seconds until the
oldest counted request leaves the window), counted in `snipix_rate_limited_total{scope}`.

Why a dependency and not ASGI middleware: the key is the user, who is known only once the
token is verified. A middleware in front of routing would need a second copy of the
authentication code, or could only count addresses (one office behind a NAT would share one
budget). The dependency runs after routing, so a search is recognised by its route template
rather than by a path pattern, and before the endpoint's own dependencies and handler, so a
refused request has changed nothing. It reuses `current_user` (one more signature check,
microseconds) without its 401: a request with no valid identity is counted by address and
then refused by the endpoint as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from fastapi import Depends, Request
from limits import RateLimitItem, RateLimitItemPerSecond

from snipix.api.identity import current_user
from snipix.errors import RateLimited, Unauthorized
from snipix.resources import get_resources
from snipix.security.metrics import RateLimitScope
from snipix.settings import Settings

WRITE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Route templates (the router's, not the raw path) that search; the project list is a
# search only with a non-empty `q`.
SEARCH_ROUTES: Final = frozenset(
    {"/api/v1/transcripts/search", "/api/v1/projects/{project_id}/transcript/search"}
)
PROJECT_LIST_ROUTE: Final = "/api/v1/projects"
NAMESPACE: Final = "snipix-requests"

_WHAT: Final[dict[RateLimitScope, str]] = {
    "write": "changes",
    "search": "searches",
    "login": "",
    "mail": "",
}


def request_scope(request: Request) -> RateLimitScope | None:
    """`write`, `search`, or None for a request no limit applies to."""
    if request.method in WRITE_METHODS:
        return "write"
    if request.method != "GET":
        return None
    route = getattr(request.scope.get("route"), "path", None)
    if route in SEARCH_ROUTES:
        return "search"
    if route == PROJECT_LIST_ROUTE and request.query_params.get("q"):
        return "search"
    return None


@dataclass(frozen=True, slots=True)
class RequestLimits:
    window_s: int
    writes: RateLimitItem | None
    searches: RateLimitItem | None

    def item(self, scope: RateLimitScope) -> RateLimitItem | None:
        return self.writes if scope == "write" else self.searches


@lru_cache(maxsize=16)
def _limits(writes: int, searches: int, window_s: int) -> RequestLimits:
    def item(amount: int) -> RateLimitItem | None:
        # 0 = no limit for that scope.
        return RateLimitItemPerSecond(amount, window_s, namespace=NAMESPACE) if amount else None

    return RequestLimits(window_s, item(writes), item(searches))


def request_limits(settings: Settings) -> RequestLimits:
    return _limits(
        settings.rate_limit_writes, settings.rate_limit_searches, settings.rate_limit_window_s
    )


def client_address(request: Request) -> str:
    """The caller's address. Behind a proxy, `snipix serve` takes it from X-Forwarded-For
    only when the proxy is in SNIPIX_FORWARDED_ALLOW_IPS (else every caller is the proxy)."""
    return request.client.host if request.client is not None else "unknown"


async def _counted_as(request: Request) -> tuple[str, str]:
    try:
        principal = await current_user(request)
    except Unauthorized:
        return "ip", client_address(request)
    return "user", principal.user_id


async def enforce_rate_limit(request: Request) -> None:
    """429 `rate_limited` with Retry-After when this user's (or address's) window is full."""
    scope = request_scope(request)
    if scope is None:
        return
    resources = get_resources(request)
    limits = request_limits(resources.settings)
    item = limits.item(scope)
    if item is None:
        return
    kind, key = await _counted_as(request)
    if await resources.limiter.hit(item, kind, key):
        return
    retry_after = await resources.limiter.retry_after_s(item, kind, key)
    resources.limiter.metrics.refused(scope)
    raise RateLimited(
        f"Too many {_WHAT[scope]}: at most {item.amount:,} in {limits.window_s:,} seconds. "
        f"Try again in {retry_after} seconds.",
        details={
            "scope": scope,
            "limit": item.amount,
            "windowSeconds": limits.window_s,
            "retryAfterSeconds": retry_after,
        },
        headers={"Retry-After": str(retry_after)},
    )


RATE_LIMITED: Final = Depends(enforce_rate_limit)
