"""The deployment as PyMongo's SDAM events report it: primary changes, failing heartbeats,
and `snipix_db_up`, which the cache reads (through `available`) to mark what it serves
while the database is down as stale.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog
from pymongo import monitoring
from pymongo.topology_description import TopologyDescription

from snipix.db.monitoring.metrics import DatabaseMetrics

log = structlog.get_logger("snipix.db")

# While a server keeps failing, repeat the heartbeat warning at most this often.
HEARTBEAT_REPEAT_S = 30.0


def _address(address: tuple[str, int | None] | None) -> str | None:
    if address is None:
        return None
    host, port = address
    return f"{host}:{port}" if port is not None else host


def _primary(description: TopologyDescription) -> str | None:
    """The writable server: a replica set's primary, a standalone, or a mongos."""
    for server in description.server_descriptions().values():
        if server.is_writable:
            return _address(server.address)
    return None


@dataclass(slots=True)
class _Failing:
    since: float
    failures: int = 0
    last_logged: float = 0.0


class TopologyMonitor(monitoring.TopologyListener, monitoring.ServerHeartbeatListener):
    """Logs primary changes (INFO; WARNING when there is none) and failing heartbeats.

    A server that stays down fails a heartbeat every half second while operations wait for
    it: the first failure is logged, then one line per HEARTBEAT_REPEAT_S with the count, and
    one `database heartbeat recovered` line when it answers again. Every failure is counted
    in `snipix_db_heartbeat_failures_total`.
    """

    def __init__(
        self, metrics: DatabaseMetrics, *, repeat_after_s: float = HEARTBEAT_REPEAT_S
    ) -> None:
        self.metrics = metrics
        self.repeat_after_s = repeat_after_s
        self._failing: dict[str, _Failing] = {}
        self._closed = False
        # Whether a primary (or standalone) is known: the cache marks what it serves while
        # this is False as stale. True until the driver says otherwise (start-up pinged).
        self.available = True

    # TopologyListener

    def opened(self, event: monitoring.TopologyOpenedEvent) -> None:
        self._closed = False

    def description_changed(self, event: monitoring.TopologyDescriptionChangedEvent) -> None:
        before = _primary(event.previous_description)
        after = _primary(event.new_description)
        self.metrics.up.set(1 if after is not None else 0)
        # Topology events arrive asynchronously: the first ones (before discovery) say
        # "unknown" even after the start-up ping answered. Only losing a known primary
        # means down; finding one means up.
        if after is not None:
            self.available = True
        elif before is not None and event.new_description.server_descriptions():
            self.available = False
        # Closing the client publishes a last change to an empty topology: not an outage (a
        # server that stops answering stays in the description, as Unknown).
        closing = not event.new_description.server_descriptions()
        if before == after or closing or self._closed:
            return
        self.metrics.primary_changes.inc()
        topology = event.new_description.topology_type_name
        if after is None:
            log.warning("database primary lost", previous=before, topology=topology)
        else:
            log.info("database primary changed", previous=before, primary=after, topology=topology)

    def closed(self, event: monitoring.TopologyClosedEvent) -> None:
        self._closed = True
        self.metrics.up.set(0)

    # ServerHeartbeatListener

    def started(self, event: monitoring.ServerHeartbeatStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.ServerHeartbeatSucceededEvent) -> None:
        if not self._failing:
            return
        server = _address(event.connection_id)
        failing = self._failing.pop(server or "", None)
        if failing is not None:
            log.info(
                "database heartbeat recovered",
                server=server,
                failures=failing.failures,
                down_s=round(time.monotonic() - failing.since, 1),
            )

    def failed(self, event: monitoring.ServerHeartbeatFailedEvent) -> None:
        self.metrics.heartbeat_failures.inc()
        if self._closed:
            return
        server = _address(event.connection_id) or ""
        now = time.monotonic()
        failing = self._failing.setdefault(server, _Failing(since=now))
        failing.failures += 1
        if failing.failures > 1 and now - failing.last_logged < self.repeat_after_s:
            return
        failing.last_logged = now
        error = event.reply
        log.warning(
            "database heartbeat failed",
            server=server,
            failures=failing.failures,
            error_class=type(error).__name__,
            # The driver's message names the host and the socket error, never a password
            # (and the redactor masks configured secrets anyway).
            error=str(error)[:300],
            duration_ms=round(event.duration * 1000, 1),
        )
