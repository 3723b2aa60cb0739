"""Database monitoring: command timing, slow-query lines without values, topology events.

Everything runs against a real engine: the shared one for commands, a dedicated one that the
topology test kills and restarts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pymongo
import pytest
import structlog
from bson import Int64, ObjectId
from prometheus_client.parser import text_string_to_metric_families
from pymongo import monitoring
from pymongo.errors import OperationFailure, PyMongoError

from snipix.app import create_app
from snipix.db.client import MongoClient, connected
from snipix.db.launcher import EngineProcess, start_engine_process
from snipix.db.monitoring import (
    SHAPE_MAX_CHARS,
    UNKNOWN_COLLECTION,
    CommandMonitor,
    PoolStats,
    TopologyMonitor,
    query_shape,
)
from snipix.observability.logging import configure_logging
from snipix.observability.metrics import Metrics
from snipix.settings import Settings
from tests.support import clean_env, free_port, running_app

# Looks like a live credential; must never appear in a log line.
SECRET = "sk_live_4f9aQ2-very-secret-token"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def log_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def slow_lines(text: str, collection: str) -> list[dict[str, Any]]:
    return [
        line
        for line in log_lines(text)
        if line["event"] == "slow query" and line["collection"] == collection
    ]


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return 0.0


# --- query shapes ---------------------------------------------------------------------------


def test_query_shape_keeps_fields_and_operators_and_drops_every_value() -> None:
    """An operator reading a slow-query line sees which fields and operators, not whose data."""
    command = {
        "find": "projects",
        "filter": {
            "owner": SECRET,
            "_id": ObjectId(),
            "deletedAt": None,
            "updatedAt": {"$gte": datetime(2026, 1, 1, tzinfo=UTC)},
            "$or": [{"archived": False}, {"size": {"$gt": Int64(5)}}],
            "tags": {"$in": [SECRET, "b", "c", "d", "e"]},
            "blob": b"\x00secret",
            "score": 1.5,
        },
        "sort": {"updatedAt": -1},
        "limit": 20,
        "lsid": {"id": "session"},
        "$db": "snipix",
        "$clusterTime": {"clusterTime": 1},
    }
    shape = query_shape(command, "find")
    assert json.loads(shape) == {
        "filter": {
            "owner": "<string>",
            "_id": "<objectId>",
            "deletedAt": "<null>",
            "updatedAt": {"$gte": "<date>"},
            "$or": [{"archived": "<bool>"}, {"size": {"$gt": "<long>"}}],
            "tags": {"$in": ["<string>", "<string>", "<string>", "<+2 more>"]},
            "blob": "<binData>",
            "score": "<double>",
        },
        "sort": {"updatedAt": "<int>"},
        "limit": "<int>",
    }
    assert SECRET not in shape
    assert "projects" not in shape, "the collection is its own field of the line"


class CountingDocument(dict[str, Any]):
    """A document that counts how many of its fields were visited."""

    visited = 0

    def items(self) -> Iterator[tuple[str, Any]]:  # type: ignore[override]
        for item in super().items():
            CountingDocument.visited += 1
            yield item


def test_long_and_deep_shapes_are_cut() -> None:
    """A 1 MB insert or a deeply nested document still gives a short line, cheaply."""
    wide = CountingDocument({f"field{i}": SECRET for i in range(100_000)})
    shape = query_shape({"insert": "timelines", "documents": [wide]}, "insert")
    assert len(shape) == SHAPE_MAX_CHARS
    assert shape.endswith("...")
    assert CountingDocument.visited < 1_000, "the walk stopped; it did not shape 100,000 fields"
    assert SECRET not in shape

    deep: dict[str, Any] = {"v": SECRET}
    for _ in range(30):
        deep = {"a": deep}
    shape = query_shape({"find": "x", "filter": deep}, "find")
    assert "<...>" in shape
    assert SECRET not in shape


# --- commands against the engine -------------------------------------------------------------


@pytest.mark.usefixtures("restore_logging")
async def test_a_slow_query_is_one_line_with_its_shape_and_no_values(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """With SLOW_QUERY_MS=0 a find logs one `slow query` line: command, collection, duration,
    shape; the secret in the filter and in the inserted documents appears nowhere."""
    configured = settings.model_copy(update={"slow_query_ms": 0})
    configure_logging(configured)
    metrics = Metrics("test")
    monitor = CommandMonitor(metrics, slow_query_ms=configured.slow_query_ms)
    async with connected(configured, listeners=[monitor]) as client:
        collection = client[configured.database_name]["slow_probe"]
        await collection.insert_many([{"apiKey": SECRET, "size": n} for n in range(10)])
        capsys.readouterr()
        query = {"apiKey": SECRET, "size": {"$gt": 5}, "tags": {"$nin": [SECRET]}}
        found = await collection.find(query).sort("size", 1).to_list()
    assert len(found) == 4
    output = capsys.readouterr().err

    (line,) = slow_lines(output, "slow_probe")
    assert line["level"] == "warning"
    assert line["command"] == "find"
    assert line["database"] == configured.database_name
    assert line["duration_ms"] >= 0
    assert line["threshold_ms"] == 0
    assert line["outcome"] == "ok"
    shape = json.loads(line["shape"])
    assert shape["filter"] == {
        "apiKey": "<string>",
        "size": {"$gt": "<int>"},
        "tags": {"$nin": ["<string>"]},
    }
    assert shape["sort"] == {"size": "<int>"}
    assert SECRET not in output
    assert monitor.pending == 0, "every started command was matched with its end"
    labels = {"command": "find", "collection": "slow_probe"}
    assert sample(metrics, "snipix_db_command_duration_seconds_count", **labels) == 1
    assert sample(metrics, "snipix_db_slow_commands_total", **labels) == 1


@pytest.mark.usefixtures("restore_logging")
async def test_commands_under_the_threshold_are_timed_but_not_logged(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """A query faster than SLOW_QUERY_MS adds to the histogram and writes no line."""
    configured = settings.model_copy(update={"slow_query_ms": 600_000})
    configure_logging(configured)
    metrics = Metrics("test")
    monitor = CommandMonitor(metrics, slow_query_ms=configured.slow_query_ms)
    async with connected(configured, listeners=[monitor]) as client:
        collection = client[configured.database_name]["fast_probe"]
        await collection.insert_one({"apiKey": SECRET})
        assert await collection.find_one({"apiKey": SECRET}) is not None
    output = capsys.readouterr().err
    assert slow_lines(output, "fast_probe") == []
    labels = {"command": "find", "collection": "fast_probe"}
    assert sample(metrics, "snipix_db_command_duration_seconds_count", **labels) == 1
    assert sample(metrics, "snipix_db_slow_commands_total", **labels) == 0


async def test_failed_commands_are_counted_by_error_class(settings: Settings) -> None:
    """A command the server rejects shows up in the error counter under its codeName."""
    metrics = Metrics("test")
    monitor = CommandMonitor(metrics, slow_query_ms=settings.slow_query_ms)
    async with connected(settings, listeners=[monitor]) as client:
        with pytest.raises(OperationFailure) as failure:
            await client[settings.database_name]["probe"].find_one({"$bogus": 1})
    assert failure.value.details is not None
    code_name = failure.value.details["codeName"]
    labels = {"command": "find", "error_class": code_name}
    assert sample(metrics, "snipix_db_command_errors_total", **labels) == 1
    assert monitor.pending == 0


def test_commands_that_never_finish_do_not_grow_memory() -> None:
    """A started command with no end (cancelled mid-flight) is forgotten past the cap."""
    metrics = Metrics("test")
    monitor = CommandMonitor(metrics, slow_query_ms=600_000, max_pending=2)
    took = timedelta(microseconds=1500)
    address = ("127.0.0.1", 27017)
    for request_id in range(5):
        monitor.started(
            monitoring.CommandStartedEvent(
                {"find": "projects", "filter": {"owner": SECRET}}, "snipix", request_id, address, 1
            )
        )
    assert monitor.pending == 2
    # The end of a forgotten command is still timed, under an honest label.
    monitor.succeeded(monitoring.CommandSucceededEvent(took, {"ok": 1}, "find", 0, address, 1))
    monitor.succeeded(monitoring.CommandSucceededEvent(took, {"ok": 1}, "find", 4, address, 1))
    assert monitor.pending == 1
    forgotten = {"command": "find", "collection": UNKNOWN_COLLECTION}
    assert sample(metrics, "snipix_db_command_duration_seconds_count", **forgotten) == 1
    known = {"command": "find", "collection": "projects"}
    assert sample(metrics, "snipix_db_command_duration_seconds_count", **known) == 1


@pytest.mark.usefixtures("restore_logging")
async def test_slow_query_lines_from_the_app_carry_the_request_id(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """SLOW_QUERY_MS reaches the app's listener, and a slow line names the request behind it."""
    configured = settings.model_copy(update={"slow_query_ms": 0})
    configure_logging(configured)
    app = create_app(configured)
    async with running_app(app) as http:
        capsys.readouterr()
        response = await http.get("/health/ready", headers={"X-Request-ID": "trace-slow-1"})
    assert response.status_code == 200
    pings = [
        line
        for line in log_lines(capsys.readouterr().err)
        if line["event"] == "slow query" and line["command"] == "ping"
    ]
    assert pings
    assert all(line["request_id"] == "trace-slow-1" for line in pings)


