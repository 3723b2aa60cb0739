"""The benchmark suite: the service as a user runs it, its floors, and editors at work.

    .venv/bin/python -m benchmarks [--smoke] [--out results.json]
        [--mongodb-uri URI] [--redis-url URL] [--seconds 10] [--editors 10,50,100]

What runs (all on loopback, on this machine):
- a database: a fresh embedded engine process (or `--mongodb-uri`), and a redis-server on a
  free port (or `--redis-url`);
- `snipix serve` twice, as a user starts it (uvicorn, one worker): with the cache, and
  with SNIPIX_CACHE_ENABLED=false (the uncached path), over the same database;
- the floors, served by the same uvicorn: a bare ASGI callable and a one-route FastAPI
  app answering the same bytes as `GET /api/v1/projects/{id}` (HTTP and framework floors);
  the raw driver `find_one` by `_id` and `update_one` of the same autosave (driver and
  write floors), from this process;
- load from `wrk` (a C client in its own process) for the HTTP scenarios; sequential
  requests from this process for the scenarios that need a version in hand (autosave,
  PUT, undo); `benchmarks/editors.py` in its own process for the mixed editors run.

Seeded: 10,000 projects over 100 users (each user's first project has a 50-clip timeline),
one 5,000-clip timeline, one 50,000-word transcript (`--smoke`: far less, about a second
per scenario — CI runs it so the suite cannot rot; no figure is asserted).

Prints one table (figures, the floor beside them, the target) and writes the same as JSON
with `--out`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from harness import (
    clean_env,
    connects,
    database,
    describe_engine,
    free_port,
    redis_server,
    wait_for,
)
from loadgen import WrkResult, run_wrk, wrk_binary
from pymongo import AsyncMongoClient
from timeline_autosave import build_state

from snipix.projects.repository import PROJECT_FIELDS

HERE = Path(__file__).resolve().parent
DATABASE = "bench_suite"
USER_HEADER = "X-User-Id"


@dataclass(frozen=True)
class Scale:
    projects: int
    users: int
    small_clips: int
    large_clips: int
    words: int
    seconds: float
    editors: tuple[int, ...]
    editor_seconds: float
    sequential: int


FULL = Scale(10_000, 100, 50, 5_000, 50_000, 10, (10, 50, 100), 60, 100)
# Editors run 6 s: each starts within 2 s and autosaves 2 s after opening its project.
SMOKE = Scale(200, 10, 50, 500, 2_000, 1, (2,), 6, 10)


@dataclass
class Row:
    name: str
    rps: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    errors: int = 0
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Suite:
    scale: Scale
    engine: str = ""
    rows: list[Row] = field(default_factory=list)
    checks: list[tuple[str, str, bool | None]] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        print(
            f"  .. {row.name}: {_fmt(row.rps, '{:,.0f} req/s')} p50 {_fmt(row.p50_ms)} "
            f"p95 {_fmt(row.p95_ms)} {row.note}",
            flush=True,
        )
        return row

    def row(self, name: str) -> Row:
        return next(row for row in self.rows if row.name == name)


def _fmt(value: float | None, pattern: str = "{:.2f} ms") -> str:
    return pattern.format(value) if value is not None else "-"


def _percentile(ordered: list[float], fraction: float) -> float | None:
    """The value at `fraction` of sorted `ordered` (nearest rank), or None without samples."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


# --- processes -------------------------------------------------------------------------------


def _ready(url: str) -> bool:
    # Plain HTTP on loopback: no CA bundle to load (~50 ms of CPU per client, per poll).
    try:
        with httpx.Client(verify=False, timeout=2) as http:  # noqa: S501 - never TLS
            return http.get(url).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Service:
    process: subprocess.Popen[bytes]
    base: str
    log: Path
    ready_s: float

    def startup_ms(self) -> float | None:
        """The service's own start-up figure (the "service ready" log line)."""
        for line in self.log.read_text(errors="replace").splitlines():
            if '"service ready"' in line:
                try:
                    value = json.loads(line).get("startup_ms")
                except json.JSONDecodeError:
                    return None
                return float(value) if value is not None else None
        return None

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0


@contextmanager
def service(uri: str, redis_url: str, scratch: Path, name: str, **env: str) -> Iterator[Service]:
    port = free_port()
    log = scratch / f"{name}.log"
    environment = clean_env()
    environment.update(
        MONGODB_URI=uri,
        MONGODB_DATABASE=DATABASE,
        REDIS_URL=redis_url,
        SNIPIX_DATA_DIR=str(scratch / f"{name}-data"),
        SNIPIX_RETENTION_INTERVAL_S="0",
        # One user drives thousands of requests a second here: limits so high they are
        # counted (their cost is measured) but never reached.
        SNIPIX_RATE_LIMIT_WRITES="1000000",
        SNIPIX_RATE_LIMIT_SEARCHES="1000000",
        LOG_LEVEL="INFO",
        **env,
    )
    started = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "snipix", "serve", "--port", str(port)],
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ready(f"{base}/health/ready") or process.poll() is not None, 120, name)
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited:\n{log.read_text(errors='replace')[-3000:]}")
        yield Service(process, base, log, time.monotonic() - started)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@contextmanager
