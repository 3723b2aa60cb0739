"""Summarise the service's JSON log lines: traffic, errors, latency, slow database work.

An operator with a log file (or `kubectl logs | ...`) wants the answers a dashboard would
give without one: how many requests, what share failed, how slow, which routes, which
database shapes. The summariser reads one line at a time and keeps only counters and
latency sketches, so a day of logs costs memory per route and per query shape, never per
line.

The lines it understands are the ones this service writes (see `api.requests`,
`errors` and the slow-query log):

- `{"event": "request", "method", "route", "status", "latency_ms", ...}`, one per request;
- `error_code` on the access line when it carries one, else on other lines (`request
  failed`, written for a 5xx `SnipixError`);
- `{"event": "slow query", "command", "collection", "duration_ms", "shape", ...}`.

Anything else that parses as a JSON object is counted and otherwise ignored; a line that
is not JSON (console-format logs, a shell's noise, a truncated write) is counted as
skipped, never fatal.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# Relative accuracy of the latency percentiles. Exact percentiles would need every value;
# a log-bucketed sketch is within 0.5% of the true value with a few hundred buckets.
RELATIVE_ACCURACY = 0.005
# Up to this many values per sketch are also kept as they are, so a small sample (a quiet
# route, a rare query shape) reports its real values rather than bucket estimates.
EXACT_LIMIT = 1024
PERCENTILES = (50.0, 95.0, 99.0)
_GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_LOG_GAMMA = math.log(_GAMMA)


class LatencySketch:
    """Streaming percentiles with bounded relative error (the DDSketch bucketing).

    Bucket `i` holds values in (gamma^(i-1), gamma^i]; its representative value is within
    RELATIVE_ACCURACY of any value in it. Values at or below zero share one bucket. The
    first EXACT_LIMIT values are also kept, and percentiles are exact until there are more.
    """

    __slots__ = ("_buckets", "_exact", "_zeros", "count", "maximum", "minimum", "total")

    def __init__(self) -> None:
        self._buckets: Counter[int] = Counter()
        self._exact: list[float] | None = []
        self._zeros = 0
        self.count = 0
        self.total = 0.0
        self.minimum = math.inf
        self.maximum = -math.inf

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)
        if self._exact is not None:
            self._exact.append(value)
            if len(self._exact) > EXACT_LIMIT:
                self._exact = None
        if value <= 0:
            self._zeros += 1
        else:
            self._buckets[math.ceil(math.log(value) / _LOG_GAMMA)] += 1

    def percentile(self, p: float) -> float | None:
        """Nearest-rank percentile (the value at rank ceil(p/100 * n)); None when empty."""
        if self.count == 0:
            return None
        rank = max(1, math.ceil(p / 100 * self.count))
        if self._exact is not None:
            return sorted(self._exact)[rank - 1]
        # The exact extremes are known.
        if rank == 1:
            return self.minimum
        if rank == self.count:
            return self.maximum
        seen = self._zeros
        if rank <= seen:
            return max(0.0, self.minimum)
        for index in sorted(self._buckets):
            seen += self._buckets[index]
            if seen >= rank:
                estimate = 2 * _GAMMA**index / (_GAMMA + 1)
                # The exact extremes are known: never report outside them.
                return min(max(estimate, self.minimum), self.maximum)
        return self.maximum  # unreachable: the buckets hold `count` values

    def as_dict(self) -> dict[str, float | int | None]:
        result: dict[str, float | int | None] = {"count": self.count}
        for p in PERCENTILES:
            value = self.percentile(p)
            result[f"p{p:g}"] = None if value is None else round(value, 2)
        result["max"] = round(self.maximum, 2) if self.count else None
        return result


@dataclass
class RouteStats:
    latency: LatencySketch = field(default_factory=LatencySketch)
    client_errors: int = 0
    server_errors: int = 0

    def add(self, status: int, latency_ms: float) -> None:
        self.latency.add(latency_ms)
        if 500 <= status <= 599:
            self.server_errors += 1
        elif 400 <= status <= 499:
            self.client_errors += 1


@dataclass
class QueryShapeStats:
    command: str
    collection: str
    shape: str
    duration: LatencySketch = field(default_factory=LatencySketch)


def _number(value: Any) -> float | None:
    # bool is an int subclass; `true` is not a latency.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _parse(line: str) -> dict[str, Any] | None:
    """The JSON object on this line, or None.

    Tolerates a prefix before the object (container runtimes and `docker logs -t` add a
    timestamp), so logs collected from a cluster need no clean-up first.
    """
    start = line.find("{")
    if start < 0:
        return None
    try:
        parsed = json.loads(line[start:])
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _shape_text(shape: Any) -> str:
    if shape is None:
        return "-"
    if isinstance(shape, str):
        return shape
    # Dicts keep their key order: the order of a filter is part of its shape.
    return json.dumps(shape, separators=(",", ":"), default=str)


class LogSummary:
    """Counters fed one line at a time; `as_dict()` is the report."""

    def __init__(self) -> None:
        self.lines = 0
        self.skipped = 0  # not a JSON object
        self.incomplete = 0  # a request or slow-query line missing a field we need
        self.first_timestamp: str | None = None
        self.last_timestamp: str | None = None
        self.overall = RouteStats()
        self.routes: dict[tuple[str, str], RouteStats] = {}
        self.statuses: Counter[int] = Counter()
        # An access line that names its error code is the complete record; other lines with
        # an `error_code` (`request failed`, 5xx only) are the fallback for logs without it.
        # Kept apart so a 5xx is never counted from both.
        self.request_error_codes: Counter[str] = Counter()
        self.other_error_codes: Counter[str] = Counter()
        self.queries: dict[tuple[str, str, str], QueryShapeStats] = {}

    def feed(self, line: str) -> None:
        if not line.strip():
            return
        self.lines += 1
        entry = _parse(line)
        if entry is None:
            self.skipped += 1
            return
        timestamp = entry.get("timestamp")
        if isinstance(timestamp, str):
            # ISO 8601 in UTC, as the service writes it, sorts as text.
            if self.first_timestamp is None or timestamp < self.first_timestamp:
                self.first_timestamp = timestamp
            if self.last_timestamp is None or timestamp > self.last_timestamp:
                self.last_timestamp = timestamp
        code = entry.get("error_code")
        event = entry.get("event")
        if isinstance(code, str) and code:
            codes = self.request_error_codes if event == "request" else self.other_error_codes
            codes[code] += 1
        if event == "request":
            self._request(entry)
        elif event == "slow query":
            self._slow_query(entry)

    def feed_all(self, lines: Iterable[str]) -> LogSummary:
        for line in lines:
            self.feed(line)
        return self

    def _request(self, entry: dict[str, Any]) -> None:
        status, latency = entry.get("status"), _number(entry.get("latency_ms"))
        if isinstance(status, bool) or not isinstance(status, int) or latency is None:
            self.incomplete += 1
            return
        route = entry.get("route")
        method = entry.get("method")
        key = (
            method if isinstance(method, str) else "-",
            route if isinstance(route, str) else "<unmatched>",
        )
        self.overall.add(status, latency)
        self.routes.setdefault(key, RouteStats()).add(status, latency)
        self.statuses[status] += 1

    def _slow_query(self, entry: dict[str, Any]) -> None:
        duration = _number(entry.get("duration_ms"))
        command = entry.get("command")
        if duration is None or not isinstance(command, str):
            self.incomplete += 1
            return
        collection = entry.get("collection")
        key = (
            command,
            collection if isinstance(collection, str) else "-",
            _shape_text(entry.get("shape")),
        )
        if key not in self.queries:
            self.queries[key] = QueryShapeStats(*key)
        self.queries[key].duration.add(duration)

    @property
    def requests(self) -> int:
        return self.overall.latency.count

    def as_dict(self, top: int = 10) -> dict[str, Any]:
        """The report: plain JSON types, routes and query shapes cut to the `top` first."""
        requests = self.requests
        error_codes = self.request_error_codes or self.other_error_codes

        def share(count: int, of: int) -> float:
            return round(count / of, 4) if of else 0.0

        routes = sorted(
            self.routes.items(), key=lambda item: (-item[1].latency.count, item[0][1], item[0][0])
        )
        # Slowest first: a shape that once took 4 s matters more than one that often takes 120 ms.
        queries = sorted(
            self.queries.values(),
            key=lambda q: (-q.duration.maximum, -q.duration.count, q.command, q.collection),
        )
        return {
            "lines": self.lines,
            "skipped": self.skipped,
            "incomplete": self.incomplete,
            "period": {"first": self.first_timestamp, "last": self.last_timestamp},
            "requests": requests,
            "errors": {
                "5xx": self.overall.server_errors,
                "4xx": self.overall.client_errors,
                "rate5xx": share(self.overall.server_errors, requests),
                "rate4xx": share(self.overall.client_errors, requests),
            },
            "latencyMs": self.overall.latency.as_dict(),
            "routes": [
                {
                    "method": method,
                    "route": route,
                    "count": stats.latency.count,
                    "rate5xx": share(stats.server_errors, stats.latency.count),
                    "rate4xx": share(stats.client_errors, stats.latency.count),
                    "latencyMs": stats.latency.as_dict(),
                }
                for (method, route), stats in routes[:top]
            ],
            "routesTotal": len(routes),
            "slowQueries": [
                {
                    "command": q.command,
                    "collection": q.collection,
                    "shape": q.shape,
                    "count": q.duration.count,
                    "totalMs": round(q.duration.total, 2),
                    "durationMs": q.duration.as_dict(),
                }
                for q in queries[:top]
            ],
            "slowQueryShapesTotal": len(queries),
            "statuses": {
                str(status): count
                for status, count in sorted(
                    self.statuses.items(), key=lambda item: (-item[1], item[0])
                )
                if status >= 400
            },
            "errorCodes": dict(
                sorted(error_codes.items(), key=lambda item: (-item[1], item[0]))[:top]
            ),
        }


def _ms(value: float | int | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        parts = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    return [line(header), *(line(row) for row in rows)]


def render_text(report: dict[str, Any], *, shape_width: int = 80) -> str:
    """The report as aligned plain-text tables (readable in a terminal and in a ticket)."""
    out: list[str] = []
    lines, skipped, incomplete = report["lines"], report["skipped"], report["incomplete"]
    note = f"{skipped} not JSON, skipped"
    if incomplete:
        note += f"; {incomplete} incomplete"
    out.append(f"lines        {lines} ({note})")
    period = report["period"]
    if period["first"]:
        out.append(f"period       {period['first']} .. {period['last']}")
    if lines and skipped == lines:
        out.append("no JSON lines: was the service running with LOG_FORMAT=json?")
    errors, latency = report["errors"], report["latencyMs"]
    out.append(f"requests     {report['requests']}")
    out.append(
        f"errors       5xx {_pct(errors['rate5xx'])} ({errors['5xx']})   "
        f"4xx {_pct(errors['rate4xx'])} ({errors['4xx']})"
    )
    out.append(
        f"latency ms   p50 {_ms(latency['p50'])}   p95 {_ms(latency['p95'])}   "
        f"p99 {_ms(latency['p99'])}   max {_ms(latency['max'])}"
    )

    out.append("")
    routes = report["routes"]
    out.append(f"routes (top {len(routes)} of {report['routesTotal']} by count)")
    if routes:
        out.extend(
            _table(
                ["method", "route", "count", "5xx", "4xx", "p50", "p95", "p99", "max"],
                [
                    [
                        r["method"],
                        r["route"],
                        str(r["count"]),
                        _pct(r["rate5xx"]),
                        _pct(r["rate4xx"]),
                        _ms(r["latencyMs"]["p50"]),
                        _ms(r["latencyMs"]["p95"]),
                        _ms(r["latencyMs"]["p99"]),
                        _ms(r["latencyMs"]["max"]),
                    ]
                    for r in routes
                ],
                right={2, 3, 4, 5, 6, 7, 8},
            )
        )
    else:
        out.append("  (no request lines)")

    out.append("")
    queries = report["slowQueries"]
    out.append(
        f"slow database operations (top {len(queries)} of {report['slowQueryShapesTotal']} "
        "shapes, slowest first)"
    )
    if queries:
        out.extend(
            _table(
                ["command", "collection", "count", "max ms", "p50 ms", "total ms", "shape"],
                [
                    [
                        q["command"],
                        q["collection"],
                        str(q["count"]),
                        _ms(q["durationMs"]["max"]),
                        _ms(q["durationMs"]["p50"]),
                        _ms(q["totalMs"]),
                        q["shape"]
                        if len(q["shape"]) <= shape_width
                        else q["shape"][: shape_width - 3] + "...",
                    ]
                    for q in queries
                ],
                right={2, 3, 4, 5},
            )
        )
    else:
        out.append('  (no "slow query" lines)')

    out.append("")
    out.append("error statuses")
    statuses = report["statuses"]
    if statuses:
        out.extend(
            _table(
                ["status", "count"],
                [[status, str(count)] for status, count in statuses.items()],
                right={1},
            )
        )
    else:
        out.append("  (none)")
    out.append("")
    out.append("error codes")
    codes = report["errorCodes"]
    if codes:
        out.extend(
            _table(
                ["code", "count"], [[code, str(count)] for code, count in codes.items()], right={1}
            )
        )
    else:
        out.append("  (none)")
    return "\n".join(out)
