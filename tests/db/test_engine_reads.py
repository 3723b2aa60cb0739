"""Index-narrowed reads on the embedded engine, seen through the SQL it executes.

The plan check (tests/projects/test_query_plans.py) trusts `tests/db/sql_plans.py` to see
a scan when one runs. These tests show that it does: the same list query is reported as
a scan once its index is dropped, and when the stock engine (no overrides) runs it; and
that the narrowed answer is the stock engine's answer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from mongoeco import MongoClient as EmbeddedClient
from mongoeco.engines.sqlite import SQLiteEngine
from pymongo import ASCENDING, DESCENDING, MongoClient

from snipix.db.engine import SQL_TRACE_ENV, DurableSQLiteEngine, StatementTrace
from snipix.db.engine_record import DATA_FILE
from snipix.db.launcher import start_engine_process
from tests.db.sql_plans import collection_scans, read_trace
from tests.support import clean_env

LIST_INDEX = [("userId", ASCENDING), ("updatedAt", DESCENDING), ("_id", DESCENDING)]
START = datetime(2026, 1, 1, tzinfo=UTC)


def projects(count: int) -> list[dict[str, Any]]:
    return [
        {
            "_id": f"p{i:05d}",
            "userId": f"u{i % 10}",
            "name": f"project {i}",
            "isDeleted": i % 7 == 0,
            "updatedAt": START + timedelta(seconds=(i * 37) % count),
        }
        for i in range(count)
    ]


def list_page(collection: Any) -> list[str]:
    """The service's list query: one owner's active projects, newest first."""
    found = collection.find(
        {"userId": "u3", "isDeleted": False}, {"name": 1}, hint="by_updated"
    ).sort([("updatedAt", DESCENDING), ("_id", DESCENDING)])
    return [doc["_id"] for doc in found.limit(10)]


@pytest.fixture
def traced(tmp_path: Path) -> Iterator[tuple[MongoClient[dict[str, Any]], Path, Path]]:
    """`snipix engine` recording every statement, with 500 projects and the list index."""
    trace = tmp_path / "statements.jsonl"
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    engine = start_engine_process(data_dir, env=clean_env(**{SQL_TRACE_ENV: str(trace)}))
    client: MongoClient[dict[str, Any]] = MongoClient(engine.uri, tz_aware=True)
    try:
        client.db.projects.insert_many(projects(500))
        client.db.projects.create_index(LIST_INDEX, name="by_updated")
        yield client, trace, data_dir / DATA_FILE
    finally:
        client.close()
        engine.stop()


@pytest.mark.process
def test_a_list_page_reads_only_its_owner_in_index_order(
    traced: tuple[MongoClient[dict[str, Any]], Path, Path],
) -> None:
    client, trace, data_file = traced
    start = trace.stat().st_size
    page = list_page(client.db.projects)
    assert len(page) == 10
    executed = read_trace(trace, start=start)
    assert any('INDEXED BY "idx_' in statement for statement in executed), executed
    assert collection_scans(executed, data_file) == []


@pytest.mark.process
def test_without_its_index_the_same_page_is_reported_as_a_scan(
    traced: tuple[MongoClient[dict[str, Any]], Path, Path],
) -> None:
    """The check can fail: drop the index (and so the hint) and it sees the scan."""
    client, trace, data_file = traced
    expected = list_page(client.db.projects)
    client.db.projects.drop_index("by_updated")
    start = trace.stat().st_size
    found = client.db.projects.find({"userId": "u3", "isDeleted": False}, {"name": 1})
    page = [doc["_id"] for doc in found.sort([("updatedAt", -1), ("_id", -1)]).limit(10)]
    assert page == expected
    scans = collection_scans(read_trace(trace, start=start), data_file)
    assert scans, "a read without any index must be reported as a collection scan"


class TracedStockEngine(SQLiteEngine):
    """mongoeco's engine without our overrides, recording its statements."""

    statement_trace: StatementTrace | None = None

    def _create_sqlite_connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection = super()._create_sqlite_connection()
        if self.statement_trace is not None:
            connection.set_trace_callback(self.statement_trace.record)
        return connection


@pytest.mark.parametrize("engine_class", [DurableSQLiteEngine, TracedStockEngine])
def test_the_stock_engine_scans_where_ours_reads_the_index(
    tmp_path: Path, engine_class: type[Any]
) -> None:
    """Same data, same query, same answer: only the engine with the overrides avoids the
    scan (remove the override and the plan check fails)."""
    data_file = tmp_path / DATA_FILE
    engine = engine_class(str(data_file))
    trace = tmp_path / "statements.jsonl"
    engine.statement_trace = StatementTrace(trace)
    with EmbeddedClient(engine=engine) as client:
        collection = client.db.projects
        collection.create_index(LIST_INDEX, name="by_updated")
        collection.insert_many(projects(300))
        start = trace.stat().st_size
        page = list_page(collection)
        scans = collection_scans(read_trace(trace, start=start), data_file)
    engine.statement_trace.close()
    owned = sorted(
        (doc for doc in projects(300) if doc["userId"] == "u3" and not doc["isDeleted"]),
        key=lambda doc: (doc["updatedAt"], doc["_id"]),
        reverse=True,
    )
    assert page == [doc["_id"] for doc in owned[:10]]
    if engine_class is DurableSQLiteEngine:
        assert scans == []
    else:
        assert scans, "the stock engine scans; the check must see it"
