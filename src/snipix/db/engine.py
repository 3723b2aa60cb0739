"""The embedded MongoDB-compatible engine, served like a local `mongod`.

mongoeco's SQLite engine behind its wire-protocol proxy: the service (and any tool) reaches
it with the same PyMongo client it uses for Atlas, so there is one database code path. It
runs as its own process (`snipix engine`), so the service can be restarted without
restarting the database and the database can be stopped under a running service (which is
how the fault tests exercise reconnection).

Every override of mongoeco's private internals lives in this module and in the read path
it mixes in (`snipix.db.engine_reads`), each pinned by a contract test
(tests/db/test_engine_contract*.py) and described in docs/engine.md.

Write path and durability
-------------------------
SQLite runs in WAL mode at `synchronous=NORMAL`: a commit appends its frames to the
`-wal` file with write() and does not sync. Before the proxy sends the reply to a request
that committed, `GroupCommit` makes sure an fdatasync of the WAL that *began after* that
commit has completed; concurrent requests share one such fdatasync. So a reply is never
sent for a write that is not on stable storage, and a write whose reply was not sent
(engine killed between commit and reply) is an unknown outcome to the client, as with any
server.

Checkpoints cannot undo that. A checkpoint copies WAL frames into the database file; at
`synchronous=NORMAL` SQLite fsyncs the WAL before it starts and the database file before
it records the frames as backfilled (`nBackfill`). Only a fully backfilled WAL is ever
reset, restarted or truncated (the next writer then overwrites it from the start), and
SQLite deletes the WAL only after a final checkpoint when the last connection closes. An
acknowledged write is therefore always either in WAL frames we synced, or in the database
file that SQLite synced before any of those frames could be overwritten. A WAL reset
rewrites the header with new salts; frames from before the reset fail the salt/checksum
check on recovery and are ignored, which loses nothing because they were backfilled. The
WAL is reopened for each sync (fsync acts on the file, not the descriptor), and the data
directory is synced once per new WAL file so the file itself survives a power cut.

An fdatasync that fails stops the engine at once (exit status 74) without sending any
pending reply: after a failed fsync the page cache may have dropped the unwritten pages
and a later fsync would report success, so nothing more could be acknowledged honestly.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import ipaddress
import json
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from importlib.metadata import version
from pathlib import Path
from typing import Any

import structlog
from bson import ObjectId
from mongoeco._types import WriteCommandResult, WriteErrorEntry
from mongoeco.api._async._database_admin_write_commands import (
    DatabaseAdminWriteCommandService,
)
from mongoeco.api._async._write_command_validation import write_command_acknowledged
from mongoeco.api._command_bson import command_boolean
from mongoeco.change_streams import ChangeStreamHub
from mongoeco.core.filtering import QueryEngine
from mongoeco.core.identity import id_contains_numeric_value
from mongoeco.core.operation_context import ChangePublicationPolicy
from mongoeco.core.query_plan import AndCondition, EqualsCondition, QueryNode
from mongoeco.engines import sqlite as _sqlite_module
from mongoeco.engines._sqlite_connection import SQLiteConnection, sqlite_read_scope
from mongoeco.engines._sqlite_index_catalog import SQLiteIndexCatalog
from mongoeco.engines._sqlite_outbox import append_change as _stock_append_change
from mongoeco.engines._sqlite_outbox import checkpoint_consumer as _checkpoint_consumer
from mongoeco.engines._sqlite_outbox import outbox_info as _outbox_info
from mongoeco.engines._sqlite_reader import SQLiteScanReader
from mongoeco.engines.sqlite import SQLiteEngine
from mongoeco.errors import BulkWriteError
from mongoeco.wire.proxy import AsyncMongoEcoProxyServer

from snipix.db.engine_codec import (
    install_document_copy,
    install_owning_outcomes,
    install_single_pass_codec,
    install_wire_values,
)
from snipix.db.engine_reads import IndexNarrowedReads
from snipix.db.engine_record import DATA_FILE, DataDirLock, EngineRecord, EngineStartError

log = structlog.get_logger(__name__)


# Exit status of an engine that stopped because an fsync failed (EX_IOERR).
FSYNC_FAILURE_EXIT = 74

# Names a file that receives every SQL statement the engine runs (see StatementTrace).
SQL_TRACE_ENV = "SNIPIX_ENGINE_SQL_TRACE"

# Threads running the engine's writes and everything else that is not a read (mongoeco's
# `executor_workers`; its default is the core count + 4, at least 4). Writes take one lock
# and every query holds the GIL for its Python work, so a second thread adds no write
# throughput; it only takes the GIL from the read lane beside it (docs/engine.md).
ENGINE_THREADS = 1

# How long a thread of the engine process may hold the GIL while others wait (CPython's
# default is 5 ms). A read needs the GIL for a fraction of a millisecond at a time, between
# SQLite calls that release it; beside writers holding it for their Python work, each such
# step waited up to a whole interval (docs/engine.md, "Reads on a lane of their own").
ENGINE_SWITCH_INTERVAL_S = 0.0005


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


class _RequestCommits:
    """The newest commit generation a wire request made (0: it committed nothing)."""

    __slots__ = ("generation",)

    def __init__(self) -> None:
        self.generation = 0


# Set for each wire request by `DurableProxyServer`. mongoeco runs engine work in worker
# threads under a copy of the request's context, so a commit made for the request finds
# this same object there.
_request_commits: contextvars.ContextVar[_RequestCommits | None] = contextvars.ContextVar(
    "snipix_engine_request_commits", default=None
)


def _stop_on_fsync_failure(error: OSError) -> None:
    """Exit at once: after a failed fsync the state of the page cache is unknown.

    Linux may drop the dirty pages whose write-back failed and report success for the
    next fsync, so no later reply could be trusted. Nothing more is acknowledged; the
    next start recovers from what the files hold.
    """
    log.error(
        "engine fsync failed; stopping without acknowledging pending writes",
        error=str(error),
        errno=error.errno,
    )
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(FSYNC_FAILURE_EXIT)


class GroupCommit:
    """One WAL fdatasync shared by every write committed before it began.

    Commits (on any engine thread) take increasing generations (`note_commit`). A reply
    for a request whose last commit had generation g is sent only once a sync that
    *started* after g was noted has completed (`wait_durable(g)`). A sync in flight that
    started earlier does not count: that request waits for it and then for the next one,
    which one waiter starts for everyone waiting by then. The fdatasync runs in a worker
    thread; the event loop keeps serving (reads never wait).
    """

    def __init__(
        self,
        data_file: Path,
        *,
        fsync: Callable[[int], None] = os.fdatasync,
        on_failure: Callable[[OSError], None] = _stop_on_fsync_failure,
    ) -> None:
        self._data_file = data_file
        self._wal_file = data_file.with_name(data_file.name + "-wal")
        self._fsync = fsync
        self._on_failure = on_failure
        self._lock = threading.Lock()
        self._committed = 0
        self._durable = 0
        self._in_flight: asyncio.Future[None] | None = None
        self._synced_dir_for: tuple[int, int] | None = None
        self._failed = False
        self.syncs = 0
        self.waits = 0
        self.sync_seconds = 0.0

    def note_commit(self) -> None:
        """Called just after a commit returned: its WAL frames are written, not synced."""
        with self._lock:
            self._committed += 1
            generation = self._committed
        marker = _request_commits.get()
        if marker is not None:
            marker.generation = max(marker.generation, generation)

    @property
    def committed(self) -> int:
        with self._lock:
            return self._committed

    @property
    def durable(self) -> int:
        return self._durable

    async def wait_durable(self, generation: int) -> None:
        """Return once every commit up to `generation` is on stable storage."""
        self.waits += 1
        while self._durable < generation:
            if self._failed:
                raise OSError("an engine fsync failed; nothing more is acknowledged")
            if self._in_flight is None:
                self._in_flight = asyncio.ensure_future(self._sync(self.committed))
            # A cancelled waiter (its client went away) must not cancel the shared sync.
            await asyncio.shield(self._in_flight)

    async def _sync(self, covers: int) -> None:
        started = time.perf_counter()
        try:
            await asyncio.to_thread(self._sync_files)
        except OSError as error:
            self._failed = True
            self._on_failure(error)
            raise
        finally:
            self._in_flight = None
        self.syncs += 1
        self.sync_seconds += time.perf_counter() - started
        self._durable = max(self._durable, covers)

    def _sync_files(self) -> None:
        # The WAL is opened for each sync: SQLite deletes it when its last connection
        # closes and creates a new one later, and fsync acts on the file, whichever
        # descriptor wrote it. Without a WAL everything is in the database file, which
        # SQLite synced when it checkpointed the WAL away.
        try:
            fd = os.open(self._wal_file, os.O_RDONLY)
        except FileNotFoundError:
            fd = os.open(self._data_file, os.O_RDONLY)
        try:
            self._fsync(fd)
            identity = os.fstat(fd)
        finally:
            os.close(fd)
        # A WAL SQLite just created is durable only once its directory entry is:
        # SQLite syncs the directory itself only on its own first sync of the file.
        key = (identity.st_dev, identity.st_ino)
        if key != self._synced_dir_for:
            dir_fd = os.open(self._data_file.parent, os.O_RDONLY)
            try:
                self._fsync(dir_fd)
            finally:
                os.close(dir_fd)
            self._synced_dir_for = key

    def status(self) -> dict[str, object]:
        return {
            "commits": self.committed,
            "durableCommits": self._durable,
            "syncs": self.syncs,
            "waits": self.waits,
            "syncMillis": round(self.sync_seconds * 1000, 3),
        }


class _CommitObservedConnection(SQLiteConnection):
    """mongoeco's connection class, reporting each commit that ended a transaction."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_commit: Callable[[], None] | None = None

    def observe_commits(self, on_commit: Callable[[], None]) -> None:
        self._on_commit = on_commit

    def commit(self) -> None:
        ended_transaction = self.in_transaction
        super().commit()
        if ended_transaction and self._on_commit is not None:
            self._on_commit()


