"""Cache: GET project through Redis, through the in-process cache and uncached, side by
side in one process, and the hit ratio of a realistic read mix.

    .venv/bin/python benchmarks/cache.py [--projects 1000] [--requests 2000]
        [--concurrency 8] [--mix 5000] [--mongodb-uri URI] [--redis-url URL]

Without `--mongodb-uri` a fresh embedded engine process is started (and stopped); without
`--redis-url` a redis-server is started on a free loopback port (and stopped). Three apps
run in this process over the same database, each behind an in-process HTTP client (ASGI,
no sockets, so the figures are the service's own cost): `uncached` (SNIPIX_CACHE_ENABLED=
false), `redis` and `in-process` (no REDIS_URL). Their GET rounds are interleaved (a block
of each in turn, repeated) so machine noise hits all three alike; throughput is measured
with `--concurrency` requests in flight, latency one request at a time.

The mix: `--mix` operations by 10 editors over their projects with a Zipf-like popularity
(a few projects are open all day): 80 % GET project, 10 % list page, 10 % rename (which
invalidates that project and its owner's list). The hit ratio is read from the app's own
`snipix_cache_events_total`, as Prometheus would.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import httpx
from harness import (
    database,
    describe_engine,
    drop_database,
    expect,
    p95,
    redis_server,
    running_app,
)

from snipix.app import create_app
from snipix.observability.logging import configure_logging
from snipix.settings import Settings

USERS = [f"editor-{n}" for n in range(10)]
BLOCK = 100
MODES = ("uncached", "redis", "in-process")


@dataclass
class ModeResult:
    latencies_ms: list[float] = field(default_factory=list)
    requests: int = 0
    busy_s: float = 0.0


@dataclass
class Results:
    engine: str = ""
    projects: int = 0
    modes: dict[str, ModeResult] = field(default_factory=dict)
    mix_ops: int = 0
    mix_counts: dict[str, int] = field(default_factory=dict)
    hits: float = 0.0
    misses: float = 0.0
    mix_s: float = 0.0


def settings_for(mode: str, uri: str, name: str, redis_url: str) -> Settings:
    return Settings(
        _env_file=None,
        mongodb_uri=uri,
        mongodb_database=name,
        log_format="json",
        log_level="WARNING",
        retention_interval_s=0,
        redis_url=redis_url if mode == "redis" else None,
        cache_enabled=mode != "uncached",
        cache_prefix=f"bench-{name}",
    )


@asynccontextmanager
async def apps(uri: str, name: str, redis_url: str) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    async with AsyncExitStack() as stack:
        clients = {}
        for mode in MODES:
            app = create_app(settings_for(mode, uri, name, redis_url))
            clients[mode] = await stack.enter_async_context(running_app(app))
        yield clients


async def seed(http: httpx.AsyncClient, count: int) -> dict[str, list[str]]:
    owned: dict[str, list[str]] = {user: [] for user in USERS}
    for number in range(count):
        user = USERS[number % len(USERS)]
        response = await http.post(
            "/api/v1/projects",
            json={
                "name": f"Project {number}",
                "description": "Interview cut, second pass " * 4,
                "tags": ["client", f"batch-{number % 7}"],
                "media": {"source": f"videos/{number}.mp4", "durationSec": 600.0 + number},
            },
            headers={"X-User-Id": user},
        )
        expect(response, 201, "seed project")
        owned[user].append(response.json()["id"])
    return owned


async def get_block(
    http: httpx.AsyncClient, targets: list[tuple[str, str]], result: ModeResult, concurrency: int
) -> None:
    """A block of GETs: first one at a time (latency), then `concurrency` in flight."""
    for user, project_id in targets:
        started = time.perf_counter()
        response = await http.get(f"/api/v1/projects/{project_id}", headers={"X-User-Id": user})
        result.latencies_ms.append((time.perf_counter() - started) * 1000)
        expect(response, 200, "GET project")
    queue = list(targets)
    started = time.perf_counter()

    async def worker() -> None:
        while queue:
            user, project_id = queue.pop()
            response = await http.get(f"/api/v1/projects/{project_id}", headers={"X-User-Id": user})
            expect(response, 200, "GET project")

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.busy_s += time.perf_counter() - started
    result.requests += len(targets)


def cache_counts(text: str) -> tuple[float, float]:
    hits = misses = 0.0
    for line in text.splitlines():
        if line.startswith('snipix_cache_events_total{kind="hit"}'):
            hits = float(line.split()[-1])
        elif line.startswith('snipix_cache_events_total{kind="miss"}'):
            misses = float(line.split()[-1])
    return hits, misses


async def mix(
    http: httpx.AsyncClient, owned: dict[str, list[str]], operations: int, rng: random.Random
) -> tuple[dict[str, int], float]:
    """Editors at work: mostly opening their favourite projects, some lists, some renames."""
    counts = {"get": 0, "list": 0, "rename": 0}
    versions: dict[str, int] = {}
    # Zipf-like: the k-th project of a user is opened with weight 1/k.
    weights = {user: [1 / (rank + 1) for rank in range(len(ids))] for user, ids in owned.items()}
    started = time.perf_counter()
    for _ in range(operations):
        user = rng.choice(USERS)
        project_id = rng.choices(owned[user], weights=weights[user])[0]
        roll = rng.random()
        if roll < 0.8:
            response = await http.get(f"/api/v1/projects/{project_id}", headers={"X-User-Id": user})
            expect(response, 200, "mix GET")
            versions[project_id] = response.json()["version"]
            counts["get"] += 1
        elif roll < 0.9:
            response = await http.get("/api/v1/projects?limit=50", headers={"X-User-Id": user})
            expect(response, 200, "mix list")
            counts["list"] += 1
        else:
            version = versions.get(project_id)
            if version is None:
                got = await http.get(f"/api/v1/projects/{project_id}", headers={"X-User-Id": user})
                version = got.json()["version"]
            response = await http.patch(
                f"/api/v1/projects/{project_id}",
                json={"name": f"Renamed {uuid.uuid4().hex[:6]}"},
                headers={"X-User-Id": user, "If-Match": f'"{version}"'},
            )
            expect(response, 200, "mix rename")
            versions[project_id] = response.json()["version"]
            counts["rename"] += 1
    return counts, time.perf_counter() - started


async def measure(
    uri: str,
    redis_url: str,
    *,
    projects: int,
    requests: int,
    concurrency: int,
    ops: int,
    engine: str,
) -> Results:
    configure_logging(settings_for("uncached", uri, "bench", redis_url))
    name = f"bench_cache_{uuid.uuid4().hex[:8]}"
    results = Results(engine=engine, projects=projects)
    rng = random.Random(7)  # noqa: S311 - a reproducible workload, not a secret
    try:
        async with apps(uri, name, redis_url) as clients:
            owned = await seed(clients["uncached"], projects)
            pairs = [(user, pid) for user, ids in owned.items() for pid in ids]
            results.modes = {mode: ModeResult() for mode in MODES}
            # Warm each cache once, then interleave blocks of each mode.
            for mode in ("redis", "in-process"):
                for user, project_id in pairs:
                    await clients[mode].get(
                        f"/api/v1/projects/{project_id}", headers={"X-User-Id": user}
                    )
            rounds = max(1, requests // BLOCK)
            for _ in range(rounds):
                block = [rng.choice(pairs) for _ in range(BLOCK)]
                order = list(MODES)
                rng.shuffle(order)
                for mode in order:
                    await get_block(clients[mode], block, results.modes[mode], concurrency)
            # The mix runs on the Redis app; its counters start after the warm-up above.
            before = cache_counts((await clients["redis"].get("/metrics")).text)
            results.mix_counts, results.mix_s = await mix(clients["redis"], owned, ops, rng)
            after = cache_counts((await clients["redis"].get("/metrics")).text)
            results.hits, results.misses = after[0] - before[0], after[1] - before[1]
            results.mix_ops = ops
    finally:
        await drop_database(uri, name)
    return results


def report(results: Results, concurrency: int) -> None:
    print("Cache: GET /api/v1/projects/{id}, cached and uncached, side by side (ASGI, in-process)")
    print()
    print(f"  engine      {results.engine}")
    print(f"  projects    {results.projects:,} over {len(USERS)} users")
    print()
    uncached = results.modes["uncached"]
    base_rps = uncached.requests / uncached.busy_s
    base_p50 = statistics.median(uncached.latencies_ms)
    print(f"  {'mode':<12}{'req/s':>10}{'x uncached':>12}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}")
    for mode in MODES:
        result = results.modes[mode]
        rps = result.requests / result.busy_s
        lat = sorted(result.latencies_ms)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(
            f"  {mode:<12}{rps:>10,.0f}{rps / base_rps:>11.2f}x"
            f"{statistics.median(lat):>9.2f}{p95(lat):>9.2f}{p99:>9.2f}"
        )
    print(
        f"  ({uncached.requests:,} requests per mode; throughput with {concurrency} in flight, "
        f"latency one at a time; uncached p50 {base_p50:.2f} ms)"
    )
    print()
    lookups = results.hits + results.misses
    ratio = results.hits / lookups if lookups else 0.0
    counts = ", ".join(f"{kind} {count:,}" for kind, count in results.mix_counts.items())
    print(
        f"  read mix on Redis: {results.mix_ops:,} operations ({counts}) in {results.mix_s:.1f} s"
    )
    print(
        f"  cache hit ratio {ratio:.1%}  ({results.hits:,.0f} hits / {lookups:,.0f} lookups; "
        "renames invalidate the project and its owner's list pages)"
    )


def main(arguments: argparse.Namespace) -> None:
    started = time.perf_counter()
    with (
        database(arguments.mongodb_uri) as (uri, embedded, _),
        redis_server(arguments.redis_url) as redis_url,
    ):
        engine = asyncio.run(describe_engine(uri, embedded=embedded))
        results = asyncio.run(
            measure(
                uri,
                redis_url,
                projects=arguments.projects,
                requests=arguments.requests,
                concurrency=arguments.concurrency,
                ops=arguments.mix,
                engine=engine,
            )
        )
    report(results, arguments.concurrency)
    print(f"  total run time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--projects", type=int, default=1_000)
    parser.add_argument("--requests", type=int, default=2_000, help="GETs per mode")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--mix", type=int, default=5_000, help="operations in the read mix")
    parser.add_argument("--mongodb-uri", help="use this server instead of an embedded engine")
    parser.add_argument("--redis-url", help="use this Redis instead of starting redis-server")
    args = parser.parse_args()
    if min(args.projects, args.requests, args.concurrency, args.mix) < 1:
        parser.error("every count must be >= 1")
    main(args)
