"""Transcripts: uploading a long transcript into bounded buckets, reading 60-second windows,
reading it all page by page, and searching it.

    .venv/bin/python benchmarks/transcripts.py [--words 50000] [--reads 50]
        [--mongodb-uri URI]

Without `--mongodb-uri` a fresh embedded engine process is started in a temporary
directory and stopped at the end; with it, a throw-away database is created and dropped.
The app runs in this process (ASGI, no sockets) with a PyMongo CommandListener that counts
the bucket documents (`transcript_segments`) each request inserts or reads.

The transcript is what a speech-to-text service returns for an interview: segments of
12-38 words (about 25), three speakers taking turns, word times with small gaps and
pauses between segments, confidences. It is uploaded in one PUT; then `--reads` random
60-second windows are read (`GET .../segments?from=&to=`), the whole transcript is read
in pages of 200, and `--reads` searches for a random spoken word are run in the project.
Latency is measured at the HTTP client. The paged read is checked against the upload.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from harness import (
    database,
    describe_engine,
    drop_database,
    expect,
    p95,
    running_app,
)
from pymongo.monitoring import (
    CommandFailedEvent,
    CommandListener,
    CommandStartedEvent,
    CommandSucceededEvent,
)

from snipix.app import create_app
from snipix.observability.logging import configure_logging
from snipix.settings import Settings

USER = {"X-User-Id": "bench"}
BUCKETS = "transcript_segments"
WINDOW_S = 60.0
PAGE = 200
# Environment variables that must not reach the engine process we start.
SETTING_PREFIXES = ("SNIPIX_", "MONGODB_", "REDIS_", "JWT_", "LOG_", "SLOW_QUERY", "AUDIT_")
SPOKEN = (
    "so we started the project back in march and honestly nobody knew what the footage "
    "would look like after the first edit because the camera kept drifting out of focus "
    "every time the light changed near the window I think that is why we reshot the whole "
    "interview twice and then the audio was great but the picture was not quite there yet "
    "you know what I mean right yeah absolutely and the colourist spent three days on it "
    "we had four cameras a drone and two lavalier microphones on the presenters"
)
VOCABULARY = tuple(SPOKEN.split())
SPEAKERS = [
    {"id": "host", "label": "Host"},
    {"id": "guest", "label": "Guest"},
    {"id": "caller", "label": "Caller"},
]


# --- the transcript ---------------------------------------------------------------------


def make_transcript(words: int, seed: int = 5) -> dict[str, Any]:
    rng = random.Random(seed)  # noqa: S311 - reproducible benchmark data
    segments: list[dict[str, Any]] = []
    clock = rng.uniform(0.2, 1.0)
    speaker = "host"
    left = words
    while left > 0:
        count = min(left, rng.randint(12, 38))
        left -= count
        if rng.random() < 0.4:
            speaker = rng.choice([s["id"] for s in SPEAKERS if s["id"] != speaker])
        spoken: list[dict[str, Any]] = []
        for _ in range(count):
            start = round(clock, 3)
            end = round(clock + rng.uniform(0.12, 0.55), 3)
            spoken.append(
                {
                    "text": rng.choice(VOCABULARY),
                    "start": start,
                    "end": end,
                    "confidence": round(rng.uniform(0.55, 1.0), 3),
                }
            )
            clock = end + rng.uniform(0.01, 0.12)
        segments.append(
            {
                "start": spoken[0]["start"],
                "end": spoken[-1]["end"],
                "speaker": speaker,
                "words": spoken,
            }
        )
        clock += rng.uniform(0.3, 1.8)
    return {"language": "en", "speakers": SPEAKERS, "segments": segments}


# --- measuring --------------------------------------------------------------------------


class BucketMeter(CommandListener):
    """Bucket documents inserted and returned (find/getMore) since the last reset."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: set[int] = set()
        self.read = 0
        self.inserted = 0

    def reset(self) -> None:
        with self._lock:
            self.read = self.inserted = 0

    def started(self, event: CommandStartedEvent) -> None:
        name = event.command_name
        if name == "insert" and event.command.get("insert") == BUCKETS:
            with self._lock:
                self.inserted += len(event.command.get("documents", []))
        elif name in {"find", "getMore"}:
            target = event.command.get("collection" if name == "getMore" else "find")
            if target == BUCKETS:
                with self._lock:
                    self._pending.add(event.request_id)

    def succeeded(self, event: CommandSucceededEvent) -> None:
        with self._lock:
            if event.request_id not in self._pending:
                return
            self._pending.discard(event.request_id)
            cursor = event.reply.get("cursor", {})
            self.read += len(cursor.get("firstBatch", cursor.get("nextBatch", [])))

    def failed(self, event: CommandFailedEvent) -> None:
        with self._lock:
            self._pending.discard(event.request_id)


