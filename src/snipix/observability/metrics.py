"""Prometheus metrics: one registry per app, the helpers that declare series in it, and the
app's own series (build, start-up, HTTP requests, the process).

Every app builds its own `Metrics` holder around its own `CollectorRegistry` (tests build
many apps in one process, and a module-level registry would refuse the second one or mix
their counts). Each part of the service declares its own series next to its code, through
this holder's `counter`, `gauge` and `histogram`: the database listeners
(`db/monitoring/metrics.py`), the cache (`cache/metrics.py`), the rate limits
(`security/metrics.py`), sign-ins (`accounts/metrics.py`) and the retry policy (`retry.py`).
The composition roots (the app's lifespan, `services.build_services`, the CLI) build those
from the app's holder and hand them to the code that records, so a part's series, label
vocabulary and recording calls change together, and nothing but this module imports
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
from collections.abc import Sequence
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics import MetricWrapperBase

# Methods the API serves; anything else a client invents is counted as `other`.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# Bucket edges sit on the alert thresholds (200 ms request p95), so `histogram_quantile`
# interpolates inside a bucket that ends exactly there.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# What a declaration is made of: a second declaration of a name must match the first.
_Spec = tuple[type, str, tuple[str, ...], tuple[float, ...] | None]


class Metrics:
    """One app's registry, the declaring helpers every part uses, and the app's own series."""

    def __init__(self, version: str, *, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._declared: dict[str, tuple[_Spec, Any]] = {}

        self.build_info = self.gauge(
            "snipix_build_info",
            "Always 1; the labels say which build is running.",
            ["version", "python"],
        )
        self.build_info.labels(version=version, python=platform.python_version()).set(1)
        self.startup_duration = self.gauge(
            "snipix_startup_duration_seconds",
            "Time the last start-up took: connect, migrations, indexes (0 until it finished).",
        )

        self.http_requests = self.counter(
            "snipix_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
        )
        self.http_duration = self.histogram(
            "snipix_http_request_duration_seconds",
            "HTTP request latency (first byte in to last byte out), by route and status.",
            ["method", "route", "status"],
            buckets=HTTP_BUCKETS,
        )
        self.http_errors = self.counter(
            "snipix_http_errors",
            "Error responses by API error code (the class of error a client sees).",
            ["code"],
        )

        # CPU, memory, open files, start time: under our prefix, in our registry.
        ProcessCollector(namespace="snipix", registry=self.registry)

        # Labelled children of the per-request series, looked up once per label set:
        # `labels()` builds and validates the label tuple under a lock on every call, a
        # measurable share of a cached read. Bounded like the labels themselves.
        self._http_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    # --- declaring -----------------------------------------------------------------------
    #
    # A part declares its series when its composition root builds it, which may happen more
    # than once for one app (a lifespan run again, a second service on the same holder).
    # Declaring a name again with the same kind, labels and buckets gives the series already
    # in the registry, so the counts continue; a different declaration under a taken name is
    # a bug and raises.

    def _declare[M: MetricWrapperBase](
        self,
        kind: type[M],
        name: str,
        documentation: str,
        labels: Sequence[str],
        buckets: Sequence[float] | None = None,
    ) -> M:
        spec: _Spec = (
            kind,
            documentation,
            tuple(labels),
            None if buckets is None else tuple(buckets),
        )
        known = self._declared.get(name)
        if known is not None:
            if known[0] != spec:
                raise ValueError(f"metric {name!r} is already declared differently: {known[0]}")
            series: M = known[1]
            return series
        extra: dict[str, Any] = {} if buckets is None else {"buckets": tuple(buckets)}
        series = kind(name, documentation, list(labels), registry=self.registry, **extra)
        self._declared[name] = (spec, series)
        return series

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        """A counter in this app's registry (exposed as `<name>_total`)."""
        return self._declare(Counter, name, documentation, labels)

    def gauge(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
        """A gauge in this app's registry."""
        return self._declare(Gauge, name, documentation, labels)

    def histogram(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str] = (),
        *,
        buckets: Sequence[float],
    ) -> Histogram:
        """A histogram in this app's registry; its bucket edges are the declaring part's."""
        return self._declare(Histogram, name, documentation, labels, buckets)

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

    def startup_finished(self, seconds: float) -> None:
        self.startup_duration.set(seconds)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


def zeroed[L: str](series: Counter, label: str, values: Sequence[L]) -> dict[L, Counter]:
    """The children of `series` for every value of a fixed vocabulary, created now.

    Present at 0 from the start, so a ratio query has series to divide before the first
    event; and looked up once, not through `labels()` on every event.
    """
    return {value: series.labels(**{label: value}) for value in values}