class _ReadConnection(SQLiteConnection):
    """A connection the read lane keeps between reads, with its own feature cache.

    mongoeco caches per collection whether a field ever holds arrays, numbers of mixed
    kinds and so on (`_collection_features_cache`), and plans reads on it. A read on its
    own snapshot must not use answers computed on another snapshot, nor leave its own in
    the cache writers share: each read connection has its own, cleared like mongoeco's
    per-connection index catalogs whenever another connection has committed since
    (`PRAGMA data_version`, compared once the read's snapshot is pinned).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.features: dict[tuple[str, str, str], bool | str] = {}
        self.pool: _ReadPool | None = None

    def refresh_catalog_validity(self) -> None:
        seen = self._catalog_data_version
        super().refresh_catalog_validity()
        if self._catalog_data_version != seen:
            self.features.clear()

    def close(self) -> None:
        """Back to the lane's pool (its snapshot released), or closed with the pool."""
        if self.pool is None or self.pool.closed:
            super().close()
            return
        if self.in_transaction:
            self.rollback()
        self.pool.idle.append(self)


class _ReadPool:
    """The read lane's connections, kept between reads until the engine disconnects.

    A connection still reading when the pool closes (a paused cursor) is closed, not
    kept, when its scan ends.
    """

    def __init__(self, path: str, trace: StatementTrace | None) -> None:
        self._path = path
        self._trace = trace
        self.idle: list[_ReadConnection] = []
        self.closed = False

    def take(self) -> _ReadConnection:
        """One kept from an earlier read, or a new one."""
        if self.idle:
            return self.idle.pop()
        connection = sqlite3.connect(self._path, check_same_thread=False, factory=_ReadConnection)
        if self._trace is not None:
            connection.set_trace_callback(self._trace.record)
        connection.pool = self
        return connection

    def close(self) -> None:
        self.closed = True
        idle, self.idle = self.idle, []
        for connection in idle:
            with contextlib.suppress(sqlite3.Error):
                connection.close()


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