def floor(app: str, body: bytes, scratch: Path) -> Iterator[str]:
    body_file = scratch / "floor-body.json"
    body_file.write_bytes(body)
    port = free_port()
    environment = clean_env()
    environment["BENCH_BODY_FILE"] = str(body_file)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            f"floors:{app}",
            "--app-dir",
            str(HERE),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
            "--no-server-header",
        ],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: connects(port), 30, f"floor {app}")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


# --- seeding ---------------------------------------------------------------------------------


@dataclass
class Seeded:
    pairs: list[tuple[str, str]]  # (user, project) with a small timeline each
    large: tuple[str, str]
    transcript: tuple[str, str]
    search_word: str


def _words(count: int, rng: random.Random) -> list[dict[str, Any]]:
    vocabulary = [
        "camera",
        "light",
        "cut",
        "story",
        "interview",
        "beach",
        "music",
        "frame",
        "colour",
        "sound",
        "editor",
        "scene",
        "client",
        "draft",
        "export",
    ]
    segments: list[dict[str, Any]] = []
    t = 0.0
    made = 0
    while made < count:
        size = min(count - made, rng.randint(12, 38))
        words: list[dict[str, Any]] = []
        for _ in range(size):
            length = rng.uniform(0.15, 0.5)
            words.append(
                {"text": rng.choice(vocabulary), "start": round(t, 3), "end": round(t + length, 3)}
            )
            t += length + 0.05
        segments.append(
            {
                "id": f"s{len(segments)}",
                "start": words[0]["start"],
                "end": words[-1]["end"],
                "text": " ".join(w["text"] for w in words),
                "words": words,
            }
        )
        made += size
        t += 0.6
    return segments


async def seed(base: str, scale: Scale) -> Seeded:
    rng = random.Random(3)  # noqa: S311 - reproducible benchmark data
    users = [f"user-{n:03d}" for n in range(scale.users)]
    names = ["Holiday", "Wedding", "Interview", "Launch", "Podcast", "Tutorial", "Reel", "Trailer"]
    firsts: dict[str, str] = {}
    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as http:
        semaphore = asyncio.Semaphore(16)

        async def create(number: int) -> None:
            user = users[number % len(users)]
            async with semaphore:
                response = await http.post(
                    "/api/v1/projects",
                    json={
                        "name": f"{rng.choice(names)} {number}",
                        "description": f"Cut {number} for {rng.choice(names).lower()} client",
                        "tags": [rng.choice(["client", "draft", "final"])],
                    },
                    headers={USER_HEADER: user},
                )
            if response.status_code != 201:
                raise RuntimeError(f"seed: {response.status_code} {response.text[:300]}")
            if number < len(users):
                firsts[user] = response.json()["id"]

        await asyncio.gather(*(create(number) for number in range(scale.projects)))
        small = build_state(scale.small_clips)

        async def save(user: str, project_id: str, state: dict[str, Any]) -> None:
            async with semaphore:
                response = await http.put(
                    f"/api/v1/projects/{project_id}/timeline",
                    json={"state": state},
                    headers={USER_HEADER: user, "If-Match": '"0"'},
                )
            if response.status_code != 200:
                raise RuntimeError(f"seed timeline: {response.status_code} {response.text[:300]}")

        await asyncio.gather(*(save(user, firsts[user], small) for user in users))
        large_user = users[0]
        large = await http.post(
            "/api/v1/projects", json={"name": "Feature film"}, headers={USER_HEADER: large_user}
        )
        large_id = large.json()["id"]
        await save(large_user, large_id, build_state(scale.large_clips))
        talk = await http.post(
            "/api/v1/projects", json={"name": "Long interview"}, headers={USER_HEADER: large_user}
        )
        talk_id = talk.json()["id"]
        uploaded = await http.put(
            f"/api/v1/projects/{talk_id}/transcript",
            json={"language": "en", "segments": _words(scale.words, rng)},
            headers={USER_HEADER: large_user},
        )
        if uploaded.status_code not in {200, 201}:
            raise RuntimeError(f"seed transcript: {uploaded.status_code} {uploaded.text[:300]}")
    return Seeded(
        pairs=[(user, firsts[user]) for user in users],
        large=(large_user, large_id),
        transcript=(large_user, talk_id),
        search_word="Wedding",
    )