@dataclass
class Results:
    engine: str
    words: int
    segments: int
    payload_bytes: int
    upload_s: float = 0.0
    buckets: int = 0
    buckets_inserted: int = 0
    window_ms: list[float] = field(default_factory=list)
    window_buckets: list[int] = field(default_factory=list)
    window_documents: list[int] = field(default_factory=list)
    window_segments: list[int] = field(default_factory=list)
    paged_s: float = 0.0
    pages: int = 0
    paged_segments: int = 0
    paged_equal: bool = False
    search_ms: list[float] = field(default_factory=list)
    search_hits: list[int] = field(default_factory=list)
    total_s: float = 0.0


async def measure(uri: str, data_dir: Path, *, words: int, reads: int, engine: str) -> Results:
    settings = Settings(
        _env_file=None,
        mongodb_uri=uri,
        mongodb_database=f"bench_transcripts_{uuid.uuid4().hex[:8]}",
        data_dir=data_dir,
        log_format="json",
        log_level="WARNING",
        retention_interval_s=0,  # no background job during the measurement
    )
    configure_logging(settings)
    meter = BucketMeter()
    app = create_app(settings, command_listeners=[meter])
    try:
        async with running_app(app) as http:
            return await _measure(http, meter, words=words, reads=reads, engine=engine)
    finally:
        await drop_database(uri, settings.database_name)


async def _measure(
    http: httpx.AsyncClient, meter: BucketMeter, *, words: int, reads: int, engine: str
) -> Results:
    rng = random.Random(17)  # noqa: S311 - reproducible benchmark choices
    transcript = make_transcript(words)
    body = json.dumps(transcript, separators=(",", ":")).encode()
    duration = float(transcript["segments"][-1]["end"])
    results = Results(
        engine=engine,
        words=words,
        segments=len(transcript["segments"]),
        payload_bytes=len(body),
    )
    created = await http.post(
        "/api/v1/projects",
        json={"name": "Benchmark interview", "media": {"durationSec": duration + 60}},
        headers=USER,
    )
    expect(created, 201, "create project")
    path = f"/api/v1/projects/{created.json()['id']}/transcript"

    print("uploading...", file=sys.stderr, flush=True)
    meter.reset()
    started = time.perf_counter()
    uploaded = await http.put(
        path, content=body, headers={**USER, "Content-Type": "application/json"}
    )
    results.upload_s = time.perf_counter() - started
    expect(uploaded, 200, "upload")
    results.buckets = int(uploaded.json()["bucketCount"])
    results.buckets_inserted = meter.inserted

    print("window reads...", file=sys.stderr, flush=True)
    for _ in range(reads):
        start = round(rng.uniform(0, max(0.0, duration - WINDOW_S)), 3)
        params = {"from": str(start), "to": str(start + WINDOW_S)}
        meter.reset()
        started = time.perf_counter()
        response = await http.get(f"{path}/segments", params=params, headers=USER)
        results.window_ms.append((time.perf_counter() - started) * 1000)
        expect(response, 200, "window read")
        results.window_buckets.append(int(response.headers["X-Buckets-Read"]))
        results.window_documents.append(meter.read)
        results.window_segments.append(len(response.json()["items"]))

    print("paged read...", file=sys.stderr, flush=True)
    segments: list[dict[str, Any]] = []
    params = {"limit": str(PAGE)}
    started = time.perf_counter()
    while True:
        response = await http.get(f"{path}/segments", params=params, headers=USER)
        expect(response, 200, "page read")
        results.pages += 1
        page = response.json()
        segments.extend(page["items"])
        if page["nextCursor"] is None:
            break
        params = {"limit": str(PAGE), "cursor": page["nextCursor"]}
    results.paged_s = time.perf_counter() - started
    results.paged_segments = len(segments)
    sent = [
        (f"s{i:06d}", s["start"], s["end"], [w["text"] for w in s["words"]])
        for i, s in enumerate(transcript["segments"])
    ]
    got = [(s["id"], s["start"], s["end"], [w["text"] for w in s["words"]]) for s in segments]
    results.paged_equal = got == sent

    print("searches...", file=sys.stderr, flush=True)
    for _ in range(reads):
        word = rng.choice(VOCABULARY)
        started = time.perf_counter()
        response = await http.get(f"{path}/search", params={"q": word}, headers=USER)
        results.search_ms.append((time.perf_counter() - started) * 1000)
        expect(response, 200, "search")
        results.search_hits.append(len(response.json()))
    return results


