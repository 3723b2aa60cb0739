"""Contracts with mongoeco's private internals that the index-narrowed reads rely on.

`snipix.db.engine_reads` reads mongoeco's physical indexes directly and plugs into its
reader protocol. None of that is public API: each test here names one assumption and
fails loudly, with the assumption in its message, when an upgrade changes it (mongoeco is
pinned to the tested minor in pyproject.toml).
"""

from __future__ import annotations

import inspect
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from mongoeco import MongoClient as EmbeddedClient
from mongoeco.core.codec import DocumentCodec
from mongoeco.engines import semantic_core
from mongoeco.engines.sqlite import SQLiteEngine
from mongoeco.engines.sqlite_query import type_expression_sql, value_expression_sql

from snipix.db.engine import DurableSQLiteEngine
from snipix.db.engine_reads import (
    PROBE_PREFIX,
    _equality_key,
    array_probe_predicate,
    probe_index_name,
)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[tuple[DurableSQLiteEngine, Any, Path]]:
    data_file = tmp_path / "engine.sqlite"
    engine = DurableSQLiteEngine(str(data_file))
    client = EmbeddedClient(engine=engine)
    try:
        yield engine, client, data_file
    finally:
        client.close()


def schema(data_file: Path) -> dict[str, str]:
    with closing(sqlite3.connect(data_file)) as conn:
        rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL")
        return {str(name): str(sql) for name, sql in rows}


@pytest.mark.parametrize(
    ("name", "parameters"),
    [
        ("_open_scan_documents_sync", ["self", "reader"]),
        ("_select_first_document_for_plan", ["self", "db_name", "coll_name", "plan"]),
        ("_require_connection", ["self", "context"]),
        ("_deserialize_document", ["self", "payload"]),
        ("_capture_shared_read_source", ["source", "reader"]),
        ("_finalize_scan_source", ["source", "semantics"]),
        (
            "_iter_documents_for_classic_text_query_sync",
            ["self", "db_name", "coll_name", "documents"],
        ),
        ("_resolve_hint_index", ["self", "db_name", "coll_name", "hint"]),
        ("_load_indexes", ["self", "db_name", "coll_name"]),
        ("_storage_key", ["self", "value"]),
        ("_is_profile_namespace", ["self", "coll_name"]),
        ("_bind_connection", ["self", "conn"]),
        ("_connect_sync", ["self"]),
        ("_create_index_sync", ["self", "db_name", "coll_name", "keys"]),
        ("_field_traverses_array_in_collection", ["self", "db_name", "coll_name", "field"]),
    ],
)
def test_the_engine_methods_we_override_or_call_keep_their_signature(
    name: str, parameters: list[str]
) -> None:
    method = inspect.getattr_static(SQLiteEngine, name, None)
    assert method is not None, f"mongoeco's SQLiteEngine no longer has {name}"
    function = method.__func__ if isinstance(method, staticmethod | classmethod) else method
    found = list(inspect.signature(function).parameters)
    assert found[: len(parameters)] == parameters, f"{name} now takes {found}"


def test_the_reader_and_finders_we_use_are_where_we_import_them() -> None:
    for name in ("iter_filtered_documents", "stream_finalize_documents", "EngineFindSemantics"):
        assert hasattr(semantic_core, name), f"mongoeco.engines.semantic_core lost {name}"
    fields = {f.name for f in semantic_core.EngineFindSemantics.__dataclass_fields__.values()}
    assert {"query_plan", "text_query", "sort", "skip", "limit", "hint", "collation"} <= fields


def test_a_compound_index_is_one_expression_index_on_documents_in_our_layout(
    engine: tuple[DurableSQLiteEngine, Any, Path],
) -> None:
    """The narrowed reads name the physical index and repeat its expressions: the index
    must be (db_name, coll_name, type(f), value(f), ...) with DESC where the key is -1."""
    _engine, client, data_file = engine
    client.db.things.create_index([("owner", 1), ("at", -1)], name="owner_at")
    indexes = client.db.things.index_information()
    assert "owner_at" in indexes
    physical = [
        sql for name, sql in schema(data_file).items() if "INDEX" in sql and "documents" in sql
    ]
    expected = (
        "ON documents (db_name, coll_name, "
        f"{type_expression_sql('owner')}, {value_expression_sql('owner')}, "
        f"{type_expression_sql('at')} DESC, {value_expression_sql('at')} DESC)"
    )
    assert any(sql.endswith(expected) for sql in physical), physical


