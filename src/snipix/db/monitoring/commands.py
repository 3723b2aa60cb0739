"""Command timing through PyMongo's command events, and the `slow query` line.

Every command is timed into a histogram by command and collection and failures are counted
by error class; a command at or above SLOW_QUERY_MS is logged with its shape
(`query_shape`), never its values. Collection labels are capped, so a bug that invents
collection names cannot grow the series count.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from pymongo import monitoring

from snipix.db.monitoring.metrics import DatabaseMetrics
from snipix.db.monitoring.query_shape import query_shape

log = structlog.get_logger("snipix.db")

NO_COLLECTION = "<none>"
OTHER_COLLECTION = "<other>"
UNKNOWN_COLLECTION = "<unknown>"
# Commands remembered between started and succeeded/failed. A command always ends with one
# of the two, but one cancelled mid-flight may not: past this, the oldest entries go.
MAX_PENDING_COMMANDS = 10_000
# Distinct collection label values; the service has a fixed set, this is a guard.
MAX_COLLECTION_LABELS = 200


def _collection_of(command: Mapping[str, Any], command_name: str) -> str | None:
    target = command.get(command_name)
    if isinstance(target, str):
        return target
    # getMore names its collection separately (its first value is the cursor id).
    collection = command.get("collection")
    return collection if isinstance(collection, str) else None


def _error_class(failure: Mapping[str, Any]) -> str:
    """Server errors carry `codeName`; driver errors (network, timeout) carry `errtype`."""
    for key in ("codeName", "errtype"):
        value = failure.get(key)
        if isinstance(value, str) and value:
            return value
    code = failure.get("code")
    return f"code_{code}" if isinstance(code, int) else "unknown"


@dataclass(slots=True)
class _Started:
    collection: str
    command: Mapping[str, Any]


class CommandMonitor(monitoring.CommandListener):
    """Times every command; logs the slow ones with their shape, never their values.

    `slow_query_ms` is SLOW_QUERY_MS: a command taking at least that long is logged (at
    WARNING, event `slow query`), so 0 logs every command (for a debugging session, not for
    production). Durations are PyMongo's own (`duration_micros`): from sending the command
    to decoding its reply, excluding the wait for a connection (that is the pool's metric).
    """

    def __init__(
        self,
        metrics: DatabaseMetrics,
        *,
        slow_query_ms: int,
        max_pending: int = MAX_PENDING_COMMANDS,
    ) -> None:
        self.metrics = metrics
        self.slow_query_micros = slow_query_ms * 1000
        self.max_pending = max_pending
        self._pending: OrderedDict[tuple[Any, int], _Started] = OrderedDict()
        self._collections: set[str] = set()

    @property
    def pending(self) -> int:
        """Commands started and not yet finished (bounded by `max_pending`)."""
        return len(self._pending)

    def _label(self, collection: str | None) -> str:
        if collection is None:
            return NO_COLLECTION
        if collection in self._collections:
            return collection
        if len(self._collections) >= MAX_COLLECTION_LABELS:
            return OTHER_COLLECTION
        self._collections.add(collection)
        return collection

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        command = event.command
        collection = self._label(_collection_of(command, event.command_name))
        # A reference, not a copy: the shape is computed only if the command is slow.
        self._pending[(event.connection_id, event.request_id)] = _Started(collection, command)
        while len(self._pending) > self.max_pending:
            self._pending.popitem(last=False)

    def _finished(
        self,
        event: monitoring.CommandSucceededEvent | monitoring.CommandFailedEvent,
        error_class: str | None,
    ) -> None:
        started = self._pending.pop((event.connection_id, event.request_id), None)
        collection = started.collection if started is not None else UNKNOWN_COLLECTION
        micros = event.duration_micros
        self.metrics.command(event.command_name, collection, micros / 1_000_000)
        if error_class is not None:
            self.metrics.command_error(event.command_name, error_class)
        if micros < self.slow_query_micros:
            return
        self.metrics.slow_command(event.command_name, collection)
        shape = (
            query_shape(started.command, event.command_name)
            if started is not None
            else UNKNOWN_COLLECTION
        )
        log.warning(
            "slow query",
            command=event.command_name,
            collection=collection,
            database=event.database_name,
            duration_ms=round(micros / 1000, 2),
            threshold_ms=self.slow_query_micros // 1000,
            shape=shape,
            outcome="failed" if error_class is not None else "ok",
            error_class=error_class,
        )

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._finished(event, None)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        failure = event.failure if isinstance(event.failure, Mapping) else {}
        self._finished(event, _error_class(failure))