def report(results: Results, reads: int) -> None:
    def latency(values: list[float]) -> str:
        return f"p50 {statistics.median(values):8.1f} ms   p95 {p95(values):8.1f} ms"

    print("Transcripts: bucketed upload, 60 s window reads, paged read, search")
    print()
    print(f"  engine           {results.engine}")
    print(
        f"  transcript       {results.words:,} words in {results.segments:,} segments, "
        f"{results.payload_bytes:,} bytes of JSON"
    )
    print()
    print(
        f"  upload (one PUT)         {results.upload_s:8.2f} s   "
        f"{results.words / results.upload_s:,.0f} words/s   "
        f"{results.buckets} buckets written (inserted: {results.buckets_inserted})"
    )
    print(
        f"  60 s window read  x{reads:<5} {latency(results.window_ms)}   "
        f"segments/window {statistics.mean(results.window_segments):.1f}"
    )
    print(
        f"    buckets read per window  max {max(results.window_buckets)} "
        f"(X-Buckets-Read), mean {statistics.mean(results.window_buckets):.2f}; "
        f"bucket documents returned by find, max {max(results.window_documents)}"
    )
    equal = "yes" if results.paged_equal else "NO"
    print(
        f"  paged full read          {results.paged_s:8.2f} s   {results.pages} pages of "
        f"{PAGE}, {results.paged_segments:,} of {results.segments:,} segments; "
        f"equals the upload: {equal}"
    )
    print(
        f"  search in project x{reads:<5} {latency(results.search_ms)}   "
        f"hits/search {statistics.mean(results.search_hits):.1f}"
    )
    print(f"  total run time {results.total_s:.0f} s")


def main(words: int, reads: int, mongodb_uri: str | None) -> None:
    started = time.perf_counter()
    with database(mongodb_uri) as (uri, embedded, scratch):
        engine = asyncio.run(describe_engine(uri, embedded=embedded))
        results = asyncio.run(
            measure(uri, scratch / "app", words=words, reads=reads, engine=engine)
        )
    results.total_s = time.perf_counter() - started
    report(results, reads)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--words", type=int, default=50_000, help="words in the transcript")
    parser.add_argument("--reads", type=int, default=50, help="window reads and searches")
    parser.add_argument("--mongodb-uri", help="use this server instead of an embedded engine")
    arguments = parser.parse_args()
    if arguments.words < 100 or arguments.reads < 1:
        parser.error("need --words >= 100 and --reads >= 1")
    main(arguments.words, arguments.reads, arguments.mongodb_uri)
