"""The connection pool as PyMongo's CMAP events report it: for readiness and metrics."""

from __future__ import annotations

from dataclasses import dataclass

from pymongo import monitoring

from snipix.db.monitoring.metrics import DatabaseMetrics


@dataclass
class PoolCounters:
    open_connections: int = 0
    checked_out: int = 0
    waiting: int = 0
    pool_clears: int = 0
    checkout_failures: int = 0


class PoolStats(monitoring.ConnectionPoolListener):
    """Per-process totals over every server's pool (one server for the embedded engine)."""

    def __init__(self, max_pool_size: int, metrics: DatabaseMetrics | None = None) -> None:
        self.max_pool_size = max_pool_size
        self.counters = PoolCounters()
        self.metrics = metrics
        if metrics is not None:
            c = self.counters
            metrics.track_pool(
                max_size=max_pool_size,
                connections=lambda: c.open_connections,
                checked_out=lambda: c.checked_out,
                waiting=lambda: c.waiting,
            )

    def snapshot(self) -> dict[str, int]:
        c = self.counters
        return {
            "open": c.open_connections,
            "checkedOut": c.checked_out,
            "waiting": c.waiting,
            "max": self.max_pool_size,
            "clears": c.pool_clears,
            "checkoutFailures": c.checkout_failures,
        }

    def pool_created(self, event: monitoring.PoolCreatedEvent) -> None:
        pass

    def pool_ready(self, event: monitoring.PoolReadyEvent) -> None:
        pass

    def pool_cleared(self, event: monitoring.PoolClearedEvent) -> None:
        self.counters.pool_clears += 1
        if self.metrics is not None:
            self.metrics.pool_clears.inc()

    def pool_closed(self, event: monitoring.PoolClosedEvent) -> None:
        pass

    def connection_created(self, event: monitoring.ConnectionCreatedEvent) -> None:
        self.counters.open_connections += 1

    def connection_ready(self, event: monitoring.ConnectionReadyEvent) -> None:
        pass

    def connection_closed(self, event: monitoring.ConnectionClosedEvent) -> None:
        self.counters.open_connections = max(0, self.counters.open_connections - 1)

    def connection_check_out_started(
        self, event: monitoring.ConnectionCheckOutStartedEvent
    ) -> None:
        self.counters.waiting += 1

    def connection_check_out_failed(self, event: monitoring.ConnectionCheckOutFailedEvent) -> None:
        self.counters.waiting = max(0, self.counters.waiting - 1)
        self.counters.checkout_failures += 1
        if self.metrics is not None:
            self.metrics.pool_checkout_failures.labels(reason=str(event.reason)).inc()
            if event.duration is not None:
                self.metrics.pool_wait.observe(event.duration)

    def connection_checked_out(self, event: monitoring.ConnectionCheckedOutEvent) -> None:
        self.counters.waiting = max(0, self.counters.waiting - 1)
        self.counters.checked_out += 1
        # PyMongo measures the wait itself (seconds, since 4.7): no clock of ours needed.
        if self.metrics is not None and event.duration is not None:
            self.metrics.pool_wait.observe(event.duration)

    def connection_checked_in(self, event: monitoring.ConnectionCheckedInEvent) -> None:
        self.counters.checked_out = max(0, self.counters.checked_out - 1)