# --- measurements ----------------------------------------------------------------------------


async def autosave(
    http: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    version: int,
    ops: list[dict[str, Any]],
) -> httpx.Response:
    """One JSON Patch autosave at `version`, answered without a body (204 + ETag)."""
    return await http.patch(
        url,
        content=json.dumps(ops).encode(),
        headers={
            **headers,
            "If-Match": f'"{version}"',
            "Content-Type": "application/json-patch+json",
            "Prefer": "return=minimal",
        },
    )


@dataclass
class WriterTally:
    count: int = 0
    errors: int = 0


@contextmanager
def background_writers(
    base: str, pairs: list[tuple[str, str]], clips: int
) -> Iterator[WriterTally]:
    """One autosave loop per (user, project), in a thread of its own, for the duration."""
    tally = WriterTally()
    stop = threading.Event()

    async def write(user: str, project_id: str) -> None:
        url = f"/api/v1/projects/{project_id}/timeline"
        headers = {USER_HEADER: user}
        async with httpx.AsyncClient(base_url=base, timeout=120) as http:
            version = (await http.get(url, headers=headers)).json()["version"]
            n = 0
            while not stop.is_set():
                ops = [
                    {"op": "replace", "path": f"/clips/{(n + i) % clips}/volume", "value": i / 10}
                    for i in range(10)
                ]
                response = await autosave(http, url, headers, version, ops)
                n += 1
                if response.status_code != 204:
                    tally.errors += 1
                    version = (await http.get(url, headers=headers)).json()["version"]
                    continue
                tally.count += 1
                version = int(response.headers["ETag"].strip('"'))

    def run() -> None:
        async def all_writers() -> None:
            await asyncio.gather(*(write(user, project) for user, project in pairs))

        asyncio.run(all_writers())

    thread = threading.Thread(target=run, name="writers", daemon=True)
    thread.start()
    try:
        yield tally
    finally:
        stop.set()
        thread.join(timeout=120)


def wrk_row(suite: Suite, name: str, result: WrkResult, note: str = "") -> Row:
    return suite.add(
        Row(
            name,
            result.rps,
            result.p50_ms,
            result.p95_ms,
            result.p99_ms,
            result.errors,
            note,
            {"requests": result.requests, "non2xx": result.non2xx},
        )
    )


def latency_row(suite: Suite, name: str, samples: list[float], note: str = "", **extra: Any) -> Row:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    total_s = sum(samples) / 1000
    return suite.add(
        Row(
            name,
            len(samples) / total_s if total_s else None,
            statistics.median(ordered),
            p95,
            p99,
            0,
            note,
            extra,
        )
    )


async def timed(seconds: float, once: Callable[[], Awaitable[object]]) -> list[float]:
    """`once()` again and again, one at a time, for `seconds`: each call's milliseconds."""
    samples: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        await once()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def driver_reads(uri: str, project_id: str, seconds: float) -> list[float]:
    """Raw driver: find_one by _id, one at a time (the read floor)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        projects = client[DATABASE].projects
        return await timed(seconds, lambda: projects.find_one({"_id": project_id}))
    finally:
        await client.close()


async def driver_floors(
    uri: str, project_id: str, head_id: str, seconds: float
) -> tuple[list[float], list[float]]:
    """Raw driver: find_one by _id (read floor) and update_one of an autosave (write floor)."""
    reads = await driver_reads(uri, project_id, seconds)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        db = client[DATABASE]
        # The write floor works on a copy of a 50-clip head, so the service's data is untouched.
        head = await db.timelines.find_one({"_id": head_id})
        assert head is not None
        head["_id"] = f"floor-{uuid.uuid4().hex}"
        await db.bench_floor.insert_one(head)
        writes: list[float] = []
        deadline = time.monotonic() + seconds
        n = 0
        while time.monotonic() < deadline:
            n += 1
            sets = {f"state.clips.{i}.volume": (n % 10) / 10 for i in range(10)}
            started = time.perf_counter()
            await db.bench_floor.update_one(
                {"_id": head["_id"]}, {"$set": sets, "$inc": {"version": 1}}
            )
            writes.append((time.perf_counter() - started) * 1000)
        await db.bench_floor.drop()
        return reads, writes
    finally:
        await client.close()


async def driver_lists(uri: str, user: str, seconds: float) -> list[float]:
    """Raw driver, the query the list page sends (same filter, hint, projection, sort and
    limit), one at a time."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    active = {"userId": user, "isDeleted": False}
    projects = client[DATABASE].projects

    async def page() -> object:
        found = projects.find(active, PROJECT_FIELDS, hint="active_by_updated")
        return await found.sort([("updatedAt", -1), ("_id", -1)]).limit(51).to_list()

    try:
        return await timed(seconds, page)
    finally:
        await client.close()


