"""Database monitoring through PyMongo's monitoring API: pool, commands, topology.

PyMongo keeps its counters private; its events are the supported way to see them. Three
listeners, all registered on the one client of the app (see `app.py`):

- `PoolStats` (CMAP events): pool size, checked-out connections, waiters, wait time, clears
  and failed check-outs, for `/health/ready` and the `snipix_db_pool_*` series.
- `CommandMonitor` (command events): times every command into a histogram by command and
  collection, counts failures, and logs a `slow query` line at or above SLOW_QUERY_MS
  naming the command, collection, duration and the query's *shape*: field names and
  operators, every value replaced by its BSON type (`{"owner": "<string>"}`), so no document
  content ever reaches a log.
- `TopologyMonitor` (SDAM events): logs primary changes and failing heartbeats, and keeps
  `snipix_db_up` for the "database down" alert.

Callbacks run on the driver's hot path (in the task that sent the command), so they count
and return; the only per-command work beyond counting is a dict insert and pop. The shape is
computed only for a command that turned out to be slow.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import structlog
from bson import Binary, Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.dbref import DBRef
from pymongo import monitoring
from pymongo.topology_description import TopologyDescription

from snipix.observability.metrics import Metrics

log = structlog.get_logger("snipix.db")


@dataclass
class PoolCounters:
    open_connections: int = 0
    checked_out: int = 0
    waiting: int = 0
    pool_clears: int = 0
    checkout_failures: int = 0


class PoolStats(monitoring.ConnectionPoolListener):
    """Per-process totals over every server's pool (one server for the embedded engine)."""

    def __init__(self, max_pool_size: int, metrics: Metrics | None = None) -> None:
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


# --- query shapes --------------------------------------------------------------------------

# Keys the driver adds to every command: bookkeeping, not the query.
_DRIVER_KEYS = frozenset(
    {
        "lsid",
        "$clusterTime",
        "$db",
        "$readPreference",
        "txnNumber",
        "autocommit",
        "startTransaction",
        "readConcern",
        "writeConcern",
        "apiVersion",
        "apiStrict",
        "apiDeprecationErrors",
        "signature",
    }
)
SHAPE_MAX_CHARS = 1_000
_SHAPE_MAX_DEPTH = 12
# Nodes visited before the rest is elided: an insert of a 1 MB timeline stays cheap to shape.
_SHAPE_MAX_NODES = 400
# A list shows the shapes of its first few elements and how many more there were.
_LIST_SHOWN = 3
_ELIDED = "<...>"

_TYPE_NAMES: tuple[tuple[type | tuple[type, ...], str], ...] = (
    # bool before int: bool is an int subclass. Names are MongoDB's $type aliases.
    (bool, "bool"),
    (Int64, "long"),
    (int, "int"),
    (float, "double"),
    (str, "string"),
    (ObjectId, "objectId"),
    (datetime, "date"),
    ((bytes, Binary, uuid.UUID), "binData"),
    ((Decimal128, Decimal), "decimal"),
    ((Regex, re.Pattern), "regex"),
    (Timestamp, "timestamp"),
    (Code, "javascript"),
    (DBRef, "dbPointer"),
    (MinKey, "minKey"),
    (MaxKey, "maxKey"),
)


def _placeholder(value: Any) -> str:
    if value is None:
        return "<null>"
    for kinds, name in _TYPE_NAMES:
        if isinstance(value, kinds):
            return f"<{name}>"
    # An unexpected type: its class name, never its value.
    return f"<{type(value).__name__}>"


class _Budget:
    __slots__ = ("left",)

    def __init__(self, nodes: int) -> None:
        self.left = nodes


def _shape(value: Any, depth: int, budget: _Budget) -> Any:
    budget.left -= 1
    if budget.left < 0 or depth > _SHAPE_MAX_DEPTH:
        return _ELIDED
    if isinstance(value, Mapping):
        # Keys are field names and operators ($gt, $set, ...): kept. Values: replaced.
        shaped: dict[str, Any] = {}
        for key, item in value.items():
            if budget.left <= 0:
                # Stop walking (a 1 MB document costs no more than a small one).
                shaped[_ELIDED] = _ELIDED
                break
            shaped[str(key)] = _shape(item, depth + 1, budget)
        return shaped
    if isinstance(value, list | tuple):
        shown = [_shape(item, depth + 1, budget) for item in value[:_LIST_SHOWN]]
        if len(value) > _LIST_SHOWN:
            shown.append(f"<+{len(value) - _LIST_SHOWN} more>")
        return shown
    return _placeholder(value)


def query_shape(command: Mapping[str, Any], command_name: str) -> str:
    """The command without its values: `{"filter": {"owner": "<string>"}, "limit": "<int>"}`.

    Field names and operators stay (they say which index a query needs); every value becomes
    its BSON type, recursively, so a filter on a token or an inserted document's text never
    reaches the log. The command-name key (its value is the collection, logged on its own)
    and the driver's bookkeeping keys are dropped. Long shapes are cut at SHAPE_MAX_CHARS.
    """
    budget = _Budget(_SHAPE_MAX_NODES)
    body = {
        str(key): _shape(value, 1, budget)
        for key, value in command.items()
        if key != command_name and key not in _DRIVER_KEYS
    }
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    if len(text) > SHAPE_MAX_CHARS:
        text = text[: SHAPE_MAX_CHARS - 3] + "..."
    return text


# --- commands ------------------------------------------------------------------------------

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
        metrics: Metrics,
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
        self.metrics.db_command(event.command_name, collection, micros / 1_000_000)
        if error_class is not None:
            self.metrics.db_command_error(event.command_name, error_class)
        if micros < self.slow_query_micros:
            return
        self.metrics.db_slow_command(event.command_name, collection)
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


# --- topology ------------------------------------------------------------------------------

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

    def __init__(self, metrics: Metrics, *, repeat_after_s: float = HEARTBEAT_REPEAT_S) -> None:
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
        self.metrics.db_up.set(1 if after is not None else 0)
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
        self.metrics.db_primary_changes.inc()
        topology = event.new_description.topology_type_name
        if after is None:
            log.warning("database primary lost", previous=before, topology=topology)
        else:
            log.info("database primary changed", previous=before, primary=after, topology=topology)

    def closed(self, event: monitoring.TopologyClosedEvent) -> None:
        self._closed = True
        self.metrics.db_up.set(0)

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
        self.metrics.db_heartbeat_failures.inc()
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
