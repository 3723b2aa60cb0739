"""Concurrent writers against a started embedded engine: acknowledged writes/s and latency.

    .venv/bin/python benchmarks/engine_writers.py [--threads 8] [--seconds 10] [--docs 10000]
        [--clips N] [--strace]

`snipix engine` is started on a fresh data directory (as the service starts it), the
collection gets `--docs` documents, then `--threads` PyMongo threads each `update_one`
their own documents (by `_id`, default write concern) for `--seconds`. Prints writes/s
and p50/p95/p99 milliseconds, the engine's group-commit counters when it reports them,
and with `--strace` the fdatasync/fsync calls per write (strace attached to the engine
for the measured phase only). With `--clips N` each document carries a timeline of N
clips (the size of a timeline head) and each write moves one clip (`$set` on a nested
path), as an autosave's head update does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from harness import clean_env
from pymongo import MongoClient

from snipix.db.launcher import start_engine_process


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def group_commit_status(client: MongoClient[dict[str, Any]]) -> dict[str, Any] | None:
    status = client.admin.command("serverStatus")
    runtime = status.get("mongoeco", {}).get("engineRuntime", {})
    found: dict[str, Any] | None = runtime.get("groupCommit")
    return found


def start_strace(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    binary = shutil.which("strace")
    if binary is None:
        print("strace is not installed (apt-get install -y strace); no syscall counts")
        return None
    tracer = subprocess.Popen(
        [binary, "-f", "-c", "-e", "trace=fdatasync,fsync", "-o", str(out), "-p", str(pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert tracer.stderr is not None
    # strace says "Process N attached" once per thread it attaches to; the first line
    # means tracing has begun.
    tracer.stderr.readline()
    return tracer


def syscall_counts(report: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in report.splitlines():
        fields = line.split()
        if fields and fields[-1] in ("fdatasync", "fsync"):
            counts[fields[-1]] = int(fields[3]) if len(fields) >= 5 else int(fields[2])
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--clips", type=int, default=0)
    parser.add_argument("--strace", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="snipix-writers-") as tmp:
        engine = start_engine_process(Path(tmp) / "engine", env=clean_env())
        try:
            run(engine.uri, engine.process.pid, Path(tmp), args)
        finally:
            engine.stop()


def document(n: int, clips: int) -> dict[str, Any]:
    """Document `n`: a counter, and with `clips` a one-track timeline of that many clips."""
    if not clips:
        return {"_id": f"d{n}", "n": 0}
    return {
        "_id": f"d{n}",
        "n": 0,
        "projectId": f"p{n}",
        "tracks": [
            {
                "id": "t0",
                "clips": [
                    {
                        "id": f"c{i}",
                        "mediaId": f"m{i % 7}",
                        "start": i * 1.5,
                        "sourceIn": 0.25,
                        "sourceOut": 1.75,
                        "effects": [{"kind": "fade", "seconds": 0.5}],
                        "name": f"Clip {i}",
                    }
                    for i in range(clips)
                ],
            }
        ],
    }


def run(uri: str, pid: int, tmp: Path, args: argparse.Namespace) -> None:
    client: MongoClient[dict[str, Any]] = MongoClient(uri, maxPoolSize=args.threads + 2)
    collection = client["bench_writers"]["docs"]
    for start in range(0, args.docs, 1000):
        collection.insert_many(
            [document(n, args.clips) for n in range(start, min(args.docs, start + 1000))]
        )
    before = group_commit_status(client)
    tracer = start_strace(pid, tmp / "strace.txt") if args.strace else None
    latencies: list[list[float]] = [[] for _ in range(args.threads)]
    deadline = time.monotonic() + args.seconds

    def writer(index: int) -> None:
        mine = latencies[index]
        n = 0
        while time.monotonic() < deadline:
            doc_id = f"d{(index + n * args.threads) % args.docs}"
            started = time.perf_counter()
            change: dict[str, Any] = {"$inc": {"n": 1}}
            if args.clips:
                change["$set"] = {f"tracks.0.clips.{n % args.clips}.start": n * 0.5}
            collection.update_one({"_id": doc_id}, change)
            mine.append((time.perf_counter() - started) * 1000)
            n += 1

    started = time.monotonic()
    threads = [threading.Thread(target=writer, args=(i,)) for i in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    counts: dict[str, int] = {}
    if tracer is not None:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=30)
        counts = syscall_counts((tmp / "strace.txt").read_text())
    after = group_commit_status(client)
    client.close()
    every = [value for values in latencies for value in values]
    shape = f", {args.clips} clips each" if args.clips else ""
    print(f"engine pid {pid}, {os.cpu_count()} CPUs, {args.docs:,} documents{shape}")
    print(
        f"{args.threads} writers x {elapsed:.1f} s: {len(every):,} update_one, "
        f"{len(every) / elapsed:.0f} writes/s; ms p50 {statistics.median(every):.1f} "
        f"p95 {percentile(every, 0.95):.1f} p99 {percentile(every, 0.99):.1f}"
    )
    if before is not None and after is not None:
        syncs = after["syncs"] - before["syncs"]
        print(
            f"group commit: {syncs:,} WAL syncs for {len(every):,} writes "
            f"({len(every) / max(syncs, 1):.1f} writes per sync)"
        )
    if counts:
        total = sum(counts.values())
        print(
            f"strace: {counts} during the run = {total / len(every):.2f} fdatasync+fsync per write"
        )


if __name__ == "__main__":
    main()