async def driver_query_floors(
    uri: str, user: str, word: str, seconds: float
) -> tuple[list[float], list[float]]:
    """Raw driver, the queries the list page and the text search send (same filter, hint,
    projection, sort and limit): where the database alone stands."""
    lists = await driver_lists(uri, user, seconds)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        db = client[DATABASE]
        active = {"userId": user, "isDeleted": False}
        searches: list[float] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            ranked = (
                await db.projects.find(
                    {"$text": {"$search": word}, **active},
                    {"_id": 1, "score": {"$meta": "textScore"}},
                )
                .sort([("score", {"$meta": "textScore"})])
                .limit(51)
                .to_list()
            )
            ids = [doc["_id"] for doc in ranked]
            await (
                db.projects.find({"_id": {"$in": ids}, **active}, PROJECT_FIELDS)
                .limit(len(ids) or 1)
                .to_list()
            )
            searches.append((time.perf_counter() - started) * 1000)
        return lists, searches
    finally:
        await client.close()


async def sequential_writes(base: str, user: str, project_id: str, count: int) -> dict[str, Any]:
    """Autosave PATCH of 10 ops vs a full PUT of the same change, and undo, one at a time."""
    url = f"/api/v1/projects/{project_id}/timeline"
    headers = {USER_HEADER: user}
    patch_ms: list[float] = []
    plain_ms: list[float] = []
    put_ms: list[float] = []
    undo_ms: list[float] = []
    patch_bytes = put_bytes = 0
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        current = (await http.get(url, headers=headers)).json()
        version, state = current["version"], current["state"]
        clips = len(state["clips"])
        for n in range(count):
            ops = [
                {
                    "op": "replace",
                    "path": f"/clips/{(n + i) % clips}/volume",
                    "value": ((n + i) % 10) / 10,
                }
                for i in range(10)
            ]
            body = json.dumps(ops).encode()
            started = time.perf_counter()
            response = await http.patch(
                url,
                content=body,
                headers={
                    **headers,
                    "If-Match": f'"{version}"',
                    "Content-Type": "application/json-patch+json",
                    "Prefer": "return=minimal",
                    "Idempotency-Key": uuid.uuid4().hex,
                },
            )
            patch_ms.append((time.perf_counter() - started) * 1000)
            if response.status_code != 204:
                raise RuntimeError(f"autosave: {response.status_code} {response.text[:300]}")
            version = int(response.headers["ETag"].strip('"'))
            patch_bytes = len(body)
            for i in range(10):
                state["clips"][(n + i) % clips]["volume"] = ((n + i) % 10) / 10
            full = json.dumps({"state": state}).encode()
            started = time.perf_counter()
            response = await http.put(
                url,
                content=full,
                headers={**headers, "If-Match": f'"{version}"', "Content-Type": "application/json"},
            )
            put_ms.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"full save: {response.status_code} {response.text[:300]}")
            version = response.json()["version"]
            put_bytes = len(full)
            # The same autosave without an Idempotency-Key: one head update carrying its
            # revision (stored with seven more in one batch); the key adds its search.
            plain = [
                {
                    "op": "replace",
                    "path": f"/clips/{(n + i) % clips}/volume",
                    "value": ((n + i + 5) % 10) / 10,
                }
                for i in range(10)
            ]
            started = time.perf_counter()
            response = await autosave(http, url, headers, version, plain)
            plain_ms.append((time.perf_counter() - started) * 1000)
            if response.status_code != 204:
                raise RuntimeError(f"autosave: {response.status_code} {response.text[:300]}")
            version = int(response.headers["ETag"].strip('"'))
            for i in range(10):
                state["clips"][(n + i) % clips]["volume"] = ((n + i + 5) % 10) / 10
        for _ in range(count):
            started = time.perf_counter()
            response = await http.post(
                f"{url}/undo", headers={**headers, "If-Match": f'"{version}"'}
            )
            undo_ms.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"undo: {response.status_code} {response.text[:300]}")
            version = response.json()["version"]
    return {
        "patch_ms": patch_ms,
        "plain_ms": plain_ms,
        "put_ms": put_ms,
        "undo_ms": undo_ms,
        "patch_bytes": patch_bytes,
        "put_bytes": put_bytes,
    }


