"""Reads while the embedded engine is busy writing: a `find_one` by `_id` alone, then
beside eight writers.

    .venv/bin/python benchmarks/engine_reads_under_writes.py [--engine-threads N]
        [--seconds 10] [--writers 8]

`snipix engine` is started on a fresh data directory (with `--threads N` when given);
500 timeline-sized documents (50 clips) and 500 small project documents are inserted.
One reader then loops `find_one` on the small ones (5 ms apart) for 4 s on an idle engine,
and again for `--seconds` while `--writers` PyMongo threads each `update_one` a random
timeline (one clip's volume, as an autosave's head update does). Prints the reader's
p50/p95 in both phases and the writes per second.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from harness import clean_env
from pymongo import MongoClient

from snipix.db.launcher import start_engine_process

DOCUMENTS = 500


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def read_loop(uri: str, until: float, out: list[float]) -> None:
    rng = random.Random(3)  # noqa: S311 - a reproducible workload, not a secret
    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    projects = client.bench.projects
    while time.monotonic() < until:
        started = time.perf_counter()
        projects.find_one({"_id": f"p{rng.randrange(DOCUMENTS)}"})
        out.append((time.perf_counter() - started) * 1000)
        time.sleep(0.005)  # a reader's pace, not synchronisation
    client.close()


def write_loop(uri: str, until: float, count: list[int], seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - a reproducible workload, not a secret
    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    heads = client.bench.heads
    while time.monotonic() < until:
        heads.update_one(
            {"_id": f"h{rng.randrange(DOCUMENTS)}"},
            {"$set": {f"state.clips.{rng.randrange(50)}.volume": rng.random()}},
        )
        count[0] += 1
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--engine-threads", type=int)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--writers", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="snipix-reads-") as tmp:
        engine = start_engine_process(
            Path(tmp) / "engine", env=clean_env(), threads=args.engine_threads
        )
        try:
            client: MongoClient[dict[str, Any]] = MongoClient(engine.uri)
            clips = [
                {"id": f"c{i}", "start": i * 2.0, "volume": 1.0, "trackId": "v1"} for i in range(50)
            ]
            client.bench.heads.insert_many(
                [{"_id": f"h{i}", "state": {"clips": clips}} for i in range(DOCUMENTS)]
            )
            client.bench.projects.insert_many(
                [{"_id": f"p{i}", "name": f"Project {i}"} for i in range(DOCUMENTS)]
            )
            client.close()
            idle: list[float] = []
            read_loop(engine.uri, time.monotonic() + 4, idle)
            loaded: list[float] = []
            writes = [0]
            until = time.monotonic() + args.seconds
            threads = [
                threading.Thread(target=write_loop, args=(engine.uri, until, writes, seed))
                for seed in range(args.writers)
            ]
            threads.append(threading.Thread(target=read_loop, args=(engine.uri, until, loaded)))
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            engine.stop()
    print(
        f"engine threads {args.engine_threads or 'default'}: find_one idle p50 "
        f"{percentile(idle, 0.5):.2f} p95 {percentile(idle, 0.95):.2f} ms; beside "
        f"{args.writers} writers p50 {percentile(loaded, 0.5):.2f} p95 "
        f"{percentile(loaded, 0.95):.2f} ms; {writes[0] / args.seconds:.0f} writes/s"
    )


if __name__ == "__main__":
    main()
