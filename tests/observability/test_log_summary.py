"""`snipix logs summarize`: the numbers an operator reads off the service's own log lines."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import structlog

from snipix.app import create_app
from snipix.errors import DatabaseUnavailable
from snipix.observability.log_summary import EXACT_LIMIT, LatencySketch, LogSummary
from snipix.observability.logging import configure_logging
from snipix.settings import Settings
from tests.support import clean_env, run_snipix, running_app

OWNER = {"X-User-Id": "editor-1"}
GARBAGE = [
    "Traceback (most recent call last):",
    '{"event": "request", "status": 200, "latency_ms": 1.',  # a line cut mid-write
    "\x00\x01 binary noise",
    "[1, 2, 3]",  # JSON, but not a log event
]
# The slow-query shape the metrics work writes (event "slow query": command, collection,
# duration_ms, shape); emitted here through the real logging pipeline.
SLOW_QUERIES: list[dict[str, Any]] = [
    {
        "command": "find",
        "collection": "projects",
        "duration_ms": 150.0,
        "shape": {"userId": "?", "isDeleted": "?"},
    },
    {
        "command": "find",
        "collection": "projects",
        "duration_ms": 420.5,
        "shape": {"userId": "?", "isDeleted": "?"},
    },
    {
        "command": "aggregate",
        "collection": "timelines",
        "duration_ms": 1200.0,
        "shape": [{"$match": {"projectId": "?"}}],
    },
]


def nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


@pytest.fixture
async def service_log(
    settings: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> Path:
    """A log file the service wrote: 15 real requests (3 5xx, 3 4xx), slow queries, garbage."""
    # The slow queries are the ones written below: a real command that happens to pass a
    # threshold on a busy machine (start-up's index builds) must not join them.
    settings = settings.model_copy(update={"slow_query_ms": 600_000})
    configure_logging(settings)
    app = create_app(settings)

    @app.get("/probe/unavailable")
    async def unavailable() -> None:
        raise DatabaseUnavailable()

    @app.get("/probe/bug")
    async def bug() -> None:
        raise RuntimeError("a bug")

    async with running_app(app) as http:
        for _ in range(6):
            assert (await http.get("/health/live")).status_code == 200
        for _ in range(3):
            assert (await http.get("/api/v1/projects", headers=OWNER)).status_code == 200
        for _ in range(2):
            assert (await http.get("/no/such/route")).status_code == 404
        invalid = await http.post("/api/v1/projects", json={"name": ""}, headers=OWNER)
        assert invalid.status_code == 422
        for _ in range(2):
            assert (await http.get("/probe/bug")).status_code == 500
        assert (await http.get("/probe/unavailable")).status_code == 503
    slow = structlog.get_logger("snipix.db.slow")
    for query in SLOW_QUERIES:
        slow.warning("slow query", **query)
    slow.warning("slow query", command="find", collection="projects")  # no duration
    lines = capsys.readouterr().err.splitlines()
    # Garbage interleaved with real lines, as a shared log stream has it.
    mixed = lines[:3] + GARBAGE + lines[3:]
    path = tmp_path / "service.log"
    path.write_text("\n".join(mixed) + "\n")
    return path


def request_latencies(path: Path) -> list[float]:
    return [
        float(entry["latency_ms"])
        for line in path.read_text().splitlines()
        if line.startswith("{") and (entry := _json(line)) and entry.get("event") == "request"
    ]


def _json(line: str) -> dict[str, Any] | None:
    try:
        parsed = json.loads(line)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def summarize(
    args: list[str], cwd: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    if stdin is None:
        return run_snipix(["logs", "summarize", *args], env=clean_env(), cwd=cwd)
    return subprocess.run(
        [sys.executable, "-m", "snipix", "logs", "summarize", *args],
        env=clean_env(),
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.process
def test_summary_of_a_real_service_log(service_log: Path, tmp_path: Path) -> None:
    """Counts, error shares, percentiles, slow shapes and codes match what the service did."""
    result = summarize([str(service_log), "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)

    assert report["requests"] == 15
    assert report["skipped"] == len(GARBAGE)
    assert report["incomplete"] == 1
    assert report["errors"] == {"5xx": 3, "4xx": 3, "rate5xx": 0.2, "rate4xx": 0.2}
    assert report["statuses"] == {"404": 2, "500": 2, "422": 1, "503": 1}
    assert report["errorCodes"] == {"database_unavailable": 1}

    latencies = request_latencies(service_log)
    assert len(latencies) == 15
    for p in (50, 95, 99):
        assert report["latencyMs"][f"p{p}"] == nearest_rank(latencies, p)
    assert report["latencyMs"]["max"] == max(latencies)

    routes = {(r["method"], r["route"]): r for r in report["routes"]}
    assert report["routes"][0]["route"] == "/health/live"
    assert routes["GET", "/health/live"]["count"] == 6
    assert routes["GET", "/api/v1/projects"]["count"] == 3
    assert routes["GET", "<unmatched>"]["rate4xx"] == 1.0
    assert routes["GET", "/probe/bug"]["rate5xx"] == 1.0
    assert routes["POST", "/api/v1/projects"]["count"] == 1

    slow = report["slowQueries"]
    assert [(q["command"], q["collection"], q["count"]) for q in slow] == [
        ("aggregate", "timelines", 1),
        ("find", "projects", 2),
    ]
    assert slow[1]["durationMs"]["max"] == 420.5
    assert slow[1]["totalMs"] == 570.5
    assert slow[1]["shape"] == '{"userId":"?","isDeleted":"?"}'


@pytest.mark.process
def test_stdin_gives_the_same_summary_as_text(service_log: Path, tmp_path: Path) -> None:
    """`-` reads stdin; the default output is a readable table with the same numbers."""
    from_file = summarize([str(service_log), "--json"], tmp_path)
    from_stdin = summarize(["-", "--json"], tmp_path, stdin=service_log.read_text())
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert json.loads(from_stdin.stdout) == json.loads(from_file.stdout)

    text = summarize(["-", "--top", "2"], tmp_path, stdin=service_log.read_text())
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert "requests     15" in lines
    assert "errors       5xx 20.0% (3)   4xx 20.0% (3)" in lines
    assert any(line.startswith("latency ms   p50 ") for line in lines)
    assert "routes (top 2 of 6 by count)" in lines
    assert any(line.startswith("GET     /health/live") for line in lines)
    assert any(line.startswith("aggregate  timelines") for line in lines)
    assert any(line.startswith("database_unavailable") for line in lines)


@pytest.mark.process
def test_a_log_without_slow_queries_or_json(tmp_path: Path) -> None:
    """Console-format or foreign lines are counted and explained, never fatal."""
    path = tmp_path / "console.log"
    path.write_text("2025-01-01 [info] request status=200\nnot json either\n")
    result = summarize([str(path)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "lines        2 (2 not JSON, skipped)" in result.stdout
    assert "was the service running with LOG_FORMAT=json?" in result.stdout
    assert "requests     0" in result.stdout
    assert '(no "slow query" lines)' in result.stdout


@pytest.mark.process
def test_missing_file_is_one_error_line(tmp_path: Path) -> None:
    """An unreadable file: exit 1 with one `error:` line, no traceback."""
    result = summarize([str(tmp_path / "nope.log")], tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: cannot read {tmp_path / 'nope.log'}: No such file or directory"
    ]


def test_prefixed_lines_from_a_container_runtime_are_read() -> None:
    """`docker logs -t` / CRI prefixes before the JSON object do not hide the event."""
    line = json.dumps({"event": "request", "route": "/x", "status": 200, "latency_ms": 3.0})
    summary = LogSummary().feed_all([f"2025-01-01T00:00:00Z stdout F {line}"])
    assert summary.requests == 1
    assert summary.skipped == 0


def test_error_codes_on_access_lines_are_not_counted_twice() -> None:
    """When the access line carries `error_code`, the `request failed` line is not recounted."""

    def line(**fields: Any) -> str:
        return json.dumps(fields)

    summary = LogSummary().feed_all(
        [
            line(event="request failed", error_code="database_unavailable"),
            line(event="request", status=503, latency_ms=2, error_code="database_unavailable"),
            line(event="request", status=404, latency_ms=1, error_code="not_found"),
        ]
    )
    assert summary.as_dict()["errorCodes"] == {"database_unavailable": 1, "not_found": 1}


def test_sketch_percentiles_are_within_half_a_percent() -> None:
    """Past the exact sample, nearest-rank percentiles stay within 0.5% of the true ones."""
    sketch = LatencySketch()
    values = [round(0.37 * v, 2) for v in range(1, 5001)]
    for value in reversed(values):
        sketch.add(value)
    assert sketch.count > EXACT_LIMIT
    for p in (50, 95, 99):
        assert sketch.percentile(p) == pytest.approx(nearest_rank(values, p), rel=0.005)
    assert sketch.percentile(100) == max(values)
    assert sketch.percentile(0) == min(values)


def test_small_samples_are_exact_and_edges_are_defined() -> None:
    """A few values report themselves; no values report None; zeros are zero."""
    sketch = LatencySketch()
    for value in (150.0, 420.5, 3.25):
        sketch.add(value)
    assert [sketch.percentile(p) for p in (50, 95, 99)] == [150.0, 420.5, 420.5]
    assert LatencySketch().percentile(50) is None
    zeros = LatencySketch()
    for _ in range(2000):
        zeros.add(0.0)
    assert zeros.percentile(99) == 0.0
