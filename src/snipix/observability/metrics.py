"""Prometheus metrics: one registry per app, and the few calls that record into it.

Every app builds its own `CollectorRegistry` (tests build many apps in one process, and a
module-level registry would refuse the second one or mix their counts). Code that records
gets the `Metrics` object it belongs to (the request middleware, the PyMongo listeners,
later the cache and the retry policy) and calls a method; nothing else imports
`prometheus_client`.

Label values are bounded on purpose: routes are templates (`<unmatched>` for unknown paths),
methods outside the usual set are `other`, error codes come from the API's fixed vocabulary,
and collection names are capped by the database listener. A scanner or a typo cannot grow
the series count.

`GET /metrics` serves the registry in the Prometheus text format, without authentication
(Prometheus scrapes it) and outside the OpenAPI schema: restrict it at the network or proxy.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from typing import Literal, get_args

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

CacheEvent = Literal["hit", "miss", "stale", "error"]
CACHE_EVENTS: tuple[CacheEvent, ...] = get_args(CacheEvent)

# Why a sign-in failed (accounts). An unknown email and a wrong password are one
# reason on purpose: /metrics is unauthenticated, and two series would tell a scraper
# whether an email has an account.
LoginFailure = Literal["bad_credentials", "rate_limited", "inactive"]
LOGIN_FAILURES: tuple[LoginFailure, ...] = get_args(LoginFailure)

# What a rate limit refused (hardening): writes and searches per user or address,
# and sign-ins refused by the login failure limit.
RateLimitScope = Literal["write", "search", "login"]
RATE_LIMIT_SCOPES: tuple[RateLimitScope, ...] = get_args(RateLimitScope)

# Methods the API serves; anything else a client invents is counted as `other`.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# Bucket edges sit on the alert thresholds (200 ms request p95, 100 ms pool wait), so
# `histogram_quantile` interpolates inside a bucket that ends exactly there.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
DB_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
POOL_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """Every series the service exposes, in one registry owned by one app."""

    def __init__(self, version: str, *, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry

        self.build_info = Gauge(
            "snipix_build_info",
            "Always 1; the labels say which build is running.",
            ["version", "python"],
            registry=r,
        )
        self.build_info.labels(version=version, python=platform.python_version()).set(1)
        self.startup_duration = Gauge(
            "snipix_startup_duration_seconds",
            "Time the last start-up took: connect, migrations, indexes (0 until it finished).",
            registry=r,
        )

        self.http_requests = Counter(
            "snipix_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "snipix_http_request_duration_seconds",
            "HTTP request latency (first byte in to last byte out), by route and status.",
            ["method", "route", "status"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.http_errors = Counter(
            "snipix_http_errors",
            "Error responses by API error code (the class of error a client sees).",
            ["code"],
            registry=r,
        )

        self.db_commands = Histogram(
            "snipix_db_command_duration_seconds",
            "Database command latency as the driver measured it, by command and collection.",
            ["command", "collection"],
            buckets=DB_BUCKETS,
            registry=r,
        )
        self.db_command_errors = Counter(
            "snipix_db_command_errors",
            "Database commands that failed, by command and error class (codeName or "
            "driver exception).",
            ["command", "error_class"],
            registry=r,
        )
        self.db_slow_commands = Counter(
            "snipix_db_slow_commands",
            "Database commands at or above SLOW_QUERY_MS (each also logged as `slow query`).",
            ["command", "collection"],
            registry=r,
        )
        self.db_up = Gauge(
            "snipix_db_up",
            "1 while the driver knows a writable database server (the primary), else 0.",
            registry=r,
        )
        self.db_primary_changes = Counter(
            "snipix_db_primary_changes",
            "Times the writable server changed (elections, losses, recoveries).",
            registry=r,
        )
        self.db_heartbeat_failures = Counter(
            "snipix_db_heartbeat_failures",
            "Failed driver heartbeats to a database server.",
            registry=r,
        )

        self.pool_connections = Gauge(
            "snipix_db_pool_connections",
            "Open connections in the database pool (all servers).",
            registry=r,
        )
        self.pool_checked_out = Gauge(
            "snipix_db_pool_checked_out",
            "Database connections in use by an operation right now.",
            registry=r,
        )
        self.pool_waiting = Gauge(
            "snipix_db_pool_waiting",
            "Operations waiting for a database connection right now.",
            registry=r,
        )
        self.pool_max = Gauge(
            "snipix_db_pool_max_size",
            "The pool's size limit (MONGODB_MAX_POOL_SIZE).",
            registry=r,
        )
        self.pool_wait = Histogram(
            "snipix_db_pool_wait_seconds",
            "Time an operation waited to check a connection out (failed waits included).",
            buckets=POOL_WAIT_BUCKETS,
            registry=r,
        )
        self.pool_clears = Counter(
            "snipix_db_pool_clears",
            "Times the driver cleared a pool (a server error or a failed heartbeat).",
            registry=r,
        )
        self.pool_checkout_failures = Counter(
            "snipix_db_pool_checkout_failures",
            "Connection check-outs that failed, by reason (timeout, connectionError, ...).",
            ["reason"],
            registry=r,
        )

        self.cache_events = Counter(
            "snipix_cache_events",
            "Cache lookups by outcome: hit, miss, stale (served while the database is down), "
            "error.",
            ["kind"],
            registry=r,
        )
        for kind in CACHE_EVENTS:
            # Present at 0 from the start, so a hit-ratio query has series to divide.
            self.cache_events.labels(kind=kind)
        self.retries = Counter(
            "snipix_retries",
            "Operations the service retried, by operation and the error that caused it.",
            ["operation", "error_class"],
            registry=r,
        )

        self.login_failures = Counter(
            "snipix_login_failures",
            "Failed sign-ins by reason: bad_credentials (unknown email or wrong password), "
            "rate_limited, inactive (accounts).",
            ["reason"],
            registry=r,
        )
        for reason in LOGIN_FAILURES:
            self.login_failures.labels(reason=reason)

        # Hardening.
        self.rate_limited = Counter(
            "snipix_rate_limited",
            "Requests refused with 429 by a rate limit, by scope: write, search, login.",
            ["scope"],
            registry=r,
        )
        for scope in RATE_LIMIT_SCOPES:
            self.rate_limited.labels(scope=scope)
        self.rate_limit_storage_errors = Counter(
            "snipix_rate_limit_storage_errors",
            "Rate limit calls to Redis that failed (the limit was then counted in process).",
            registry=r,
        )
        self.rate_limit_fallback = Gauge(
            "snipix_rate_limit_fallback",
            "1 while Redis is configured but unreachable, so rate limits count per process.",
            registry=r,
        )

        # CPU, memory, open files, start time: under our prefix, in our registry.
        ProcessCollector(namespace="snipix", registry=r)

        # Labelled children of the per-request series, looked up once per label set:
        # `labels()` builds and validates the label tuple under a lock on every call, a
        # measurable share of a cached read. Bounded like the labels themselves.
        self._http_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._cache_children = {kind: self.cache_events.labels(kind=kind) for kind in CACHE_EVENTS}

    # --- recording API -------------------------------------------------------------------

    def http_request(
        self,
        method: str,
        route: str,
        status: int,
        seconds: float,
        *,
        error_code: str | None = None,
    ) -> None:
        """One answered request; `route` must be the template (or `<unmatched>`)."""
        method = method if method in HTTP_METHODS else "other"
        children = self._http_children.get((method, route, status))
        if children is None:
            labels = {"method": method, "route": route, "status": str(status)}
            children = (self.http_requests.labels(**labels), self.http_duration.labels(**labels))
            self._http_children[(method, route, status)] = children
        children[0].inc()
        children[1].observe(seconds)
        if status >= 400:
            self.http_errors.labels(code=error_code or f"http_{status}").inc()

    def db_command(self, command: str, collection: str, seconds: float) -> None:
        self.db_commands.labels(command=command, collection=collection).observe(seconds)

    def db_command_error(self, command: str, error_class: str) -> None:
        self.db_command_errors.labels(command=command, error_class=error_class).inc()

    def db_slow_command(self, command: str, collection: str) -> None:
        self.db_slow_commands.labels(command=command, collection=collection).inc()

    def track_pool(
        self,
        *,
        max_size: int,
        connections: Callable[[], float],
        checked_out: Callable[[], float],
        waiting: Callable[[], float],
    ) -> None:
        """Read the pool gauges from the pool listener's counters at scrape time."""
        self.pool_max.set(max_size)
        self.pool_connections.set_function(connections)
        self.pool_checked_out.set_function(checked_out)
        self.pool_waiting.set_function(waiting)

    def cache_event(self, kind: CacheEvent) -> None:
        """Count one cache lookup outcome (`hit`, `miss` or `error`)."""
        child = self._cache_children.get(kind)
        if child is None:
            raise ValueError(f"unknown cache event {kind!r}; expected one of {CACHE_EVENTS}")
        child.inc()

    def retry(self, operation: str, error_class: str) -> None:
        """Count one retry of `operation` (a fixed name in code) after `error_class`."""
        self.retries.labels(operation=operation, error_class=error_class).inc()

    def login_failed(self, reason: LoginFailure) -> None:
        """Count one refused sign-in (accounts)."""
        self.login_failures.labels(reason=reason).inc()

    def rate_limit_refused(self, scope: RateLimitScope) -> None:
        """Count one request refused by a rate limit (hardening)."""
        self.rate_limited.labels(scope=scope).inc()

    def rate_limit_storage_failed(self) -> None:
        self.rate_limit_storage_errors.inc()

    def rate_limit_degraded(self, degraded: bool) -> None:
        self.rate_limit_fallback.set(1 if degraded else 0)

    def startup_finished(self, seconds: float) -> None:
        self.startup_duration.set(seconds)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics_endpoint(request: Request) -> Response:
    """Prometheus scrape target; no auth (restrict it at the network), not in OpenAPI."""
    metrics: Metrics = request.app.state.metrics
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
