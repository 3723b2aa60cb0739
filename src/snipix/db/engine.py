"""The embedded MongoDB-compatible engine, served like a local `mongod`.

mongoeco's SQLite engine behind its wire-protocol proxy: the service (and any tool) reaches
it with the same PyMongo client it uses for Atlas, so there is one database code path. It
runs as its own process (`snipix engine`), so the service can be restarted without
restarting the database and the database can be stopped under a running service (which is
how the fault tests exercise reconnection).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import signal
import sqlite3
import threading
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import structlog
from bson import ObjectId
from mongoeco.core.filtering import QueryEngine
from mongoeco.core.identity import id_contains_numeric_value
from mongoeco.core.query_plan import AndCondition, EqualsCondition, QueryNode
from mongoeco.engines._sqlite_connection import sqlite_read_scope
from mongoeco.engines.sqlite import SQLiteEngine
from mongoeco.wire.proxy import AsyncMongoEcoProxyServer

from snipix.db.engine_reads import IndexNarrowedReads
from snipix.db.engine_record import DATA_FILE, DataDirLock, EngineRecord, EngineStartError

log = structlog.get_logger(__name__)

# Names a file that receives every SQL statement the engine runs (see StatementTrace).
SQL_TRACE_ENV = "SNIPIX_ENGINE_SQL_TRACE"


class StatementTrace:
    """Every SQL statement the engine executes, appended to a file as JSON lines.

    What the engine *runs*, with its parameters bound: mongoeco's `explain` describes a
    plan it builds for explain alone, so the query-plan tests read this instead and ask
    SQLite how it executes each statement (`EXPLAIN QUERY PLAN`). Enabled by
    `SNIPIX_ENGINE_SQL_TRACE=<file>` for diagnosis and tests; off by default (it costs a
    write per statement).
    """

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._file = path.open("a", encoding="utf-8", buffering=1)

    def record(self, statement: str) -> None:
        line = json.dumps(statement)
        with self._lock:
            self._file.write(line + "\n")

    def close(self) -> None:
        with self._lock:
            self._file.close()


class DurableSQLiteEngine(IndexNarrowedReads, SQLiteEngine):
    """SQLiteEngine with `synchronous=FULL`: an acknowledged write survives power loss.

    mongoeco opens its WAL database with `synchronous=NORMAL`, which survives a process
    crash but may drop the last commits on an OS crash or power cut. Editors must never
    lose acknowledged work, so every commit is fsynced; the cost is write latency on the
    local default only (Atlas has its own journal).
    """

    # Set before the engine connects to record every SQL statement (see StatementTrace).
    statement_trace: StatementTrace | None = None

    def _create_sqlite_connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection = super()._create_sqlite_connection()
        connection.execute("PRAGMA synchronous=FULL")
        if self.statement_trace is not None:
            connection.set_trace_callback(self.statement_trace.record)
        return connection

    def _connect_sync(self) -> None:
        super()._connect_sync()
        # Probe indexes for indexes created before this engine version, and for a data
        # file another tool wrote.
        with self._lock:
            conn = self._require_connection()
            with self._bind_connection(conn):
                self.ensure_support_indexes()

    def _create_index_sync(self, *args: Any, **kwargs: Any) -> str:
        name: str = super()._create_index_sync(*args, **kwargs)
        with self._lock:
            conn = self._require_connection(kwargs.get("context"))
            with self._bind_connection(conn):
                self.ensure_support_indexes()
        return name

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
        # Read by key here rather than through mongoeco: on a miss it goes on to scan
        # the collection with the compiled filter, although no other document can match.
        conn = self._require_connection(context)
        with self._bind_connection(conn), sqlite_read_scope(conn):
            row = conn.execute(
                "SELECT storage_key, document FROM documents "
                "WHERE db_name = ? AND coll_name = ? AND storage_key = ?",
                (db_name, coll_name, self._storage_key(id_term.value)),
            ).fetchone()
        if row is None:
            return None
        found: tuple[str, dict[str, Any]] = (row[0], self._deserialize_document(row[1]))
        if not QueryEngine.match_plan(found[1], plan):
            return None
        return found


def _id_conjunct(plan: QueryNode) -> EqualsCondition | None:
    """The `_id` equality of a filter (alone or in an AND; a scalar id), if it has one."""
    clauses = plan.clauses if isinstance(plan, AndCondition) else (plan,)
    for clause in clauses:
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
    server: AsyncMongoEcoProxyServer | None = None
    watcher: asyncio.Task[None] | None = None
    try:
        engine = DurableSQLiteEngine(str(data_dir / DATA_FILE))
        trace_path = os.environ.get(SQL_TRACE_ENV)
        if trace_path:
            engine.statement_trace = StatementTrace(Path(trace_path))
            log.warning("the engine records every SQL statement", path=trace_path)
        server = AsyncMongoEcoProxyServer(engine=engine, host=host, port=port)
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
