"""CPU per `update_one` of a timeline head inside the embedded engine (no wire, no waits).

    .venv/bin/python benchmarks/engine_update_cpu.py [--clips 50] [--updates 400]
        [--stock-outcomes]

Builds the engine as `snipix engine` does (every override installed), stores one head of
`--clips` clips, then times `--updates` updates that each move one clip, in process CPU
seconds: the engine's own cost per write, the ceiling of one engine process's writes per
second whatever the disk and the machine's load. `--stock-outcomes` leaves mongoeco's
`MutationOutcome` copying its images (docs/engine.md), for the comparison.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from mongoeco import MongoClient

import snipix.db.engine as engine_module
from snipix.db.engine import DurableSQLiteEngine


def head(clips: int) -> dict[str, Any]:
    return {
        "_id": "p",
        "version": 0,
        "undoStack": list(range(50)),
        "state": {
            "tracks": [{"id": "t1", "kind": "video"}],
            "clips": [
                {
                    "id": f"c{i}",
                    "trackId": "t1",
                    "start": i * 1.5,
                    "sourceIn": 0.0,
                    "sourceOut": 1.5,
                    "speed": 1.0,
                    "volume": 1.0,
                    "effects": [],
                    "name": f"clip {i}",
                    "properties": {"a": i},
                    "compat": {"type": "video", "startTime": i, "duration": 1.0},
                }
                for i in range(clips)
            ],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=50)
    parser.add_argument("--updates", type=int, default=400)
    parser.add_argument("--stock-outcomes", action="store_true")
    args = parser.parse_args()
    if args.stock_outcomes:
        engine_module.install_owning_outcomes = lambda: None  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory() as data:
        client = MongoClient(engine=DurableSQLiteEngine(str(Path(data) / "engine.sqlite")))
        try:
            heads = client["bench"]["heads"]
            heads.insert_one(head(args.clips))

            def move(n: int) -> None:
                heads.update_one(
                    {"_id": "p"},
                    {
                        "$set": {f"state.clips.{n % args.clips}.start": n * 0.1},
                        "$inc": {"version": 1},
                    },
                )

            for n in range(50):  # warm: caches, prepared statements
                move(n)
            started = time.process_time()
            for n in range(args.updates):
                move(n)
            cpu_ms = (time.process_time() - started) / args.updates * 1000
        finally:
            client.close()
    outcomes = "stock" if args.stock_outcomes else "owning"
    print(f"{args.clips}-clip head, {outcomes} outcomes: {cpu_ms:.2f} ms CPU per update_one")


if __name__ == "__main__":
    main()
