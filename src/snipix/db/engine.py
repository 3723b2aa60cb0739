"""The embedded MongoDB-compatible engine, served like a local `mongod`.

mongoeco's SQLite engine behind its wire-protocol proxy: the service (and any tool) reaches
it with the same PyMongo client it uses for Atlas, so there is one database code path. It
runs as its own process (`snipix engine`), so the service can be restarted without
restarting the database and the database can be stopped under a running service (which is
how the fault tests exercise reconnection).

Every override of mongoeco's private internals lives in this module, each pinned by a
contract test (tests/db/test_engine_contract.py) and described in docs/engine.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import signal
import sqlite3
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import structlog
from bson import ObjectId
from mongoeco.change_streams import ChangeStreamHub
from mongoeco.core.filtering import QueryEngine
from mongoeco.core.identity import id_contains_numeric_value
from mongoeco.core.query_plan import AndCondition, EqualsCondition, QueryNode
from mongoeco.engines._sqlite_outbox import checkpoint_consumer as _checkpoint_consumer
from mongoeco.engines._sqlite_outbox import outbox_info as _outbox_info
from mongoeco.engines.sqlite import SQLiteEngine
from mongoeco.wire.proxy import AsyncMongoEcoProxyServer

from snipix.db.engine_record import DATA_FILE, DataDirLock, EngineRecord, EngineStartError

log = structlog.get_logger(__name__)


class _WatcherAwareHub(ChangeStreamHub):
    """The proxy's change-stream hub, telling the engine when streams start to watch.

    While no stream watches, `DurableSQLiteEngine` skips change dispatch; the first
    stream to open first fast-forwards the outbox consumers past what was committed
    before it, so it sees the changes made after it opened and only those.
    """

    def __init__(self, engine: DurableSQLiteEngine) -> None:
        super().__init__()
        self._engine = engine

    def register_watcher(self) -> None:
        if self.watcher_count == 0:
            newest = self._engine.fast_forward_change_consumers()
            self.align_commit_sequence(newest + 1)
        super().register_watcher()


class DurableSQLiteEngine(SQLiteEngine):
    """SQLiteEngine with `synchronous=FULL`: an acknowledged write survives power loss.

    mongoeco opens its WAL database with `synchronous=NORMAL`, which survives a process
    crash but may drop the last commits on an OS crash or power cut. Editors must never
    lose acknowledged work, so every commit is fsynced; the cost is write latency on the
    local default only (Atlas has its own journal).
    """

    def __init__(self, path: str, **options: Any) -> None:
        super().__init__(path, **options)
        self.change_hub = _WatcherAwareHub(self)
        self.change_dispatches_skipped = 0

    def _create_sqlite_connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection = super()._create_sqlite_connection()
        connection.execute("PRAGMA synchronous=FULL")
        return connection

    def dispatch_committed_changes(self, consumer_id: str, consumer: Callable[[Any], None]) -> None:
        # mongoeco runs this after every write, on the event loop, and it commits four
        # control transactions (lease, checkpoint, prune, release) even when no change
        # stream is open: every change is then a "gap" no one will read. With no watcher
        # there is nothing to deliver; the outbox stays bounded by its own capacity prune
        # and the first watcher fast-forwards past the backlog (`_WatcherAwareHub`).
        if not self.change_hub.should_publish_events():
            self.change_dispatches_skipped += 1
            return
        super().dispatch_committed_changes(consumer_id, consumer)

    def fast_forward_change_consumers(self) -> int:
        """Move every registered consumer's checkpoint to the newest outbox sequence.

        Called when the first change stream opens after dispatches were skipped: what
        the outbox holds was committed before the stream existed, so the stream must not
        see it (as MongoDB: a stream sees changes after it opens); delivering it one
        change (and one commit) at a time would only produce gaps. Returns that sequence.
        """
        with self._lock:
            consumers = list(self._registered_change_consumers)
        with self._change_delivery_storage() as conn:
            newest = int(_outbox_info(conn)["newestSequence"])
            for consumer_id in consumers:
                # A consumer whose registration expired registers again on its next
                # write, at the newest sequence.
                with contextlib.suppress(RuntimeError):
                    _checkpoint_consumer(conn, consumer_id, newest)
            conn.commit()
        with self._lock:
            for consumer_id in consumers:
                self._change_outbox_checkpoints[consumer_id] = newest
        return newest

    def _runtime_diagnostics_info(self) -> dict[str, object]:
        info: dict[str, object] = dict(super()._runtime_diagnostics_info())
        info["changeDispatchesSkipped"] = self.change_dispatches_skipped
        return info

    def _validate_document_against_unique_indexes(
        self,
        db_name: str,
        coll_name: str,
        document: dict[str, Any],
        *,
        exclude_storage_key: str | None = None,
        skip_id_check: bool = False,
        scan_payload_id: bool = False,
    ) -> None:
        # mongoeco 4.11 makes every insert compare its `_id` with the `_id` of every stored
        # document (numeric ids need it: 1, 1.0 and Int64(1) are the same key), so an insert
        # costs O(collection): 15 ms at 1,000 documents, 150 ms at 10,000. For any other id
        # (our string and ObjectId ids) the exact storage-key lookup mongoeco also does is
        # the whole check, so the scan is skipped.
        if scan_payload_id and "_id" in document and not id_contains_numeric_value(document["_id"]):
            scan_payload_id = False
        super()._validate_document_against_unique_indexes(
            db_name,
            coll_name,
            document,
            exclude_storage_key=exclude_storage_key,
            skip_id_check=skip_id_check,
            scan_payload_id=scan_payload_id,
        )

    def _select_first_document_for_plan(
        self,
        db_name: str,
        coll_name: str,
        plan: QueryNode,
        *,
        hint: Any = None,
        context: Any = None,
    ) -> tuple[str, dict[str, Any]] | None:
        # mongoeco reads one document by its primary key only for a bare `_id` equality;
        # `{_id, version, pending...}` (a timeline claim or commit, a conditional project
        # update) fell back to decoding and matching every document of the collection: a
        # head update cost 3.4 s at 10,000 timelines (issue 11). With an `_id` equality
        # among the conjuncts, the one candidate is read by key and the whole filter is
        # matched against it, as MongoDB does (IDHACK, then the filter); None means no
        # document matches, as for a bare `_id`.
        id_term = _id_conjunct(plan)
        if id_term is None:
            return super()._select_first_document_for_plan(
                db_name, coll_name, plan, hint=hint, context=context
            )
        found = super()._select_first_document_for_plan(
            db_name, coll_name, id_term, hint=hint, context=context
        )
        if found is None or not QueryEngine.match_plan(found[1], plan):
            return None
        return found


class DurableProxyServer(AsyncMongoEcoProxyServer):
    """mongoeco's wire proxy, serving with the engine's change-stream hub."""

    def __init__(self, *, engine: DurableSQLiteEngine, host: str, port: int) -> None:
        super().__init__(engine=engine, host=host, port=port)
        # mongoeco's client makes its own hub in __init__; databases and collections take
        # the client's hub when first used, so swapping it before serving reaches them all.
        self._client._change_hub = engine.change_hub


def _id_conjunct(plan: QueryNode) -> EqualsCondition | None:
    """The `_id` equality of an AND filter (a scalar id), if it has one."""
    if not isinstance(plan, AndCondition):
        return None
    for clause in plan.clauses:
        if (
            isinstance(clause, EqualsCondition)
            and clause.field == "_id"
            # Strings and ObjectIds: one storage key each (numeric ids have equivalents).
            and isinstance(clause.value, str | ObjectId)
        ):
            return clause
    return None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _watch_parent(parent_pid: int, stop: asyncio.Event) -> asyncio.Task[None]:
    """Stop when the process that started us is gone, so no engine is ever orphaned."""

    async def watch() -> None:
        while not stop.is_set():
            if os.getppid() != parent_pid:
                log.warning("engine parent exited; stopping", parent_pid=parent_pid)
                stop.set()
                return
            await asyncio.sleep(0.5)

    return asyncio.create_task(watch(), name="engine-parent-watch")


async def serve_engine(
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 27017,
    parent_pid: int | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve `data_dir` (an absolute path) until SIGTERM/SIGINT (or `stop`), then close.

    Takes the data directory's lock first: two engines must never open the same files.
    """
    lock = DataDirLock(data_dir)
    try:
        lock.acquire()
    except OSError as error:
        reason = error.strerror.lower() if error.strerror else str(error)
        raise EngineStartError(f"cannot use data directory {data_dir}: {reason}") from None
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    server: DurableProxyServer | None = None
    watcher: asyncio.Task[None] | None = None
    try:
        engine = DurableSQLiteEngine(str(data_dir / DATA_FILE))
        server = DurableProxyServer(engine=engine, host=host, port=port)
        try:
            await server.start()
        except OSError as error:
            reason = os.strerror(error.errno).lower() if error.errno else str(error)
            raise EngineStartError(f"cannot listen on {host}:{port}: {reason}") from None
        address = server.address
        record = EngineRecord(
            pid=os.getpid(),
            host=address.host,
            port=address.port,
            data_dir=str(data_dir),
            started_at=time.time(),
            version=version("mongoeco"),
        )
        record.write(data_dir)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        if parent_pid is not None:
            watcher = _watch_parent(parent_pid, stop)
        log.info("engine serving", uri=record.uri, data_dir=str(data_dir), pid=record.pid)
        if not _is_loopback(address.host):
            log.warning(
                "the embedded engine has no authentication: every client that can reach "
                "this address can read and change all data",
                host=address.host,
            )
        await stop.wait()
        log.info("engine stopping", data_dir=str(data_dir))
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if server is not None:
            await server.close()
        EngineRecord.remove(data_dir, os.getpid())
        lock.release()
    log.info("engine stopped", data_dir=str(data_dir))
