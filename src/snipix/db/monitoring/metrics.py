"""The database's series: commands, topology and the connection pool.

Declared here, beside the listeners that record them, and built once per app from its
`Metrics` holder by the composition root, which hands the one instance to every listener.
"""

from __future__ import annotations

from collections.abc import Callable

from snipix.observability.metrics import Metrics

# Bucket edges sit on the alert thresholds (100 ms pool wait), so `histogram_quantile`
# interpolates inside a bucket that ends exactly there.
DB_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
POOL_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class DatabaseMetrics:
    """Every `snipix_db_*` series, in the registry of the app the listeners belong to."""

    def __init__(self, metrics: Metrics) -> None:
        self.commands = metrics.histogram(
            "snipix_db_command_duration_seconds",
            "Database command latency as the driver measured it, by command and collection.",
            ["command", "collection"],
            buckets=DB_BUCKETS,
        )
        self.command_errors = metrics.counter(
            "snipix_db_command_errors",
            "Database commands that failed, by command and error class (codeName or "
            "driver exception).",
            ["command", "error_class"],
        )
        self.slow_commands = metrics.counter(
            "snipix_db_slow_commands",
            "Database commands at or above SLOW_QUERY_MS (each also logged as `slow query`).",
            ["command", "collection"],
        )
        self.up = metrics.gauge(
            "snipix_db_up",
            "1 while the driver knows a writable database server (the primary), else 0.",
        )
        self.primary_changes = metrics.counter(
            "snipix_db_primary_changes",
            "Times the writable server changed (elections, losses, recoveries).",
        )
        self.heartbeat_failures = metrics.counter(
            "snipix_db_heartbeat_failures",
            "Failed driver heartbeats to a database server.",
        )

        self.pool_connections = metrics.gauge(
            "snipix_db_pool_connections",
            "Open connections in the database pool (all servers).",
        )
        self.pool_checked_out = metrics.gauge(
            "snipix_db_pool_checked_out",
            "Database connections in use by an operation right now.",
        )
        self.pool_waiting = metrics.gauge(
            "snipix_db_pool_waiting",
            "Operations waiting for a database connection right now.",
        )
        self.pool_max = metrics.gauge(
            "snipix_db_pool_max_size",
            "The pool's size limit (MONGODB_MAX_POOL_SIZE).",
        )
        self.pool_wait = metrics.histogram(
            "snipix_db_pool_wait_seconds",
            "Time an operation waited to check a connection out (failed waits included).",
            buckets=POOL_WAIT_BUCKETS,
        )
        self.pool_clears = metrics.counter(
            "snipix_db_pool_clears",
            "Times the driver cleared a pool (a server error or a failed heartbeat).",
        )
        self.pool_checkout_failures = metrics.counter(
            "snipix_db_pool_checkout_failures",
            "Connection check-outs that failed, by reason (timeout, connectionError, ...).",
            ["reason"],
        )

    # --- recording API -------------------------------------------------------------------

    def command(self, command: str, collection: str, seconds: float) -> None:
        self.commands.labels(command=command, collection=collection).observe(seconds)

    def command_error(self, command: str, error_class: str) -> None:
        self.command_errors.labels(command=command, error_class=error_class).inc()

    def slow_command(self, command: str, collection: str) -> None:
        self.slow_commands.labels(command=command, collection=collection).inc()

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