def test_mongoeco_probes_for_arrays_with_our_probe_index_predicate(
    engine: tuple[DurableSQLiteEngine, Any, Path],
) -> None:
    """Its feature probe after every write must be answered by our (empty) partial index:
    same predicate text, so SQLite's planner can use it."""
    db_engine, client, data_file = engine
    client.db.things.create_index([("owner", 1), ("at", -1)], name="owner_at")
    client.db.things.insert_one({"_id": "a", "owner": "u1", "at": datetime.now(UTC)})
    name = probe_index_name("array", "owner")
    assert name.startswith(PROBE_PREFIX)
    assert name in schema(data_file), "the probe index was not created with the index"
    source = inspect.getsource(SQLiteEngine._field_traverses_array_in_collection)
    assert "json_type(document, {path_literal}) = 'array'" in source, (
        "mongoeco's array probe changed its predicate; update array_probe_predicate"
    )
    with closing(sqlite3.connect(data_file)) as conn:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT 1 FROM documents WHERE db_name = 'db' AND "
            f"coll_name = 'things' AND {array_probe_predicate('owner')} LIMIT 1"
        ).fetchall()
    assert name in str(plan), plan
    assert db_engine._field_traverses_array_in_collection("db", "things", "owner") is False


def test_dates_and_object_ids_are_tagged_as_the_index_orders_them() -> None:
    """Equality and range keys for dates are the codec's ISO strings: they must sort in
    time order, and an ObjectId's hex in byte order."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    moments = [base, base + timedelta(milliseconds=1), base + timedelta(seconds=1, days=400)]
    keys = [_equality_key(moment) for moment in moments]
    assert all(key is not None and key[0].tag == "datetime" for key in keys)
    values = [key[0].value for key in keys if key is not None]
    assert values == sorted(values)
    encoded = DocumentCodec.encode(moments[0])
    assert DocumentCodec._is_tagged_value(encoded)
    assert encoded[DocumentCodec._MARKER][DocumentCodec._TYPE] == "datetime"
    ids = sorted([ObjectId() for _ in range(5)])
    id_keys = [_equality_key(oid) for oid in ids]
    assert [k[0].tag for k in id_keys if k is not None] == ["objectid"] * 5
    assert [k[0].value for k in id_keys if k is not None] == sorted(
        k[0].value for k in id_keys if k is not None
    )


def test_a_narrowed_read_sizes_its_batch_from_the_stored_text(
    engine: tuple[DurableSQLiteEngine, Any, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stock scan attaches a size estimate from the stored JSON
    (`_serialized_document_size_estimate`) to each document it reads without a projection;
    the narrowed scan does the same, so the reader never walks a document to size its
    batch (`_owned_document_size`, a tenth of the engine's time reading a timeline head)."""
    from mongoeco.engines import _sqlite_reader

    stock_source = inspect.getsource(SQLiteEngine._project_sql_scan_rows)
    assert "_serialized_document_size_estimate(payload)" in stock_source, (
        "the stock scan no longer sizes documents from their stored text"
    )
    _, client, _ = engine
    collection = client["contract"]["sized"]
    collection.create_index("userId")
    collection.insert_many([{"_id": n, "userId": f"u{n % 3}", "n": n} for n in range(30)])
    walked: list[object] = []
    stock_walk = _sqlite_reader._owned_document_size

    def counting_walk(document: Any) -> int:
        walked.append(document)
        return stock_walk(document)

    monkeypatch.setattr(_sqlite_reader, "_owned_document_size", counting_walk)
    found = list(collection.find({"userId": "u1"}).sort("n", 1))
    assert [doc["n"] for doc in found] == list(range(1, 30, 3))
    assert walked == [], "the reader walked documents to size its batch"
