"""Command timing and slow-query lines without values, against the shared engine."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from pymongo import monitoring
from pymongo.errors import OperationFailure

from snipix.app import create_app
from snipix.db.client import connected
from snipix.db.monitoring.commands import UNKNOWN_COLLECTION, CommandMonitor
from snipix.db.monitoring.metrics import DatabaseMetrics
from snipix.observability.logging import configure_logging
from snipix.observability.metrics import Metrics
from snipix.settings import Settings
from tests.db.monitoring.helpers import SECRET, log_lines, sample
from tests.support import running_app


def slow_lines(text: str, collection: str) -> list[dict[str, Any]]:
    return [
        line
        for line in log_lines(text)
        if line["event"] == "slow query" and line["collection"] == collection
    ]


@pytest.mark.usefixtures("restore_logging")
async def test_a_slow_query_is_one_line_with_its_shape_and_no_values(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """With SLOW_QUERY_MS=0 a find logs one `slow query` line: command, collection, duration,
    shape; the secret in the filter and in the inserted documents appears nowhere."""
    configured = settings.model_copy(update={"slow_query_ms": 0})
    configure_logging(configured)
    metrics = Metrics("test")
    monitor = CommandMonitor(DatabaseMetrics(metrics), slow_query_ms=configured.slow_query_ms)
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
    monitor = CommandMonitor(DatabaseMetrics(metrics), slow_query_ms=configured.slow_query_ms)
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
    monitor = CommandMonitor(DatabaseMetrics(metrics), slow_query_ms=settings.slow_query_ms)
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
    monitor = CommandMonitor(DatabaseMetrics(metrics), slow_query_ms=600_000, max_pending=2)
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
