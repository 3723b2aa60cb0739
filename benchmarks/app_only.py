"""The app's own CPU per request: ASGI calls in process, no HTTP server, no load generator.

    .venv/bin/python benchmarks/app_only.py [--requests 3000] [--profile MODE]
        [--mongodb-uri URI] [--redis-url URL]

The suite (`python -m benchmarks`) measures what a client sees; this isolates what the
app adds, which is where middleware, dependency and logging changes show (docs/
performance.md). One project is read again and again by calling the ASGI app directly
with a prepared scope, in three apps over the same embedded engine (or `--mongodb-uri`)
and redis-server (or `--redis-url`), side by side in one run:

- `cached, hot lane`: the service as configured by default (Redis, local layer, lane);
- `cached, routed`: the same with SNIPIX_HOT_READS=false (every read through FastAPI);
- `uncached`: SNIPIX_CACHE_ENABLED=false (every read is a `find_one` on the database).

Logging is configured as in production (JSON at INFO, to /dev/null), so the access line is
in the figure. `--profile MODE` prints the top functions of one mode under cProfile.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import sys
import time
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from harness import database, describe_engine, redis_server

from snipix.app import create_app
from snipix.observability.logging import configure_logging
from snipix.settings import Settings

MODES = ("cached, hot lane", "cached, routed", "uncached")
USER = "bench-user"


def settings_for(mode: str, uri: str, redis_url: str) -> Settings:
    return Settings(
        _env_file=None,
        mongodb_uri=uri,
        mongodb_database="bench_app_only",
        redis_url=redis_url,
        log_format="json",
        log_level="INFO",
        retention_interval_s=0,
        cache_enabled=mode != "uncached",
        hot_reads=mode == "cached, hot lane",
        rate_limit_writes=0,
        rate_limit_searches=0,
    )


def scope_for(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench"), (b"x-user-id", USER.encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def call(app: Any, scope: dict[str, Any]) -> int:
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    # asgi-lifespan's wrapper gives each request the lifespan state, as uvicorn does.
    await app({**scope, "state": {}}, receive, send)
    return status


async def measure(
    mode: str, uri: str, redis_url: str, requests: int, profile: bool
) -> tuple[float, str]:
    """Microseconds per GET of one project, and the profile when asked for."""
    app = create_app(settings_for(mode, uri, redis_url))
    async with LifespanManager(app, startup_timeout=60) as manager:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://bench"
        ) as http:
            created = await http.post(
                "/api/v1/projects", json={"name": "P"}, headers={"X-User-Id": USER}
            )
        assert created.status_code == 201, created.text
        scope = scope_for(f"/api/v1/projects/{created.json()['id']}")
        for _ in range(200):  # warm: a miss fills Redis, the next read the local layer
            assert await call(manager.app, scope) == 200
        await asyncio.sleep(0.2)
        profiler = cProfile.Profile() if profile else None
        if profiler is not None:
            profiler.enable()
        started = time.perf_counter()
        for _ in range(requests):
            await call(manager.app, scope)
        elapsed = time.perf_counter() - started
        report = ""
        if profiler is not None:
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
            report = out.getvalue()
    return elapsed / requests * 1e6, report


async def run(args: argparse.Namespace, uri: str, redis_url: str, embedded: bool) -> None:
    print(f"engine  {await describe_engine(uri, embedded)}", flush=True)
    # Production logging (JSON at INFO), written to /dev/null so the terminal is not the cost.
    sink = open(os.devnull, "w")  # noqa: SIM115, ASYNC230 (/dev/null never blocks)
    stderr, sys.stderr = sys.stderr, sink
    try:
        configure_logging(settings_for(MODES[0], uri, redis_url))
        results: dict[str, float] = {}
        reports: dict[str, str] = {}
        for mode in MODES:
            # Each mode twice, interleaved, the better kept: the machine is shared.
            for _ in range(2):
                us, report = await measure(
                    mode, uri, redis_url, args.requests, args.profile == mode
                )
                results[mode] = min(results.get(mode, us), us)
                reports[mode] = report or reports.get(mode, "")
    finally:
        sys.stderr = stderr
        sink.close()
    base = results[MODES[0]]
    print(f"\n  {'mode':<20} {'us/request':>11} {'vs hot lane':>12}")
    for mode in MODES:
        print(f"  {mode:<20} {results[mode]:>11.0f} {results[mode] / base:>11.1f}x")
    for mode, report in reports.items():
        if report:
            print(f"\nprofile of {mode!r}:\n{report}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--profile", choices=MODES, help="print a cProfile of this mode")
    parser.add_argument("--mongodb-uri", help="use this server instead of an embedded engine")
    parser.add_argument("--redis-url", help="use this Redis instead of starting redis-server")
    args = parser.parse_args()
    with database(args.mongodb_uri) as (uri, embedded, _), redis_server(args.redis_url) as url:
        asyncio.run(run(args, uri, url, embedded))


if __name__ == "__main__":
    main()