# --- topology: a dedicated engine, killed and restarted -------------------------------------


async def wait_for(condition: Any, what: str, timeout_s: float = 30.0) -> None:
    """Poll `condition()` on the event loop (the driver's monitors need it to run)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.1)


async def poke(client: MongoClient, timeout_s: float = 1.0) -> bool:
    """One bounded ping: makes the driver check the server now; True if it answered."""
    try:
        with pymongo.timeout(timeout_s):
            await client.admin.command("ping")
    except PyMongoError:
        return False
    return True


def kill(engine: EngineProcess) -> None:
    os.kill(engine.process.pid, signal.SIGKILL)
    engine.process.wait(timeout=10)


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.process
async def test_a_dead_engine_logs_failing_heartbeats_and_the_lost_primary(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Killing the database: `database heartbeat failed` and `database primary lost` (WARNING),
    snipix_db_up 0; restarting it: `recovered`, `primary changed` (INFO), snipix_db_up 1."""
    port = free_port()
    data_dir = tmp_path / "dedicated-engine"
    engine = start_engine_process(data_dir, port=port, env=clean_env())
    # Heartbeats every 0.5 s instead of 10 s (from the URI; the service sets no such option),
    # so the failure shows within a second rather than at the next 10 s heartbeat.
    separator = "&" if "?" in engine.uri else "?"
    configured = settings.with_mongodb_uri(f"{engine.uri}{separator}heartbeatFrequencyMS=500")
    configure_logging(configured)
    metrics = Metrics("test")
    topology = TopologyMonitor(metrics)
    pool = PoolStats(configured.mongodb_max_pool_size, metrics)
    seen: list[dict[str, Any]] = []

    def logged(event: str) -> bool:
        seen.extend(line for line in log_lines(capsys.readouterr().err) if "event" in line)
        return any(line["event"] == event for line in seen)

    try:
        async with connected(configured, listeners=[topology, pool]) as client:
            await wait_for(lambda: sample(metrics, "snipix_db_up") == 1, "the primary")
            assert logged("database primary changed")
            seen.clear()

            kill(engine)
            assert not await poke(client)
            await wait_for(lambda: logged("database heartbeat failed"), "a heartbeat failure")
            await wait_for(lambda: logged("database primary lost"), "the primary loss")
            assert sample(metrics, "snipix_db_up") == 0
            assert sample(metrics, "snipix_db_heartbeat_failures_total") >= 1
            (failed, *_) = [line for line in seen if line["event"] == "database heartbeat failed"]
            assert failed["level"] == "warning"
            assert failed["server"] == f"127.0.0.1:{port}"
            assert failed["error_class"]
            lost = next(line for line in seen if line["event"] == "database primary lost")
            assert lost["level"] == "warning"
            assert lost["previous"] == f"127.0.0.1:{port}"
            seen.clear()

            engine = start_engine_process(data_dir, port=port, env=clean_env())
            # An operation waiting for the server makes the driver check it at once, rather
            # than at the next 10 s heartbeat.
            assert await poke(client, timeout_s=15)
            await wait_for(lambda: logged("database heartbeat recovered"), "the recovery")
            await wait_for(lambda: logged("database primary changed"), "the primary again")
            assert sample(metrics, "snipix_db_up") == 1
            changed = next(line for line in seen if line["event"] == "database primary changed")
            assert changed["level"] == "info"
            assert changed["primary"] == f"127.0.0.1:{port}"
            assert sample(metrics, "snipix_db_primary_changes_total") >= 3
    finally:
        engine.stop()
    # Closing the client is not an outage: no warning about the primary at shutdown.
    assert not logged("database primary lost")


async def test_pool_gauges_follow_the_listener(client: httpx.AsyncClient) -> None:
    """The pool series in /metrics are the same numbers /health/ready reports."""
    ready = (await client.get("/health/ready")).json()["components"]["pool"]
    scrape = (await client.get("/metrics")).text
    values = {
        s.name: s.value
        for family in text_string_to_metric_families(scrape)
        for s in family.samples
        if s.name.startswith("snipix_db_pool_")
    }
    assert values["snipix_db_pool_connections"] == ready["open"]
    assert values["snipix_db_pool_max_size"] == ready["max"]
    assert values["snipix_db_pool_clears_total"] == ready["clears"]
