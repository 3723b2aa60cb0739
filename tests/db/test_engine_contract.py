"""What src/snipix/db/engine.py relies on in mongoeco's private internals.

Each override there names, calls or replaces something mongoeco does not promise to keep.
These tests fail loudly, naming what moved, when a mongoeco release changes one of those
names, signatures or behaviours, before a subtle durability or correctness bug can ship.
pyproject.toml pins mongoeco to the minor they were written against.
"""

from __future__ import annotations

import inspect
import sqlite3
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from mongoeco.api import AsyncMongoClient
from mongoeco.api._async import _collection_runtime
from mongoeco.api._async._database_admin_write_commands import DatabaseAdminWriteCommandService
from mongoeco.api._async._write_command_validation import write_command_acknowledged
from mongoeco.api._async.database_admin import AsyncDatabaseAdminService
from mongoeco.api._command_bson import command_boolean
from mongoeco.change_streams import ChangeStreamHub
from mongoeco.engines import _sqlite_outbox
from mongoeco.engines._sqlite_connection import SQLiteConnection
from mongoeco.engines.adapter import EngineSpiAdapter
from mongoeco.engines.sqlite import SQLiteEngine
from mongoeco.wire.proxy import AsyncMongoEcoProxyServer

from snipix.db.engine import DurableSQLiteEngine


