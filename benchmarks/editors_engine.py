"""What the simulated editors cost the embedded engine: CPU and commands per autosave.

    .venv/bin/python benchmarks/editors_engine.py [--editors 50] [--seconds 30]
        [--projects 1000]

Seeds `--projects` projects (50-clip timelines) through a `snipix serve` on a fresh
embedded engine and Redis, runs `--editors` simulated editors (benchmarks/editors.py,
as the suite does) and prints their latencies, the engine process's CPU time per
autosave, and the database commands per autosave by command and collection (from the
service's `snipix_db_command_duration_seconds` series). CPU per autosave depends far less
on what else the machine runs than latencies do, so it compares two builds on a busy
machine; the latencies need a quiet one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx
import suite
from harness import database, redis_server

Counts = dict[tuple[str, str], dict[str, float]]


def command_counts(base: str) -> Counts:
    """Count and total seconds per (command, collection), as the service measured them."""
    counts: Counts = {}
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        found = re.match(r"snipix_db_command_duration_seconds_(count|sum)\{(.*)\} (\S+)", line)
        if found is None:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', found.group(2)))
        key = (labels.get("command", "?"), labels.get("collection", "?"))
        counts.setdefault(key, {})[found.group(1)] = float(found.group(3))
    return counts


def engine_pid(scratch: Path) -> int:
    """The pid of the engine process serving the data directory under `scratch`."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            arguments = cmdline.read_bytes().split(b"\0")
        except OSError:  # a process that ended meanwhile
            continue
        if b"engine" in arguments and any(str(scratch).encode() in a for a in arguments):
            return int(cmdline.parent.name)
    raise RuntimeError(f"no engine process for {scratch}")


def process_cpu(pid: int) -> Callable[[], float]:
    """A reader of the process's user + system CPU seconds."""
    ticks = os.sysconf("SC_CLK_TCK")

    def read() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks

    return read


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--editors", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--projects", type=int, default=1000)
    args = parser.parse_args()
    scale = suite.Scale(args.projects, 100, 50, 50, 200, 1, (args.editors,), args.seconds, 10)
    with (
        tempfile.TemporaryDirectory(prefix="snipix-editors-") as tmp,
        database(None) as (uri, _embedded, scratch),
        redis_server(None) as redis_url,
        suite.service(uri, redis_url, Path(tmp), "service") as svc,
    ):
        engine_cpu = process_cpu(engine_pid(scratch))
        seeded = asyncio.run(suite.seed(svc.base, scale))
        before, cpu_before = command_counts(svc.base), engine_cpu()
        result = suite.run_editors(
            svc.base, seeded.pairs, args.editors, args.seconds, Path(tmp), svc
        )
        after, cpu = command_counts(svc.base), engine_cpu() - cpu_before

    print(f"{args.editors} editors, {args.seconds:.0f} s, {args.projects} projects")
    saves = 0
    for operation, samples in sorted(result["latencies_ms"].items()):
        ordered = sorted(samples)
        if operation == "autosave":
            saves = len(ordered)
        if ordered:
            print(
                f"  {operation:<9} {len(ordered):6d}  p50 {ordered[len(ordered) // 2]:8.1f} ms"
                f"  p95 {ordered[int(len(ordered) * 0.95)]:8.1f} ms"
            )
    print(f"  errors {result['errors']}, service CPU {result['service_cpu_pct']:.0f} %")
    if not saves:
        print("  no autosave ran")
        return
    print(f"  engine CPU {cpu:.1f} s: {cpu / saves * 1000:.1f} ms per autosave")
    print("  commands per autosave:")
    for key in sorted(after, key=lambda k: -after[k].get("count", 0)):
        count = after[key].get("count", 0) - before.get(key, {}).get("count", 0)
        if count:
            print(f"    {key[0]:>8} {key[1]:<26} {count / saves:5.2f}")


if __name__ == "__main__":
    main()
