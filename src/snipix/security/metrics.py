"""The rate limits' series: refusals by scope, and the state of their Redis storage."""

from __future__ import annotations

from typing import Literal, get_args

from snipix.observability.metrics import Metrics, zeroed

# What a rate limit refused: writes and searches per user or address (the request
# dependency), sign-ins refused by the login failure limit, and requests for verification
# or reset mail refused by the mail limits (accounts).
RateLimitScope = Literal["write", "search", "login", "mail"]
RATE_LIMIT_SCOPES: tuple[RateLimitScope, ...] = get_args(RateLimitScope)


class RateLimitMetrics:
    """The `snipix_rate_limit*` series, in the registry of the app the limiter serves."""

    def __init__(self, metrics: Metrics) -> None:
        self.rate_limited = metrics.counter(
            "snipix_rate_limited",
            "Requests refused with 429 by a rate limit, by scope: write, search, login, mail.",
            ["scope"],
        )
        # Every scope present at 0 from the start.
        zeroed(self.rate_limited, "scope", RATE_LIMIT_SCOPES)
        self.storage_errors = metrics.counter(
            "snipix_rate_limit_storage_errors",
            "Rate limit calls to Redis that failed (the limit was then counted in process).",
        )
        self.fallback = metrics.gauge(
            "snipix_rate_limit_fallback",
            "1 while Redis is configured but unreachable, so rate limits count per process.",
        )

    def refused(self, scope: RateLimitScope) -> None:
        """Count one request refused by a rate limit."""
        self.rate_limited.labels(scope=scope).inc()

    def storage_failed(self) -> None:
        self.storage_errors.inc()

    def degraded(self, degraded: bool) -> None:
        self.fallback.set(1 if degraded else 0)
