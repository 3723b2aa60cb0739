"""Where an autosave's time goes, command by command, with a loaded database.

    .venv/bin/python benchmarks/autosave_commands.py [--loaded 10000] [--patches 15]
        [--mongodb-uri URI]

One project gets a 50-clip timeline through the API; then `--loaded` copies of its
project, head, revision and audit documents are written straight to the database (so
every collection an autosave touches holds that many documents, in seconds instead of the
suite's minutes of seeding), and `--patches` autosaves (PATCH, 10 ops, no key) are sent
one at a time. A command listener records what each database command cost, as the driver
measured it: the table shows milliseconds per autosave by command and collection. This is
how the embedded engine's full-collection scans behind conditional writes and upserts were
found (docs/performance.md, issue 11).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import time
import uuid
from typing import Any

from harness import database, describe_engine, running_app
from pymongo import AsyncMongoClient, monitoring
from timeline_autosave import build_state

from snipix.app import create_app
from snipix.settings import Settings

DATABASE = "bench_autosave_commands"
USER = {"X-User-Id": "bench-user"}


class Timings(monitoring.CommandListener):
    def __init__(self) -> None:
        self.recording = False
        self.by_command: dict[str, list[float]] = collections.defaultdict(list)
        self._names: dict[int, str] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self._names[event.request_id] = (
            f"{event.command_name} {event.command.get(event.command_name)}"
        )

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        name = self._names.pop(event.request_id, "?")
        if self.recording:
            self.by_command[name].append(event.duration_micros / 1000)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._names.pop(event.request_id, None)


async def load_copies(uri: str, project_id: str, count: int) -> None:
    """`count` copies of the project's documents in every collection an autosave touches."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        db = client[DATABASE]
        originals = {
            "projects": await db.projects.find_one({"_id": project_id}),
            "timelines": await db.timelines.find_one({"_id": project_id}),
            "timeline_revisions": await db.timeline_revisions.find_one({"projectId": project_id}),
            "audit_log": await db.audit_log.find_one({}),
        }
        for name, original in originals.items():
            assert original is not None, name
            copies = []
            for _ in range(count):
                copy = dict(original)
                new_id = uuid.uuid4().hex[:24]
                copy["_id"] = f"{new_id}:1" if name == "timeline_revisions" else new_id
                if "projectId" in copy:
                    copy["projectId"] = new_id
                copies.append(copy)
            for start in range(0, count, 1000):
                await db[name].insert_many(copies[start : start + 1000])
    finally:
        await client.close()


async def run(args: argparse.Namespace, uri: str, embedded: bool) -> None:
    print(f"engine  {await describe_engine(uri, embedded)}", flush=True)
    timings = Timings()
    settings = Settings(
        _env_file=None,
        mongodb_uri=uri,
        mongodb_database=DATABASE,
        retention_interval_s=0,
        cache_enabled=False,
        log_level="WARNING",
        rate_limit_writes=0,
    )
    async with running_app(create_app(settings, command_listeners=[timings])) as http:
        created = await http.post("/api/v1/projects", json={"name": "Autosave"}, headers=USER)
        url = f"/api/v1/projects/{created.json()['id']}/timeline"
        saved = await http.put(
            url, json={"state": build_state(50)}, headers={**USER, "If-Match": '"0"'}
        )
        assert saved.status_code == 200, saved.text[:300]
        await load_copies(uri, created.json()["id"], args.loaded)
        version = 1
        timings.recording = True
        started = time.perf_counter()
        for n in range(args.patches):
            ops = [
                {
                    "op": "replace",
                    "path": f"/clips/{(n + i) % 50}/volume",
                    "value": ((n + i) % 10) / 10,
                }
                for i in range(10)
            ]
            response = await http.patch(
                url,
                content=json.dumps(ops),
                headers={
                    **USER,
                    "If-Match": f'"{version}"',
                    "Content-Type": "application/json-patch+json",
                    "Prefer": "return=minimal",
                },
            )
            assert response.status_code == 204, response.text[:300]
            version = int(response.headers["ETag"].strip('"'))
        per_patch = (time.perf_counter() - started) / args.patches * 1000
        timings.recording = False
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    await client.drop_database(DATABASE)
    await client.close()
    print(
        f"  {args.loaded:,} copies loaded; "
        f"autosave PATCH {per_patch:.1f} ms (mean of {args.patches})\n"
    )
    print(f"  {'command collection':<40} {'ms/autosave':>12} {'per autosave':>13}")
    for name, values in sorted(timings.by_command.items(), key=lambda item: -sum(item[1])):
        print(
            f"  {name:<40} {sum(values) / args.patches:>12.1f} {len(values) / args.patches:>13.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--loaded", type=int, default=10_000)
    parser.add_argument("--patches", type=int, default=15)
    parser.add_argument("--mongodb-uri", help="use this server instead of an embedded engine")
    args = parser.parse_args()
    with database(args.mongodb_uri) as (uri, embedded, _):
        asyncio.run(run(args, uri, embedded))


if __name__ == "__main__":
    main()
