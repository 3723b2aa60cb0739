"""Insert cost on the embedded engine as a collection grows: mongoeco's stock SQLite
engine side by side with Snipix's `DurableSQLiteEngine` (which skips the per-insert `_id`
scan for non-numeric ids), and the cost of a unique compound index.

    .venv/bin/python benchmarks/engine_inserts.py [--batches 4] [--batch-size 1000]

Prints milliseconds per insert for each batch; both engines run in this process, over
the wire protocol, one after the other, on fresh files.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from mongoeco.engines.sqlite import SQLiteEngine
from mongoeco.wire.proxy import AsyncMongoEcoProxyServer
from pymongo import AsyncMongoClient

from snipix.db.engine import DurableProxyServer, DurableSQLiteEngine


async def measure(
    engine: SQLiteEngine, *, batches: int, size: int, unique_compound: bool
) -> list[float]:
    # Snipix's engine is served as `snipix engine` serves it: replies wait for the group
    # commit, and a multi-document insert is one batch.
    server = (
        DurableProxyServer(engine=engine, host="127.0.0.1", port=0)
        if isinstance(engine, DurableSQLiteEngine)
        else AsyncMongoEcoProxyServer(engine=engine, host="127.0.0.1", port=0)
    )
    await server.start()
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(server.address.uri)
    try:
        collection = client["bench"]["docs"]
        if unique_compound:
            await collection.create_index([("projectId", 1), ("version", -1)], unique=True)
        costs = []
        for batch in range(batches):
            documents = [
                {"_id": f"p{n % 50}:{n}", "projectId": f"p{n % 50}", "version": n}
                for n in range(batch * size, (batch + 1) * size)
            ]
            started = time.perf_counter()
            await collection.insert_many(documents)
            costs.append((time.perf_counter() - started) * 1000 / size)
        return costs
    finally:
        await client.close()
        await server.close()


async def main(batches: int, size: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for label, factory, unique in (
            ("mongoeco SQLiteEngine", SQLiteEngine, False),
            ("snipix DurableSQLiteEngine", DurableSQLiteEngine, False),
            ("snipix + unique (projectId, version)", DurableSQLiteEngine, True),
        ):
            path = Path(tmp) / f"{label.split()[0]}-{unique}.sqlite"
            results[label] = await measure(
                factory(str(path)), batches=batches, size=size, unique_compound=unique
            )
    header = "documents already stored"
    print(f"{header:<40}" + "".join(f"{b * size:>10,}" for b in range(batches)))
    for label, costs in results.items():
        print(f"{label:<40}" + "".join(f"{cost:>8.1f}ms" for cost in costs))
    stock, ours = results["mongoeco SQLiteEngine"], results["snipix DurableSQLiteEngine"]
    print(f"last batch: stock/ours = {stock[-1] / ours[-1]:.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=1000)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.batches, arguments.batch_size))