def parameters(function: Callable[..., Any]) -> list[tuple[str, Any, Any]]:
    """(name, kind, default) of each parameter, as a comparable list."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


P = inspect.Parameter
POS = P.POSITIONAL_OR_KEYWORD
KW = P.KEYWORD_ONLY
NONE = P.empty


def test_mongoeco_is_the_tested_minor() -> None:
    assert version("mongoeco").startswith("4.11."), (
        "engine.py's overrides were checked against mongoeco 4.11; re-check each "
        "(this file, docs/engine.md) before moving the pin in pyproject.toml"
    )


# --- Connection: commits are observed, pragmas are mongoeco's ------------------------


def test_connection_factory_is_mongoeco_s_and_its_pragmas_are_unchanged(
    tmp_path: Path,
) -> None:
    """`_create_sqlite_connection` is re-implemented with a subclass of mongoeco's
    connection class; a pragma mongoeco adds (or drops) must show up here."""
    assert parameters(SQLiteEngine._create_sqlite_connection) == [("self", POS, NONE)]
    assert issubclass(SQLiteConnection, sqlite3.Connection)
    # mongoeco's class does not commit on its own: our override is the only commit().
    assert "commit" not in vars(SQLiteConnection)
    pragmas = (
        "journal_mode",
        "synchronous",
        "foreign_keys",
        "busy_timeout",
        "cache_size",
        "temp_store",
        "wal_autocheckpoint",
        "journal_size_limit",
        "locking_mode",
        "mmap_size",
    )
    stock = SQLiteEngine(str(tmp_path / "stock.sqlite"))._create_sqlite_connection()
    ours = DurableSQLiteEngine(str(tmp_path / "ours.sqlite"))._create_sqlite_connection()
    try:
        assert type(stock) is SQLiteConnection
        assert isinstance(ours, SQLiteConnection)
        for pragma in pragmas:
            assert (
                ours.execute(f"PRAGMA {pragma}").fetchone()
                == stock.execute(f"PRAGMA {pragma}").fetchone()
            ), pragma
        assert (stock.isolation_level, stock.autocommit) == (ours.isolation_level, ours.autocommit)
    finally:
        stock.close()
        ours.close()


def test_a_write_becomes_durable_through_connection_commit() -> None:
    """Replies wait for commits seen by `_CommitObservedConnection.commit`. mongoeco's write
    scope ends a top-level write with `conn.commit()` (a nested one releases a savepoint
    and its outer transaction commits the same way); a write committed by SQL instead
    would be acknowledged without waiting."""
    from mongoeco.engines._sqlite_session_runtime import SQLiteSessionRuntime

    commit_write = inspect.getsource(SQLiteSessionRuntime.commit_write)
    assert "conn.commit()" in commit_write
    begin_write = inspect.getsource(SQLiteSessionRuntime.begin_write)
    assert 'conn.execute("BEGIN IMMEDIATE")' in begin_write
    engines = Path(inspect.getfile(SQLiteEngine)).parent
    for source in engines.glob("*.py"):
        text = source.read_text()
        assert 'execute("COMMIT' not in text, source.name
        assert "execute('COMMIT" not in text, source.name


def test_engine_work_runs_under_a_copy_of_the_request_context() -> None:
    """Commits are attributed to their wire request through a ContextVar; that needs
    mongoeco's worker-thread jobs to run in a copy of the caller's context."""
    source = inspect.getsource(SQLiteEngine._run_blocking)
    assert "contextvars.copy_context()" in source
    assert "context.run" in source


# --- Reply path of the wire proxy ----------------------------------------------------


def test_proxy_sends_what_dispatch_wire_request_returns() -> None:
    assert parameters(AsyncMongoEcoProxyServer._dispatch_wire_request) == [
        ("self", POS, NONE),
        ("header", POS, NONE),
        ("payload", POS, NONE),
        ("connection", KW, NONE),
    ]
    handler = inspect.getsource(AsyncMongoEcoProxyServer._handle_connection)
    assert "response = await self._dispatch_wire_request(" in handler
    assert "writer.write(response)" in handler
    # No other place writes replies.
    module = inspect.getsource(inspect.getmodule(AsyncMongoEcoProxyServer))  # type: ignore[arg-type]
    assert module.count("writer.write(") == 1
    assert "engine" in inspect.signature(AsyncMongoEcoProxyServer.__init__).parameters


async def test_client_hub_is_an_attribute_taken_by_databases_when_first_used(
    tmp_path: Path,
) -> None:
    engine = DurableSQLiteEngine(str(tmp_path / "hub.sqlite"))
    client = AsyncMongoClient(engine)
    assert isinstance(client._change_hub, ChangeStreamHub)
    client._change_hub = engine.change_hub
    assert client["db"]["coll"]._change_hub is engine.change_hub


# --- Change-stream dispatch ----------------------------------------------------------


def test_change_dispatch_entry_points() -> None:
    assert parameters(SQLiteEngine.dispatch_committed_changes) == [
        ("self", POS, NONE),
        ("consumer_id", POS, NONE),
        ("consumer", POS, NONE),
    ]
    # The adapter calls the engine's method through the engine object (so our override
    # is what runs) after every write.
    assert "dispatch_committed_changes" in inspect.getsource(
        EngineSpiAdapter.dispatch_committed_changes
    )
    runtime = inspect.getsource(_collection_runtime)
    assert "self._dispatch_engine_changes(" in runtime
    assert "should_publish_events" in runtime
    assert "_change_delivery_storage" in vars(SQLiteEngine)
    assert parameters(_sqlite_outbox.checkpoint_consumer)[:3] == [
        ("conn", POS, NONE),
        ("consumer_id", POS, NONE),
        ("sequence", POS, NONE),
    ]
    assert "newestSequence" in inspect.getsource(_sqlite_outbox.outbox_info)


def test_hub_watcher_signal() -> None:
    """A stream opening calls `register_watcher` on the hub; `should_publish_events` is
    false exactly while no watcher is registered (and no journal is configured)."""
    hub = ChangeStreamHub()
    assert not hub.should_publish_events()
    hub.register_watcher()
    assert hub.watcher_count == 1
    assert hub.should_publish_events()
    hub.unregister_watcher()
    assert not hub.should_publish_events()
    assert parameters(ChangeStreamHub.align_commit_sequence) == [
        ("self", POS, NONE),
        ("next_sequence", POS, NONE),
    ]
    from mongoeco._change_streams import cursor

    assert "hub.register_watcher()" in inspect.getsource(cursor)


def test_engine_private_state_used_by_the_overrides(tmp_path: Path) -> None:
    engine = SQLiteEngine(str(tmp_path / "state.sqlite"))
    assert isinstance(engine._registered_change_consumers, dict)
    assert isinstance(engine._change_outbox_checkpoints, dict)
    assert hasattr(engine._lock, "acquire")
    assert engine._path == str(tmp_path / "state.sqlite")
    assert callable(engine._runtime_diagnostics_info)


# --- Lean change gaps ------------------------------------------------------------------


def test_sqlite_writes_append_changes_through_the_module_name_we_replace() -> None:
    """`_install_lean_change_gaps` swaps `mongoeco.engines.sqlite._sqlite_append_change`.
    Every write path must call the outbox through that module-level name, with keyword
    arguments, and a gap must still fingerprint what it is given as `full_document`
    (were it to stop, the override would be moot)."""
    from mongoeco.engines import sqlite as sqlite_module

    source = inspect.getsource(sqlite_module)
    assert "append_change as _sqlite_append_change" in source
    # insert, insert batch, delete, delete-matching, update (mongoeco 4.11).
    assert source.count("_sqlite_append_change(\n") >= 5, "outbox call sites moved"
    names = {name: kind for name, kind, _ in parameters(_sqlite_outbox.append_change)}
    assert names["conn"] == POS
    for keyword in ("context", "full_document", "serialize_document"):
        assert names[keyword] == KW, keyword
    body = inspect.getsource(_sqlite_outbox.append_change)
    assert '"full_document": full_document' in body
    assert "_change_fingerprint(kind, effect)" in body
    assert "ChangePublicationPolicy.RECORD_GAP" in body


# --- Batched wire insert -------------------------------------------------------------


def test_insert_command_service_shape() -> None:
    assert parameters(DatabaseAdminWriteCommandService.command_insert) == [
        ("self", POS, NONE),
        ("spec", POS, NONE),
        ("session", KW, None),
    ]
    for name in (
        "_require_collection_name",
        "_normalize_insert_documents",
        "_normalize_ordered_from_command",
    ):
        assert callable(getattr(AsyncDatabaseAdminService, name)), name
    admin_init = inspect.getsource(AsyncDatabaseAdminService.__init__)
    assert "DatabaseAdminWriteCommandService(self)" in admin_init
    assert [n for n, _, _ in parameters(write_command_acknowledged)] == ["spec", "dialect"]
    assert [n for n, _, _ in parameters(command_boolean)] == ["value", "field", "numeric"]


# --- Upstream engine overrides (insert id scan, `_id` conjunct lookup) ---------------


def test_unique_index_validation_and_first_document_signatures() -> None:
    assert parameters(SQLiteEngine._validate_document_against_unique_indexes) == [
        ("self", POS, NONE),
        ("db_name", POS, NONE),
        ("coll_name", POS, NONE),
        ("document", POS, NONE),
        ("exclude_storage_key", KW, None),
        ("skip_id_check", KW, False),
        ("scan_payload_id", KW, False),
    ]
    assert parameters(SQLiteEngine._select_first_document_for_plan) == [
        ("self", POS, NONE),
        ("db_name", POS, NONE),
        ("coll_name", POS, NONE),
        ("plan", POS, NONE),
        ("hint", KW, None),
        ("context", KW, None),
    ]


@pytest.mark.parametrize(
    "name", ["_create_sqlite_connection", "dispatch_committed_changes", "_runtime_diagnostics_info"]
)
def test_overridden_methods_exist_upstream(name: str) -> None:
    assert name in vars(SQLiteEngine), f"SQLiteEngine.{name} is gone; engine.py overrides it"


# --- The read lane ------------------------------------------------------------------


def test_reads_are_submitted_to_the_pool_as_the_lane_expects() -> None:
    """`DurableSQLiteEngine._run_blocking` recognises a read by the name of the function
    mongoeco submits; each must still exist and still be submitted through
    `_run_blocking`, or reads silently go back to queueing behind writes."""
    from mongoeco.engines._sqlite_reader import SQLiteScanReader

    from snipix.db.engine import READ_CALLS

    engine_source = inspect.getsource(SQLiteEngine)
    for name in READ_CALLS - {"fetch"}:
        assert name in vars(SQLiteEngine), f"SQLiteEngine.{name} is gone"
        assert f"self._run_blocking(\n            self.{name}," in engine_source, name
    assert "fetch" in vars(SQLiteScanReader)
    assert "self._run_blocking(\n                            reader.fetch," in engine_source
    positional = inspect.Parameter.POSITIONAL_ONLY
    assert parameters(SQLiteEngine._run_blocking)[:2] == [
        ("self", positional, NONE),
        ("func", positional, NONE),
    ]
    assert "_shutdown_executor" in vars(SQLiteEngine)


def test_the_scan_opening_the_lane_replaces_does_what_ours_mirrors() -> None:
    """`_lane_open` replaces `SQLiteScanReader._open` for scans on the read lane and
    mirrors its steps with the engine's lock left out: registration in the scan registry,
    the TTL purge, a dedicated connection in its own transaction, then
    `_open_scan_documents_sync`. If upstream's `_open` gains or renames a step, ours would
    silently skip it."""
    from mongoeco.engines._sqlite_reader import SQLiteScanReader

    from snipix.db.engine import _stock_scan_open

    source = inspect.getsource(_stock_scan_open)
    for step in (
        "with engine._lifecycle_condition:",
        "if engine._disconnecting or engine._connection_count == 0:",
        "with engine._scan_condition:",
        "engine._runtime_state.scan_readers.add(self)",
        "engine._runtime_state.scan_stop_events.add(self.stop_event)",
        "engine._active_scan_count += 1",
        "self._registered = True",
        "engine._ensure_session_can_use_engine(self.context)",
        "engine._purge_expired_documents_sync(",
        "engine._can_use_dedicated_reader(",
        "self.connection = engine._create_sqlite_connection()",
        "self.owns_connection = True",
        'self.connection.execute("BEGIN")',
        "sqlite_read_scope(self.connection)",
        "self._documents = iter(engine._open_scan_documents_sync(self))",
    ):
        assert step in source, f"SQLiteScanReader._open no longer does: {step}"
    assert source.count("\n") < 60, "SQLiteScanReader._open grew: compare it with _lane_open"
    # A dedicated connection is closed (ours: returned to the lane) when the scan ends.
    close = inspect.getsource(SQLiteScanReader._close_locked)
    assert "if self.owns_connection and self.connection is not None:" in close
    assert "self.connection.close()" in close
    assert "nullcontext() if self.owns_connection else self.engine._lock" in inspect.getsource(
        SQLiteScanReader._connection_guard
    )


def test_features_and_catalogs_are_what_the_lane_connection_scopes() -> None:
    """The lane keeps mongoeco's feature cache per connection by overriding the property
    every access goes through, and clears it when `refresh_catalog_validity` sees another
    connection's commit (the check mongoeco itself makes for index catalogs)."""
    from mongoeco.engines import sqlite as sqlite_module

    prop = vars(SQLiteEngine)["_collection_features_cache"]
    assert isinstance(prop, property)
    assert prop.fget is not None
    assert "self._cache_state.collection_features_cache" in inspect.getsource(prop.fget)
    direct = inspect.getsource(sqlite_module).count("_cache_state.collection_features_cache")
    assert direct == 1, "the feature cache is now reached other than through its property"
    refresh = inspect.getsource(SQLiteConnection.refresh_catalog_validity)
    assert "PRAGMA main.data_version" in refresh
    assert "self._catalog_data_version = version" in refresh
    assert 'self.execute("SELECT 1 FROM sqlite_schema LIMIT 1")' in refresh
    assert parameters(SQLiteEngine._purge_expired_documents_sync) == [
        ("self", POS, NONE),
        ("conn", POS, NONE),
        ("db_name", POS, NONE),
        ("coll_name", POS, NONE),
        ("context", KW, NONE),
        ("now", KW, NONE),
    ]
