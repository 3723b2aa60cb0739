"""What a query costs on the database itself, by its shape (raw driver).

    .venv/bin/python benchmarks/engine_queries.py [--projects 10000] [--buckets 100]
        [--rounds 200] [--mongodb-uri URI]

The embedded engine answers a bare `_id` equality from its primary key and scans for
anything else: these are the figures behind choices in docs/decisions.md (issue 11) and
the reason some service figures sit above their floors there. Each query runs `--rounds`
times in turn with the others (interleaved), and the table prints the median per query:

- the projects list page (the owner's newest 51, as the service asks for it), the page
  after a keyset cursor, and an owner-scoped `$text` search;
- project `find_one` by `_id`, bare (the driver floor of the suite) and with the service's
  projection; with `userId` and `isDeleted` in the filter (what the repository sent before);
- a transcript window's two queries on the bucket index (`projectId`, `generation`,
  `start` range), among `--buckets` buckets of 50 segments;
- the same buckets read by `_id` (two `find_one`s), as a window could be read;
- an autosave-sized `update_one` by `_id` among `--projects` heads, with a plain and with a
  unique secondary index on `projectId` (the head index was unique before issue 11).

With `--mongodb-uri` the same run measures a real server.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from harness import database, describe_engine
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient

from snipix.db.indexes import catalogue
from snipix.projects.repository import PROJECT_FIELDS

DATABASE = "bench_engine_queries"
START = datetime(2026, 1, 1, tzinfo=UTC)


async def seed(db: Any, projects: int, buckets: int) -> None:
    await db.projects.insert_many(
        [
            {
                "_id": f"p{i:06d}",
                "userId": f"u{i % 100}",
                "name": f"Project {i}",
                "description": "",
                "status": "draft",
                "tags": ["a", "b"],
                "media": None,
                "version": 1,
                "isDeleted": False,
                "deletedAt": None,
                "updatedAt": START + timedelta(seconds=(i * 7919) % projects),
            }
            for i in range(projects)
        ]
    )
    for spec in catalogue():
        if spec.collection == "projects":
            await db.projects.create_indexes([spec.model()])
    head = {"version": 0, "state": {"clips": [{"id": f"c{j}", "volume": 0.5} for j in range(50)]}}
    for name, unique in (("heads_plain", False), ("heads_unique", True)):
        await db[name].create_index([("projectId", ASCENDING)], name="project", unique=unique)
        await db[name].insert_many(
            [{"_id": f"p{i:06d}", "projectId": f"p{i:06d}", **head} for i in range(projects)]
        )
    await db.transcript_segments.create_index(
        [("projectId", ASCENDING), ("generation", ASCENDING), ("start", ASCENDING)],
        name="project_generation_start",
    )
    segment: dict[str, Any] = {"speaker": None, "text": "word " * 25, "words": []}
    await db.transcript_segments.insert_many(
        [
            {
                "_id": f"talk:g1:{n:06d}",
                "projectId": "talk",
                "generation": "g1",
                "seq": n,
                "start": n * 200.0,
                "end": n * 200.0 + 199.0,
                "segments": [
                    {**segment, "id": f"s{n}-{j}", "start": n * 200.0 + j} for j in range(50)
                ],
            }
            for n in range(buckets)
        ]
    )


def queries(db: Any, projects: int, buckets: int) -> dict[str, Callable[[], Awaitable[Any]]]:
    project_id, owner = f"p{projects // 2:06d}", f"u{(projects // 2) % 100}"
    at = (buckets // 2) * 200.0 + 20

    async def window_by_index() -> Any:
        first = (
            await db.transcript_segments.find(
                {"projectId": "talk", "generation": "g1", "start": {"$lte": at}},
                {"_id": 0, "start": 1},
                hint="project_generation_start",
            )
            .sort("start", DESCENDING)
            .limit(1)
            .to_list()
        )
        return (
            await db.transcript_segments.find(
                {
                    "projectId": "talk",
                    "generation": "g1",
                    "start": {"$gte": first[0]["start"], "$lt": at + 60},
                },
                hint="project_generation_start",
            )
            .sort("start", ASCENDING)
            .limit(200)
            .to_list()
        )

    async def window_by_id() -> Any:
        seq = buckets // 2
        return await asyncio.gather(
            *(db.transcript_segments.find_one({"_id": f"talk:g1:{n:06d}"}) for n in (seq, seq + 1))
        )

    writes = iter(range(10**9))

    def head_update(collection: str) -> Callable[[], Awaitable[Any]]:
        async def update() -> Any:
            n = next(writes)
            return await db[collection].update_one(
                {"_id": project_id},
                {"$set": {f"state.clips.{n % 50}.volume": (n % 10) / 10}, "$inc": {"version": 1}},
            )

        return update

    keyset = START + timedelta(seconds=projects // 2)

    async def list_page() -> Any:
        found = db.projects.find(
            {"userId": owner, "isDeleted": False}, PROJECT_FIELDS, hint="active_by_updated"
        )
        return await found.sort([("updatedAt", -1), ("_id", -1)]).limit(51).to_list()

    async def list_page_after() -> Any:
        query = {
            "userId": owner,
            "isDeleted": False,
            "$or": [{"updatedAt": {"$lt": keyset}}, {"updatedAt": keyset, "_id": {"$lt": "p"}}],
        }
        found = db.projects.find(query, PROJECT_FIELDS, hint="active_by_updated")
        return await found.sort([("updatedAt", -1), ("_id", -1)]).limit(51).to_list()

    async def owner_search() -> Any:
        query = {"$text": {"$search": "project"}, "userId": owner, "isDeleted": False}
        found = db.projects.find(query, {"_id": 1, "score": {"$meta": "textScore"}})
        return await found.sort([("score", {"$meta": "textScore"})]).limit(50).to_list()

    return {
        "list page (51), owner's newest first": list_page,
        "list page after a keyset cursor": list_page_after,
        "owner-scoped $text search (50)": owner_search,
        "project by _id (driver floor)": lambda: db.projects.find_one({"_id": project_id}),
        "project by _id, projection": lambda: db.projects.find_one(
            {"_id": project_id}, PROJECT_FIELDS
        ),
        "project by _id+userId+isDeleted, projection": lambda: db.projects.find_one(
            {"_id": project_id, "userId": owner, "isDeleted": False}, PROJECT_FIELDS
        ),
        "transcript window, 2 index range queries": window_by_index,
        "transcript window, 2 find_one by _id": window_by_id,
        "head update_one by _id, plain index": head_update("heads_plain"),
        "head update_one by _id, unique index": head_update("heads_unique"),
    }


async def run(args: argparse.Namespace, uri: str, embedded: bool) -> None:
    print(f"engine  {await describe_engine(uri, embedded)}", flush=True)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        await client.drop_database(DATABASE)
        db = client[DATABASE]
        await seed(db, args.projects, args.buckets)
        named = queries(db, args.projects, args.buckets)
        samples: dict[str, list[float]] = {name: [] for name in named}
        for _ in range(args.rounds):
            for name, query in named.items():
                started = time.perf_counter()
                await query()
                samples[name].append((time.perf_counter() - started) * 1000)
        await client.drop_database(DATABASE)
    finally:
        await client.close()
    print(
        f"  {args.projects:,} projects, {args.buckets:,} transcript buckets, {args.rounds} rounds\n"
    )
    print(f"  {'query':<46} {'p50 ms':>8} {'p95 ms':>8}")
    for name, values in samples.items():
        values.sort()
        p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
        print(f"  {name:<46} {statistics.median(values):>8.2f} {p95:>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--projects", type=int, default=10_000)
    parser.add_argument("--buckets", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--mongodb-uri", help="use this server instead of an embedded engine")
    args = parser.parse_args()
    with database(args.mongodb_uri) as (uri, embedded, _):
        asyncio.run(run(args, uri, embedded))


if __name__ == "__main__":
    main()
