"""The cache's series: lookups by outcome, for the hit-ratio alert."""

from __future__ import annotations

from typing import Literal, get_args

from snipix.observability.metrics import Metrics, zeroed

CacheEvent = Literal["hit", "miss", "stale", "error"]
CACHE_EVENTS: tuple[CacheEvent, ...] = get_args(CacheEvent)


class CacheMetrics:
    """`snipix_cache_events_total{kind}`, in the registry of the app the cache serves."""

    def __init__(self, metrics: Metrics) -> None:
        self.events = metrics.counter(
            "snipix_cache_events",
            "Cache lookups by outcome: hit, miss, stale (served while the database is down), "
            "error.",
            ["kind"],
        )
        # Every kind present at 0 from the start, so a hit-ratio query has series to divide;
        # and each child looked up once, not through `labels()` on every lookup.
        self._children = zeroed(self.events, "kind", CACHE_EVENTS)

    def event(self, kind: CacheEvent) -> None:
        """Count one cache lookup outcome (`hit`, `miss`, `stale` or `error`)."""
        child = self._children.get(kind)
        if child is None:
            raise ValueError(f"unknown cache event {kind!r}; expected one of {CACHE_EVENTS}")
        child.inc()
