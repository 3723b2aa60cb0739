"""Live event fan-out: how long a timeline save takes to reach every open event stream,
with the streams spread over two replicas (Redis pub/sub between them).

    .venv/bin/python benchmarks/event_fanout.py [--subscribers 100] [--saves 100]
        [--mongodb-uri URI] [--redis-url URL]

Two `snipix serve` processes (one worker each, as a user starts them) share one database
(a fresh embedded engine unless `--mongodb-uri`) and one redis-server (started here unless
`--redis-url`). Half the subscribers open `GET /api/v1/projects/{id}/events` on each
replica. Then `--saves` autosaves (a one-operation JSON Patch) go to the replicas in turn,
one at a time: each waits until every subscriber has its revision, so no save queues behind
another. Per save and subscriber two figures are recorded: from the save request being
sent (end to end: the save itself, then fan-out), and from its answer arriving (fan-out
alone: the event is published before the answer is sent, so this is often negative for
streams on the replica that saved). Figures are split by whether the stream is on the
replica that saved or on the other one. The subscribers all read in this one process, so
the figures include its own scheduling of 100 sockets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field

import httpx
from harness import database, describe_engine, expect, p95, redis_server
from suite import Service, service

OWNER = {"X-User-Id": "bench-editor"}
PATCH_TYPE = {"Content-Type": "application/json-patch+json"}
DEADLINE_S = 30.0


@dataclass
class Subscriber:
    replica: int
    received: dict[int, float] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


async def subscribe(
    http: httpx.AsyncClient, url: str, subscriber: Subscriber, ready: asyncio.Event
) -> None:
    async with http.stream("GET", url, headers=OWNER) as response:
        expect(response, 200, "open the event stream")
        ready.set()
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                subscriber.received[int(line[4:])] = time.perf_counter()
                subscriber.arrived.set()


def summary(values: list[float]) -> str:
    return f"p50 {statistics.median(values):7.1f} ms   p95 {p95(values):7.1f} ms   n={len(values)}"


async def run(args: argparse.Namespace, replicas: list[Service], engine: str) -> None:
    limits = httpx.Limits(max_connections=args.subscribers + 10)
    async with httpx.AsyncClient(timeout=DEADLINE_S, limits=limits) as http:
        created = await http.post(
            f"{replicas[0].base}/api/v1/projects", json={"name": "Fan-out"}, headers=OWNER
        )
        expect(created, 201, "create the project")
        project_id = created.json()["id"]
        subscribers = [Subscriber(replica=n % 2) for n in range(args.subscribers)]
        tasks = []
        for subscriber in subscribers:
            ready = asyncio.Event()
            url = f"{replicas[subscriber.replica].base}/api/v1/projects/{project_id}/events"
            tasks.append(asyncio.create_task(subscribe(http, url, subscriber, ready)))
            await asyncio.wait_for(ready.wait(), DEADLINE_S)

        from_sent: dict[str, list[float]] = defaultdict(list)
        from_answer: dict[str, list[float]] = defaultdict(list)
        save_ms: list[float] = []
        for version in range(args.saves):
            saver = version % 2
            operations = [
                {"op": "add", "path": "/markers/-", "value": {"id": f"m{version}", "time": 1.0}}
            ]
            sent = time.perf_counter()
            answer = await http.patch(
                f"{replicas[saver].base}/api/v1/projects/{project_id}/timeline",
                content=json.dumps(operations),
                headers={**OWNER, **PATCH_TYPE, "If-Match": f'"{version}"'},
            )
            answered = time.perf_counter()
            expect(answer, 200, "autosave")
            save_ms.append((answered - sent) * 1000)
            new_version = version + 1
            for subscriber in subscribers:
                while new_version not in subscriber.received:
                    subscriber.arrived.clear()
                    await asyncio.wait_for(subscriber.arrived.wait(), DEADLINE_S)
                where = "same replica" if subscriber.replica == saver else "other replica"
                got = subscriber.received[new_version]
                from_sent[where].append((got - sent) * 1000)
                from_answer[where].append((got - answered) * 1000)
                from_sent["all"].append((got - sent) * 1000)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    print(f"engine: {engine}")
    print(
        f"{args.subscribers} subscribers over 2 replicas, {args.saves} autosaves "
        "(alternating replicas, one at a time)"
    )
    print(f"autosave answered:                          {summary(save_ms)}")
    for where in ("all", "same replica", "other replica"):
        print(f"save sent -> event received, {where:13}:  {summary(from_sent[where])}")
    for where in ("same replica", "other replica"):
        print(f"save answered -> event received, {where:13}: {summary(from_answer[where])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--saves", type=int, default=100)
    parser.add_argument("--mongodb-uri")
    parser.add_argument("--redis-url")
    args = parser.parse_args()
    with ExitStack() as stack:
        uri, embedded, scratch = stack.enter_context(database(args.mongodb_uri))
        redis_url = stack.enter_context(redis_server(args.redis_url))
        # One user opens every stream here: the per-user bound is the only one lifted.
        bound = str(args.subscribers)
        replicas = [
            stack.enter_context(
                service(uri, redis_url, scratch, f"replica-{n}", SNIPIX_EVENTS_MAX_PER_USER=bound)
            )
            for n in (1, 2)
        ]
        engine = asyncio.run(describe_engine(uri, embedded))
        asyncio.run(run(args, replicas, engine))


if __name__ == "__main__":
    main()