# The work mongoeco hands its pool for a read (`SQLiteEngine` methods and
# `SQLiteScanReader.fetch`); `DurableSQLiteEngine._run_blocking` runs them on a lane of
# their own. A contract test checks each still exists and is still submitted that way.
READ_CALLS = frozenset(
    {"_plan_find_semantics_sync", "fetch", "_get_document_sync", "_count_matching_documents_sync"}
)


class DurableSQLiteEngine(IndexNarrowedReads, SQLiteEngine):
    """SQLiteEngine whose acknowledged writes survive power loss, at group-commit cost.

    mongoeco opens its WAL database with `synchronous=NORMAL` (a commit writes the WAL,
    nothing is fsynced until a checkpoint). Our proxy sends a write's reply only after a
    WAL fdatasync that began after the write committed (`GroupCommit`), so the commit is
    as durable as with `synchronous=FULL` while concurrent writers share one fsync.

    Every commit on an engine connection is observed (`_CommitObservedConnection`) so the
    request that made it knows which generation its reply must wait for.
    """

    def __init__(
        self, path: str, *, fsync: Callable[[int], None] = os.fdatasync, **options: Any
    ) -> None:
        # `fsync` is the one system call durability rests on; tests pass one they can
        # hold or fail, to observe that replies wait for it and what its failure does.
        super().__init__(path, **options)
        _install_lean_change_gaps()
        install_single_pass_codec()
        install_document_copy()
        install_owning_outcomes()
        install_wire_values()
        _install_lane_reads()
        self.group_commit = GroupCommit(Path(path), fsync=fsync)
        self.change_hub = _WatcherAwareHub(self)
        self.change_dispatches_skipped = 0

    # Set before the engine connects to record every SQL statement (see StatementTrace).
    statement_trace: StatementTrace | None = None

    # The thread reads run on (`_run_blocking`), made on first use.
    _read_lane: ThreadPoolExecutor | None = None

    async def _run_blocking(self, func: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Reads on a thread of their own; everything else on mongoeco's pool.

        mongoeco runs every query through one pool, first come first served (its
        admission bounds what is queued to the pool's size), so a read arriving among
        writers waits behind every write queued before it. On a lane of their own reads
        wait only for the engine's lock, held by one statement at a time. The same
        submission as stock: the work in a copy of the caller's context (the request a
        commit belongs to), shielded from the caller's cancellation.
        """
        if getattr(func, "__name__", None) not in READ_CALLS:
            return await super()._run_blocking(func, *args, **kwargs)  # type: ignore[no-untyped-call]
        if self._read_lane is None:
            self._read_lane = ThreadPoolExecutor(
                1, thread_name_prefix="snipix-engine-reads", initializer=_mark_lane_thread
            )
        context = contextvars.copy_context()
        job = self._read_lane.submit(context.run, functools.partial(func, *args, **kwargs))
        return await asyncio.shield(asyncio.wrap_future(job))

    def _shutdown_executor(self) -> None:
        """Stop the read lane with mongoeco's pool (at disconnect), after its last read;
        then close the lane's connections."""
        super()._shutdown_executor()
        lane, self._read_lane = self._read_lane, None
        if lane is not None:
            lane.shutdown(wait=True, cancel_futures=True)
        pool, self._read_pool = self._read_pool, None
        if pool is not None:
            pool.close()

    # The connections the read lane reads on (see `_lane_open`), made on first use.
    _read_pool: _ReadPool | None = None

    def _read_connection(self) -> _ReadConnection:
        if self._read_pool is None:
            self._read_pool = _ReadPool(self._path, self.statement_trace)
        return self._read_pool.take()

    @property
    def _collection_features_cache(self) -> dict[tuple[str, str, str], bool | str]:
        """A lane read's own feature cache (see `_ReadConnection`); the shared one else."""
        bound = getattr(self._thread_local, "connection", None)
        if isinstance(bound, _ReadConnection):
            return bound.features
        features: dict[tuple[str, str, str], bool | str] = (
            self._cache_state.collection_features_cache
        )
        return features

    def _create_sqlite_connection(self) -> sqlite3.Connection:
        # mongoeco's own body (4.11), with a connection class that reports commits. The
        # contract test compares the resulting pragmas with mongoeco's so a change there
        # is noticed.
        connection = sqlite3.connect(
            self._path,
            check_same_thread=False,
            factory=_CommitObservedConnection,
        )
        try:
            if self._path != ":memory:":
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                connection.close()
            raise
        connection.observe_commits(self.group_commit.note_commit)
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
        info["groupCommit"] = {
            **self.group_commit.status(),
            "changeDispatchesSkipped": self.change_dispatches_skipped,
        }
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
        # costs O(collection) (docs/engine.md). For any other id
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
        # update) fell back to decoding and matching every document of the collection
        # (docs/engine.md). With an `_id` equality
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


class DurableProxyServer(AsyncMongoEcoProxyServer):
    """mongoeco's wire proxy that replies to a write only once the write is durable.

    The reply to a wire request is the bytes `_dispatch_wire_request` returns; the
    connection handler writes them right after. Here that method records which commits
    the request made and, if it made any, waits for the group commit to cover them
    before returning the reply. Reads commit nothing and never wait.
    """

    def __init__(self, *, engine: DurableSQLiteEngine, host: str, port: int) -> None:
        _install_batched_insert()
        super().__init__(engine=engine, host=host, port=port)
        # mongoeco's client makes its own hub in __init__; databases and collections take
        # the client's hub when first used, so swapping it before serving reaches them all.
        self._client._change_hub = engine.change_hub
        self._group_commit = engine.group_commit

    async def _dispatch_wire_request(
        self, header: Any, payload: bytes, *, connection: Any
    ) -> bytes | None:
        commits = _RequestCommits()
        token = _request_commits.set(commits)
        try:
            response: bytes | None = await super()._dispatch_wire_request(
                header, payload, connection=connection
            )
        finally:
            _request_commits.reset(token)
        if response is not None and commits.generation:
            await self._group_commit.wait_durable(commits.generation)
        return response


_single_document_insert = DatabaseAdminWriteCommandService.command_insert


# Documents per engine batch (one transaction). mongoeco prepares a batch's documents
# (copies, codec) on the event loop before its worker thread writes them: a large batch
# held the loop for seconds, stalling every other client (docs/engine.md).
INSERT_BATCH_DOCUMENTS = 100


async def _batched_command_insert(
    self: DatabaseAdminWriteCommandService,
    spec: dict[str, object],
    *,
    session: Any = None,
) -> object:
    """The wire `insert` command through the engine's batch path.

    mongoeco's command inserts its documents one `insert_one` (one transaction, one
    commit) at a time. `insert_many` writes a batch in one transaction and already has
    MongoDB's outcome rules: ordered stops at the first failed document with the ones
    before it inserted; unordered inserts every valid document; each failure is
    reported with its index. Batches of `INSERT_BATCH_DOCUMENTS` go in order, so these
    rules hold across them. A single document keeps mongoeco's own path, and so does a
    collection with a unique index besides `_id`: there mongoeco 4.11 checks each new
    document against every stored one, in a batch as one by one, so a batch would only
    hold the database's write lock for seconds (longer than SQLite's 5 s busy timeout of
    mongoeco's own background writers) without being faster.
    """
    admin = self._admin
    collection_name = admin._require_collection_name(spec.get("insert"), "insert")
    documents = admin._normalize_insert_documents(spec.get("documents"))
    collection = admin._database.get_collection(collection_name)
    if len(documents) < 2 or await _has_unique_secondary_index(collection, session):
        return await _single_document_insert(self, spec, session=session)
    ordered = admin._normalize_ordered_from_command(spec.get("ordered"))
    bypass_document_validation = command_boolean(  # type: ignore[no-untyped-call]
        spec.get("bypassDocumentValidation", False), "bypassDocumentValidation", numeric=True
    )
    acknowledged = write_command_acknowledged(spec, dialect=admin._mongodb_dialect.key)
    write_errors: list[WriteErrorEntry] = []
    inserted = 0
    for offset in range(0, len(documents), INSERT_BATCH_DOCUMENTS):
        batch = documents[offset : offset + INSERT_BATCH_DOCUMENTS]
        try:
            result = await collection.insert_many(
                batch,
                ordered=ordered,
                bypass_document_validation=bypass_document_validation,
                session=session,
            )
            inserted += len(result.inserted_ids)
        except BulkWriteError as error:
            # mongoeco's BulkWriteError is PyMongo's, whose `details` is the server reply.
            details: dict[str, Any] = dict(getattr(error, "details", None) or {})
            inserted += int(details.get("nInserted", 0))
            failures = sorted(details.get("writeErrors", []), key=lambda entry: entry["index"])
            for entry in failures:
                extra = {
                    k: v for k, v in entry.items() if k not in {"index", "errmsg", "code", "op"}
                }
                write_errors.append(
                    WriteErrorEntry(
                        index=offset + int(entry["index"]),
                        errmsg=str(entry["errmsg"]),
                        code=entry.get("code"),
                        details=extra or None,
                    )
                )
            if ordered and failures:
                break
    if not acknowledged:
        return WriteCommandResult(count=0)
    return WriteCommandResult(count=inserted, write_errors=write_errors or None)


async def _has_unique_secondary_index(collection: Any, session: Any) -> bool:
    information: dict[str, dict[str, Any]] = await collection.index_information(session=session)
    return any(spec.get("unique") and name != "_id_" for name, spec in information.items())


def _install_batched_insert() -> None:
    """Route the wire `insert` command through `_batched_command_insert` (idempotent).

    The command service is built by mongoeco per database, so the method is replaced on
    its class; only the engine process serves wire commands.
    """
    DatabaseAdminWriteCommandService.command_insert = _batched_command_insert  # type: ignore[method-assign]


def _lean_append_change(conn: sqlite3.Connection, **change: Any) -> int | None:
    """mongoeco's outbox append, without the full document in a gap this engine records.

    A write nobody watches is recorded as a gap: a sequence number and a fingerprint,
    no payload. mongoeco still serialises the whole document to fingerprint the gap, a
    cost that grows with the document (a timeline head is large); a fingerprint of the
    rest of the change (operation, collection, key) identifies a replay of the same
    operation just as well. Events a stream will read keep their full document, and
    other engines in the process are left as they are.
    """
    context = change.get("context")
    owner = getattr(change.get("serialize_document"), "__self__", None)
    if (
        isinstance(owner, DurableSQLiteEngine)
        and context is not None
        and context.publication is ChangePublicationPolicy.RECORD_GAP
    ):
        change["full_document"] = None
    return _stock_append_change(conn, **change)


def _install_lean_change_gaps() -> None:
    """Route mongoeco's SQLite outbox appends through `_lean_append_change` (idempotent)."""
    _sqlite_module._sqlite_append_change = _lean_append_change  # type: ignore[attr-defined]


# Set in the read lane's thread (`_mark_lane_thread`): scans opened there read on a lane
# connection (`_lane_open`).
_lane_thread = threading.local()


def _mark_lane_thread() -> None:
    _lane_thread.reading = True


_stock_scan_open = SQLiteScanReader._open


def _lane_open(reader: SQLiteScanReader) -> None:
    """`SQLiteScanReader._open` for a scan on the read lane: its own snapshot on a lane
    connection, without the engine's lock.

    mongoeco's `_open` takes the engine lock (shared by every write, held for a whole
    update) to register the reader, to purge expired documents, and, for a one-result
    read, to read on the engine's one connection. A read then waited for the write in
    progress and for the writers that took the lock before it. Here only a collection with
    a TTL index takes the lock, for the same purge; the registration takes the scan
    registry's own lock (a disconnect still finds and closes the reader), and the read runs
    in a transaction of its own on a connection the lane keeps (WAL: a reader never blocks
    a writer nor sees an uncommitted write), exactly as mongoeco's own dedicated readers of
    multi-document scans do. Elsewhere (any other thread, a session's transaction, the
    profile namespace) mongoeco's `_open` runs unchanged.
    """
    engine = reader.engine
    if (
        not getattr(_lane_thread, "reading", False)
        or not isinstance(engine, DurableSQLiteEngine)
        or not engine._can_use_dedicated_reader(reader.context)
        or engine._is_profile_namespace(reader.coll_name)
    ):
        _stock_scan_open(reader)
        return
    if reader._tracked:
        with engine._scan_condition:
            if engine._disconnecting or engine._connection_count == 0:
                raise RuntimeError("SQLiteEngine is disconnecting")
            engine._runtime_state.scan_readers.add(reader)
            engine._runtime_state.scan_stop_events.add(reader.stop_event)
            engine._active_scan_count += 1
            reader._registered = True
    engine._ensure_session_can_use_engine(reader.context)
    connection = engine._read_connection()
    try:
        with engine._bind_connection(connection):
            catalog = engine._load_indexes(reader.db_name, reader.coll_name)
        expiring = (
            catalog.ttl_indexes
            if isinstance(catalog, SQLiteIndexCatalog)
            else [index for index in catalog if index.expire_after_seconds is not None]
        )
        if expiring:
            with engine._lock:
                shared = engine._require_connection(reader.context)
                with engine._bind_connection(shared):
                    engine._purge_expired_documents_sync(
                        shared,
                        reader.db_name,
                        reader.coll_name,
                        context=reader.context,
                        now=reader.semantics.variables.now.replace(tzinfo=UTC),
                    )
        connection.execute("BEGIN")
        # Pins the snapshot, then drops catalogs and features another commit outdated.
        connection.refresh_catalog_validity()
    except BaseException:
        connection.close()
        raise
    reader.connection = connection
    reader.owns_connection = True
    with reader._binding(), sqlite_read_scope(connection):  # type: ignore[no-untyped-call]
        reader._documents = iter(engine._open_scan_documents_sync(reader))


def _install_lane_reads() -> None:
    SQLiteScanReader._open = _lane_open  # type: ignore[method-assign,assignment]


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
    threads: int | None = None,
) -> None:
    """Serve `data_dir` (an absolute path) until SIGTERM/SIGINT (or `stop`), then close.

    Takes the data directory's lock first: two engines must never open the same files.
    """
    sys.setswitchinterval(ENGINE_SWITCH_INTERVAL_S)
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
        engine = DurableSQLiteEngine(
            str(data_dir / DATA_FILE), executor_workers=threads or ENGINE_THREADS
        )
        trace_path = os.environ.get(SQL_TRACE_ENV)
        if trace_path:
            engine.statement_trace = StatementTrace(Path(trace_path))
            log.warning("the engine records every SQL statement", path=trace_path)
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