def run_editors(
    base: str, pairs: list[tuple[str, str]], count: int, seconds: float, scratch: Path, svc: Service
) -> dict[str, Any]:
    projects_file = scratch / "editors.json"
    projects_file.write_text(json.dumps([list(pair) for pair in pairs]))
    cpu_before = svc.cpu_s()
    started = time.monotonic()
    completed = subprocess.run(
        [
            sys.executable,
            str(HERE / "editors.py"),
            "--base",
            base,
            "--projects",
            str(projects_file),
            "--editors",
            str(count),
            "--seconds",
            str(seconds),
        ],
        capture_output=True,
        text=True,
        check=False,
        env=clean_env(),
        timeout=seconds + 300,
    )
    wall = time.monotonic() - started
    if completed.returncode != 0:
        raise RuntimeError(f"editors failed:\n{completed.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    result["service_cpu_pct"] = (svc.cpu_s() - cpu_before) / wall * 100
    result["service_rss_mb"] = svc.rss_mb()
    return result


async def measure(uri: str, redis_url: str, scratch: Path, scale: Scale, suite: Suite) -> None:
    wrk_binary()
    with ExitStack() as stack:
        cached = stack.enter_context(service(uri, redis_url, scratch, "service"))
        uncached = stack.enter_context(
            service(uri, redis_url, scratch, "uncached", SNIPIX_CACHE_ENABLED="false")
        )
        suite.add(
            Row(
                "start-up: process start to ready",
                p50_ms=cached.ready_s * 1000,
                note=f"the service's own figure: {cached.startup_ms()} ms (lifespan)",
                extra={"lifespan_ms": cached.startup_ms()},
            )
        )
        print(f"  seeding {scale.projects:,} projects ...", flush=True)
        seeded_at = time.monotonic()
        seeded = await seed(cached.base, scale)
        print(f"  seeded in {time.monotonic() - seeded_at:.0f} s", flush=True)
        user, project_id = seeded.pairs[0]
        who = {USER_HEADER: user}
        project_path = f"/api/v1/projects/{project_id}"
        async with httpx.AsyncClient(base_url=cached.base, timeout=30) as http:
            body = (await http.get(project_path, headers=who)).content
        s = scale.seconds
        c = 8

        bare = stack.enter_context(floor("bare", body, scratch))
        framework = stack.enter_context(floor("framework", body, scratch))
        http_floor = wrk_row(
            suite,
            "floor: bare ASGI (same bytes)",
            run_wrk(f"{bare}{project_path}", seconds=s, connections=c),
        )
        http_floor_1 = wrk_row(
            suite,
            "floor: bare ASGI, 1 connection",
            run_wrk(f"{bare}{project_path}", seconds=s, connections=1),
        )
        framework_floor = wrk_row(
            suite,
            "floor: one-route FastAPI (same bytes)",
            run_wrk(f"{framework}{project_path}", seconds=s, connections=c),
        )
        reads, writes = await driver_floors(uri, project_id, project_id, s)
        latency_row(suite, "floor: driver find_one by _id", reads)
        latency_row(suite, "floor: driver update_one (10-path autosave)", writes)
        lists, searches = await driver_query_floors(uri, user, seeded.search_word, s)
        latency_row(suite, "floor: driver list query (50)", lists)
        latency_row(suite, "floor: driver text search (2 queries)", searches)

        hit = wrk_row(
            suite,
            "GET project, cached",
            run_wrk(f"{cached.base}{project_path}", seconds=s, connections=c, headers=who),
        )
        wrk_row(
            suite,
            "GET project, cached, If-None-Match",
            run_wrk(
                f"{cached.base}{project_path}",
                seconds=s,
                connections=c,
                headers={**who, "If-None-Match": '"1"'},
            ),
        )
        miss = wrk_row(
            suite,
            "GET project, uncached",
            run_wrk(f"{uncached.base}{project_path}", seconds=s, connections=c, headers=who),
        )
        miss_1 = run_wrk(f"{uncached.base}{project_path}", seconds=s, connections=1, headers=who)
        suite.add(
            Row(
                "GET project, uncached, 1 connection",
                miss_1.rps,
                miss_1.p50_ms,
                miss_1.p95_ms,
                miss_1.p99_ms,
                miss_1.errors,
            )
        )
        wrk_row(
            suite,
            "list page (50), uncached",
            run_wrk(
                f"{uncached.base}/api/v1/projects?limit=50", seconds=s, connections=c, headers=who
            ),
        )
        wrk_row(
            suite,
            "list page (50), cached",
            run_wrk(
                f"{cached.base}/api/v1/projects?limit=50", seconds=s, connections=c, headers=who
            ),
        )
        wrk_row(
            suite,
            "text search, uncached",
            run_wrk(
                f"{uncached.base}/api/v1/projects?q={seeded.search_word}",
                seconds=s,
                connections=c,
                headers=who,
            ),
        )
        # One request at a time: what one editor opening the list waits (the rows above
        # queue 8 connections on an engine that answers one query at a time).
        wrk_row(
            suite,
            "list page (50), uncached, 1 connection",
            run_wrk(
                f"{uncached.base}/api/v1/projects?limit=50", seconds=s, connections=1, headers=who
            ),
        )
        # The same one-connection reads while 8 editors autosave without pause: a write
        # must not stall every reader behind it (target: p95 within 3x of idle).
        with background_writers(uncached.base, seeded.pairs[1:9], scale.small_clips) as done:
            wrk_row(
                suite,
                "GET project, uncached, 1 connection, 8 writers",
                run_wrk(f"{uncached.base}{project_path}", seconds=s, connections=1, headers=who),
                note="8 editors autosaving meanwhile",
            )
            wrk_row(
                suite,
                "list page (50), uncached, 1 connection, 8 writers",
                run_wrk(
                    f"{uncached.base}/api/v1/projects?limit=50",
                    seconds=s,
                    connections=1,
                    headers=who,
                ),
                note="8 editors autosaving meanwhile",
            )
            # The engine's own answer beside the same writers, without the service.
            latency_row(
                suite,
                "floor: driver find_one by _id, 8 writers",
                await driver_reads(uri, project_id, s),
                note="8 editors autosaving meanwhile",
            )
            latency_row(
                suite,
                "floor: driver list query (50), 8 writers",
                await driver_lists(uri, user, s),
                note="8 editors autosaving meanwhile",
            )
        print(f"  writers meanwhile: {done.count} autosaves, {done.errors} errors", flush=True)
        wrk_row(
            suite,
            "text search, uncached, 1 connection",
            run_wrk(
                f"{uncached.base}/api/v1/projects?q={seeded.search_word}",
                seconds=s,
                connections=1,
                headers=who,
            ),
        )
        wrk_row(
            suite,
            f"timeline load ({scale.small_clips} clips), uncached",
            run_wrk(
                f"{uncached.base}{project_path}/timeline", seconds=s, connections=c, headers=who
            ),
        )
        wrk_row(
            suite,
            f"timeline load ({scale.small_clips} clips), cached",
            run_wrk(f"{cached.base}{project_path}/timeline", seconds=s, connections=c, headers=who),
        )
        large_user, large_id = seeded.large
        wrk_row(
            suite,
            f"timeline load ({scale.large_clips:,} clips), uncached",
            run_wrk(
                f"{uncached.base}/api/v1/projects/{large_id}/timeline",
                seconds=s,
                connections=2,
                headers={USER_HEADER: large_user},
            ),
        )
        wrk_row(
            suite,
            f"timeline load ({scale.large_clips:,} clips), cached",
            run_wrk(
                f"{cached.base}/api/v1/projects/{large_id}/timeline",
                seconds=s,
                connections=2,
                headers={USER_HEADER: large_user},
            ),
        )
        talk_user, talk_id = seeded.transcript
        wrk_row(
            suite,
            "transcript window (60 s)",
            run_wrk(
                f"{uncached.base}/api/v1/projects/{talk_id}/transcript/segments?from=120&to=180",
                seconds=s,
                connections=c,
                headers={USER_HEADER: talk_user},
            ),
        )
        wrk_row(
            suite,
            "transcript window (60 s), 1 connection",
            run_wrk(
                f"{uncached.base}/api/v1/projects/{talk_id}/transcript/segments?from=120&to=180",
                seconds=s,
                connections=1,
                headers={USER_HEADER: talk_user},
            ),
        )

        writes_small = await sequential_writes(cached.base, user, project_id, scale.sequential)
        latency_row(
            suite, f"autosave PATCH, 10 ops ({scale.small_clips} clips)", writes_small["patch_ms"]
        )
        latency_row(
            suite,
            f"autosave PATCH, 10 ops, no Idempotency-Key ({scale.small_clips} clips)",
            writes_small["plain_ms"],
        )
        latency_row(
            suite, f"full PUT, same change ({scale.small_clips} clips)", writes_small["put_ms"]
        )
        latency_row(suite, "undo", writes_small["undo_ms"])
        writes_large = await sequential_writes(
            cached.base, large_user, large_id, max(2, scale.sequential // 20)
        )
        patch_large = latency_row(
            suite,
            f"autosave PATCH, 10 ops ({scale.large_clips:,} clips)",
            writes_large["patch_ms"],
            extra={"request_bytes": writes_large["patch_bytes"]},
        )
        put_large = latency_row(
            suite,
            f"full PUT, same change ({scale.large_clips:,} clips)",
            writes_large["put_ms"],
            extra={"request_bytes": writes_large["put_bytes"]},
        )
        patch_large.note = f"request {writes_large['patch_bytes']:,} B"
        put_large.note = f"request {writes_large['put_bytes']:,} B"

        editor_rows: list[Row] = []
        for count in scale.editors:
            result = run_editors(
                cached.base, seeded.pairs, count, scale.editor_seconds, scratch, cached
            )
            lat = result["latencies_ms"]
            ops = sum(len(v) for v in lat.values())
            errors = sum(result["errors"].values())
            autosave = sorted(lat.get("autosave", []))
            open_p95 = _percentile(sorted(lat.get("open", [])), 0.95)
            client_pct = result["client_cpu_s"] / result["seconds"] * 100
            row = suite.add(
                Row(
                    f"editors x{count}, {scale.editor_seconds:.0f} s",
                    ops / result["seconds"],
                    statistics.median(autosave) if autosave else None,
                    _percentile(autosave, 0.95),
                    _percentile(autosave, 0.99),
                    errors,
                    f"autosave p50/p95/p99 ({len(autosave)}); open p95 {_fmt(open_p95)}; "
                    f"RSS {result['service_rss_mb']:.0f} MB, "
                    f"service CPU {result['service_cpu_pct']:.0f} %, client CPU {client_pct:.0f} %",
                    {
                        "autosaves": len(autosave),
                        "open_p95_ms": open_p95,
                        "rss_mb": result["service_rss_mb"],
                        "service_cpu_pct": result["service_cpu_pct"],
                        "client_cpu_pct": result["client_cpu_s"] / result["seconds"] * 100,
                        "statuses": result["statuses"],
                    },
                )
            )
            editor_rows.append(row)

    # Targets (issue 11), as ratios measured in this run.
    floor_rps = framework_floor.rps or 1
    driver_p50 = suite.row("floor: driver find_one by _id").p50_ms or 0
    write_p50 = suite.row("floor: driver update_one (10-path autosave)").p50_ms or 0
    patch_p50 = suite.row(f"autosave PATCH, 10 ops ({scale.small_clips} clips)").p50_ms or 0
    plain_p50 = (
        suite.row(f"autosave PATCH, 10 ops, no Idempotency-Key ({scale.small_clips} clips)").p50_ms
        or 0
    )
    suite.checks = [
        (
            "cached GET >= 60% of framework floor",
            f"{(hit.rps or 0) / floor_rps:.0%}",
            (hit.rps or 0) / floor_rps >= 0.6,
        ),
        ("framework floor / bare ASGI floor", f"{floor_rps / (http_floor.rps or 1):.0%}", None),
        (
            "uncached GET p50 <= 1.3 x (driver p50 + HTTP p50)",
            f"{miss_1.p50_ms:.2f} vs {1.3 * (driver_p50 + (http_floor_1.p50_ms or 0)):.2f} ms",
            miss_1.p50_ms <= 1.3 * (driver_p50 + (http_floor_1.p50_ms or 0)),
        ),
        (
            "autosave PATCH p50 <= 3 x write floor p50 (1 head write + 1/8 revision batch)",
            f"{plain_p50:.2f} vs {3 * write_p50:.2f} ms",
            plain_p50 <= 3 * write_p50,
        ),
        (
            "autosave PATCH with Idempotency-Key (and the key search) / write floor p50",
            f"{patch_p50 / (write_p50 or 1):.1f}x",
            None,
        ),
        (
            f"PATCH request < 5% of PUT ({scale.large_clips:,} clips)",
            f"{writes_large['patch_bytes'] / writes_large['put_bytes']:.2%}",
            writes_large["patch_bytes"] / writes_large["put_bytes"] < 0.05,
        ),
        (
            "list page p95 < 50 ms (uncached, 1 connection)",
            f"{suite.row('list page (50), uncached, 1 connection').p95_ms:.1f} ms",
            (suite.row("list page (50), uncached, 1 connection").p95_ms or 0) < 50,
        ),
        (
            "list page p95 < 50 ms (uncached, 8 connections)",
            f"{suite.row('list page (50), uncached').p95_ms:.1f} ms",
            (suite.row("list page (50), uncached").p95_ms or 0) < 50,
        ),
        (
            "text search p95 < 50 ms (uncached, 1 connection)",
            f"{suite.row('text search, uncached, 1 connection').p95_ms:.1f} ms"
            f" (driver floor p95 {suite.row('floor: driver text search (2 queries)').p95_ms:.1f})",
            (suite.row("text search, uncached, 1 connection").p95_ms or 0) < 50,
        ),
        (
            "text search p95 < 50 ms (uncached, 8 connections)",
            f"{suite.row('text search, uncached').p95_ms:.1f} ms",
            (suite.row("text search, uncached").p95_ms or 0) < 50,
        ),
        (
            "GET project p95 under 8 writers <= 3 x idle (1 connection)",
            f"{suite.row('GET project, uncached, 1 connection, 8 writers').p95_ms:.1f}"
            f" vs {miss_1.p95_ms:.1f} ms idle (driver floor p95"
            f" {suite.row('floor: driver find_one by _id, 8 writers').p95_ms:.1f} beside"
            f" the writers, {suite.row('floor: driver find_one by _id').p95_ms:.1f} idle)",
            (suite.row("GET project, uncached, 1 connection, 8 writers").p95_ms or 0)
            <= 3 * (miss_1.p95_ms or 0),
        ),
        (
            "list page p95 under 8 writers <= 3 x idle (1 connection)",
            f"{suite.row('list page (50), uncached, 1 connection, 8 writers').p95_ms:.1f}"
            f" vs {suite.row('list page (50), uncached, 1 connection').p95_ms:.1f} ms idle"
            f" (driver floor p95 {suite.row('floor: driver list query (50), 8 writers').p95_ms:.1f}"
            f" beside the writers, {suite.row('floor: driver list query (50)').p95_ms:.1f} idle)",
            (suite.row("list page (50), uncached, 1 connection, 8 writers").p95_ms or 0)
            <= 3 * (suite.row("list page (50), uncached, 1 connection").p95_ms or 0),
        ),
        (
            "transcript window p95 < 20 ms (uncached, 1 connection)",
            f"{suite.row('transcript window (60 s), 1 connection').p95_ms:.1f} ms",
            (suite.row("transcript window (60 s), 1 connection").p95_ms or 0) < 20,
        ),
        (
            "start-up < 2 s after the database answers",
            f"{cached.ready_s:.2f} s",
            cached.ready_s < 2,
        ),
    ]
    last = editor_rows[-1]
    suite.checks += [
        (f"{last.name}: zero errors", str(last.errors), last.errors == 0),
        # No sample is no evidence: a target without one is not met.
        (
            f"{last.name}: autosave p95 < 200 ms",
            f"{last.p95_ms:.1f} ms" if last.p95_ms is not None else "no autosave ran",
            last.p95_ms is not None and last.p95_ms < 200,
        ),
        (
            f"{last.name}: open p95 < 100 ms",
            f"{last.extra['open_p95_ms']:.1f} ms"
            if last.extra["open_p95_ms"] is not None
            else "no project opened",
            last.extra["open_p95_ms"] is not None and last.extra["open_p95_ms"] < 100,
        ),
        (
            f"{last.name}: service RSS < 400 MB",
            f"{last.extra['rss_mb']:.0f} MB",
            last.extra["rss_mb"] < 400,
        ),
    ]
    _ = miss


def report(suite: Suite) -> None:
    print()
    print("Snipix benchmark suite")
    print(f"  engine  {suite.engine}")
    print(f"  scale   {suite.scale}")
    print()
    header = f"{'req/s':>10}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'errors':>8}"
    print(f"  {'scenario':<46}{header}  note")
    for row in suite.rows:
        print(
            f"  {row.name:<46}{_fmt(row.rps, '{:,.0f}'):>10}{_fmt(row.p50_ms, '{:.2f}'):>10}"
            f"{_fmt(row.p95_ms, '{:.2f}'):>10}{_fmt(row.p99_ms, '{:.2f}'):>10}{row.errors:>8}"
            f"  {row.note}"
        )
    print()
    print("  targets (ratios from this run)")
    for name, figure, met in suite.checks:
        verdict = "info" if met is None else "met" if met else "NOT MET"
        print(f"  {name:<60}{figure:>26}  {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--smoke", action="store_true", help="about a second per scenario (CI)")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    parser.add_argument("--mongodb-uri", help="use this server instead of an embedded engine")
    parser.add_argument("--redis-url", help="use this Redis instead of starting redis-server")
    parser.add_argument("--seconds", type=float, help="seconds per wrk scenario")
    parser.add_argument("--editors", help="comma-separated editor counts, e.g. 10,50,100")
    args = parser.parse_args()
    scale = SMOKE if args.smoke else FULL
    if args.seconds is not None:
        scale = Scale(**{**scale.__dict__, "seconds": args.seconds})
    if args.editors:
        scale = Scale(
            **{**scale.__dict__, "editors": tuple(int(n) for n in args.editors.split(","))}
        )
    suite = Suite(scale)
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="snipix-suite-") as tmp,
        database(args.mongodb_uri) as (uri, embedded, _),
        redis_server(args.redis_url) as redis_url,
    ):
        suite.engine = asyncio.run(describe_engine(uri, embedded=embedded))
        asyncio.run(measure(uri, redis_url, Path(tmp), scale, suite))
    report(suite)
    print(f"\n  total run time {time.monotonic() - started:.0f} s")
    if args.out is not None:
        args.out.write_text(
            json.dumps(
                {
                    "engine": suite.engine,
                    "scale": scale.__dict__,
                    "rows": [row.__dict__ for row in suite.rows],
                    "targets": [{"target": n, "figure": f, "met": m} for n, f, m in suite.checks],
                },
                indent=2,
                default=str,
            )
        )
