"""Tracking drain: what a local lookup pays to apply Redis' invalidation pushes first, with
the local layer's own socket (`snipix.cache.local`) and with redis-py, and whether each
sees every invalidation it must.

    .venv/bin/python benchmarks/tracking_drain.py [--lookups 20000] [--backlog 5000]
        [--redis-url URL]

Without `--redis-url` a redis-server is started on a free loopback port (and stopped).
Each way opens one RESP3 connection with `CLIENT TRACKING ON BCAST PREFIX <p>:`:

- `own socket`: `LocalLayer` as the service runs it (a non-blocking `recv` per lookup);
- `redis-py asyncio`: `redis.asyncio.Connection(protocol=3)`, the invalidation handler set
  on its parser (`conn._parser.set_invalidation_push_handler`, not public API), drained
  with `while await conn.can_read(): await conn.read_response(push_request=True)`;
- `redis-py sync`: the same with `redis.Connection` (blocking socket, `can_read(0)`);
- `redis-py pubsub`: the only public push hook, `PubSub(push_handler_func=...)`, drained
  with `await pubsub.get_message(timeout=0)`;
- `redis-py redirect`: all public API, the other scheme: a RESP2 `PubSub` subscribed to
  `__redis__:invalidate`, tracking turned on by a second connection with `REDIRECT <its
  id>` (its `killed` check kills that second connection, which is what stops the pushes).

The local layer counts a key as invalidated when its entry is gone (emptying the layer
counts). Figures and the decision they back: docs/decisions.md ("not redis-py").

Cost: one drain with nothing pending, the case of almost every lookup (best of 3 runs of
`--lookups`). Checks, each on a fresh connection:

- `awaited write`: another client's SET, awaited (the event loop runs), then one drain;
- `unseen write`: a SET from a blocking socket, answered before the drain, with no await in
  between (the push is in our socket, the loop has not read it);
- `backlog`: `--backlog` invalidations nobody drains, then a SET, then one drain;
- `killed`: `CLIENT KILL` of the tracking connection, a pause, then one drain must say so.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.metadata import version as package_version
from typing import Any
from urllib.parse import urlparse

import redis
import redis.asyncio
from harness import redis_server

from snipix.cache.entries import Entry
from snipix.cache.local import LocalLayer

TARGET = "target"


@dataclass
class Tracker:
    """One way of holding a tracking connection: what it has invalidated, how it drains."""

    name: str
    drain: Callable[[], Awaitable[None]]
    close: Callable[[], Awaitable[None]]
    client_id: int = 0
    # For the ways with no event loop in the drain: the drain itself, timed without an await.
    sync_drain: Callable[[], None] | None = None
    seen: set[bytes] = field(default_factory=set)
    lost: bool = False

    def invalidated(self, key: str) -> bool:
        return key.encode() in self.seen


def _address(url: str) -> tuple[str, int, int]:
    parsed = urlparse(url)
    db = int((parsed.path or "/0").lstrip("/") or "0")
    return parsed.hostname or "localhost", parsed.port or 6379, db


async def own_socket(url: str, prefix: str) -> Tracker:
    # No heartbeat loop here: a bound longer than the run keeps the layer answering.
    layer = LocalLayer(url, prefix, timeout_s=0.5, max_lag_s=3600)
    assert layer.connect()
    target = f"{prefix}:{TARGET}"
    layer.put(target, Entry(1, 2**62, None, b"v1"), layer.sequence)
    assert layer.get(target) is not None

    async def drain() -> None:
        layer.drain()
        if not layer.active:
            tracker.lost = True
        elif layer.get(target) is None:
            tracker.seen.add(target.encode())

    async def close() -> None:
        layer.close()

    tracker = Tracker("own socket", drain, close, await _newest_tracking_client(url))
    tracker.sync_drain = layer.drain
    return tracker


def _record(tracker: Tracker, push: list[Any]) -> None:
    keys = push[1] if len(push) > 1 else None
    if keys is None:
        tracker.seen.add(b"*")
    else:
        tracker.seen.update(keys)


async def redispy_asyncio(url: str, prefix: str) -> Tracker:
    host, port, db = _address(url)
    # redis-py's connection methods are untyped, and the parser hook is not on its types.
    conn: Any = redis.asyncio.Connection(
        host=host, port=port, db=db, protocol=3, socket_timeout=0.5
    )
    await conn.connect()

    async def on_invalidate(push: list[Any]) -> None:
        _record(tracker, push)

    conn._parser.set_invalidation_push_handler(on_invalidate)  # not public API
    await conn.send_command("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", f"{prefix}:")
    assert await conn.read_response() in (b"OK", "OK")
    await conn.send_command("CLIENT", "ID")
    client_id = int(await conn.read_response())

    async def drain() -> None:
        try:
            while await conn.can_read():
                await conn.read_response(push_request=True)
        except redis.ConnectionError:
            tracker.lost = True

    async def close() -> None:
        await conn.disconnect()

    tracker = Tracker("redis-py asyncio", drain, close, client_id)
    return tracker


async def redispy_sync(url: str, prefix: str) -> Tracker:
    host, port, db = _address(url)
    connection_class: Any = redis.Connection
    conn = connection_class(host=host, port=port, db=db, protocol=3, socket_timeout=0.5)
    conn.connect()

    def on_invalidate(push: list[Any]) -> None:
        _record(tracker, push)

    conn._parser.set_invalidation_push_handler(on_invalidate)  # not public API
    conn.send_command("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", f"{prefix}:")
    assert conn.read_response() in (b"OK", "OK")
    conn.send_command("CLIENT", "ID")
    client_id = int(conn.read_response())

    def drain_now() -> None:
        try:
            while conn.can_read(0):
                conn.read_response(push_request=True)
        except redis.ConnectionError:
            tracker.lost = True

    async def drain() -> None:
        drain_now()

    async def close() -> None:
        conn.disconnect()

    tracker = Tracker("redis-py sync", drain, close, client_id, drain_now)
    return tracker


async def redispy_pubsub(url: str, prefix: str) -> Tracker:
    client = redis.asyncio.Redis.from_url(url, protocol=3, socket_timeout=0.5)

    async def on_push(push: list[Any]) -> None:
        _record(tracker, push)

    pubsub = client.pubsub(push_handler_func=on_push)
    await pubsub.execute_command("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", f"{prefix}:")
    assert await pubsub.parse_response(block=False, timeout=1) in (b"OK", "OK")
    await pubsub.execute_command("CLIENT", "ID")
    client_id = int(await pubsub.parse_response(block=False, timeout=1))

    async def drain() -> None:
        try:
            while await pubsub.get_message(timeout=0) is not None:
                pass
        except redis.ConnectionError:
            tracker.lost = True

    async def close() -> None:
        await pubsub.aclose()
        await client.aclose()

    tracker = Tracker("redis-py pubsub", drain, close, client_id)
    return tracker


async def redispy_redirect(url: str, prefix: str) -> Tracker:
    """All public API: a RESP2 `PubSub` on `__redis__:invalidate`, and tracking turned on by
    another connection with `REDIRECT <the pubsub's id>`."""
    host, port, db = _address(url)
    client = redis.asyncio.Redis.from_url(url, protocol=2, socket_timeout=0.5)
    pubsub = client.pubsub()
    await pubsub.execute_command("CLIENT", "ID")
    target_id = int(await pubsub.parse_response(block=False, timeout=1))
    await pubsub.subscribe("__redis__:invalidate")
    assert await pubsub.get_message(timeout=1) is not None  # the subscribe confirmation
    issuer: Any = redis.asyncio.Connection(host=host, port=port, db=db, socket_timeout=0.5)
    await issuer.connect()
    await issuer.send_command(
        "CLIENT", "TRACKING", "ON", "REDIRECT", target_id, "BCAST", "PREFIX", f"{prefix}:"
    )
    assert await issuer.read_response() in (b"OK", "OK")
    await issuer.send_command("CLIENT", "ID")
    issuer_id = int(await issuer.read_response())

    async def drain() -> None:
        try:
            while (message := await pubsub.get_message(timeout=0)) is not None:
                if message["type"] == "message":
                    data = message["data"]
                    _record(tracker, [b"invalidate", data if isinstance(data, list) else None])
        except redis.ConnectionError:
            tracker.lost = True

    async def close() -> None:
        await issuer.disconnect()
        await pubsub.aclose()
        await client.aclose()

    # `killed` ends the issuing connection: that is what stops the invalidations.
    tracker = Tracker("redis-py redirect", drain, close, issuer_id)
    return tracker


async def _newest_tracking_client(url: str) -> int:
    """The id of the newest client with tracking on (the one just opened)."""
    client = redis.asyncio.Redis.from_url(url)
    try:
        clients = await client.client_list()
        tracking = [int(c["id"]) for c in clients if "t" in c.get("flags", "")]
        return max(tracking)
    finally:
        await client.aclose()


WAYS: dict[str, Callable[[str, str], Awaitable[Tracker]]] = {
    "own socket": own_socket,
    "redis-py asyncio": redispy_asyncio,
    "redis-py sync": redispy_sync,
    "redis-py pubsub": redispy_pubsub,
    "redis-py redirect": redispy_redirect,
}


def blocking_set(url: str, key: str) -> None:
    """SET from a plain blocking socket: answered before we return, no event loop involved."""
    host, port, db = _address(url)
    with socket.create_connection((host, port), timeout=2) as sock:
        parts = [b"SELECT", str(db).encode()]
        sock.sendall(b"".join([b"*2\r\n"] + [b"$%d\r\n%s\r\n" % (len(p), p) for p in parts]))
        parts = [b"SET", key.encode(), b"v2"]
        sock.sendall(b"".join([b"*3\r\n"] + [b"$%d\r\n%s\r\n" % (len(p), p) for p in parts]))
        answer = b""
        while answer.count(b"\r\n") < 2:
            answer += sock.recv(1024)
    assert answer == b"+OK\r\n+OK\r\n", answer


async def check(url: str, way: str, backlog: int) -> dict[str, bool]:
    results: dict[str, bool] = {}
    writer = redis.asyncio.Redis.from_url(url)
    try:
        for name in ("awaited write", "unseen write", "backlog", "killed"):
            prefix = f"drain{uuid.uuid4().hex[:8]}"
            target = f"{prefix}:{TARGET}"
            tracker = await WAYS[way](url, prefix)
            try:
                if name == "awaited write":
                    await writer.set(target, b"v2")
                elif name == "unseen write":
                    blocking_set(url, target)
                elif name == "backlog":
                    pipe = writer.pipeline(transaction=False)
                    for number in range(backlog):
                        pipe.set(f"{prefix}:filler-{number:08d}-{'x' * 32}", b"v")
                    await pipe.execute()
                    await asyncio.sleep(0.2)  # the event loop reads what it will
                    await writer.set(target, b"v2")
                else:
                    await writer.client_kill_filter(_id=str(tracker.client_id))
                    await asyncio.sleep(0.2)
                await tracker.drain()
                if name == "killed":
                    results[name] = tracker.lost
                else:
                    results[name] = tracker.invalidated(target) or b"*" in tracker.seen
            finally:
                await tracker.close()
    finally:
        await writer.aclose()
    return results


async def cost(url: str, way: str, lookups: int) -> float:
    """µs per drain with nothing pending, best of 3."""
    prefix = f"drain{uuid.uuid4().hex[:8]}"
    tracker = await WAYS[way](url, prefix)
    best = float("inf")
    try:
        sync_drain = tracker.sync_drain
        for _ in range(3):
            started = time.perf_counter()
            if sync_drain is not None:
                for _ in range(lookups):
                    sync_drain()
            else:
                drain = tracker.drain
                for _ in range(lookups):
                    await drain()
            best = min(best, (time.perf_counter() - started) / lookups * 1e6)
    finally:
        await tracker.close()
    return best


async def own_lookup_cost(url: str, lookups: int) -> float:
    """µs per `LocalLayer.get` (drain + dict lookup), as the service calls it."""
    layer = LocalLayer(url, f"drain{uuid.uuid4().hex[:8]}", timeout_s=0.5, max_lag_s=3600)
    assert layer.connect()
    best = float("inf")
    try:
        get = layer.get
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(lookups):
                get("absent")
            best = min(best, (time.perf_counter() - started) / lookups * 1e6)
    finally:
        layer.close()
    return best


async def measure(url: str, lookups: int, backlog: int) -> None:
    print(
        f"Tracking drain per lookup (redis-py {package_version('redis')}, "
        f"hiredis {'yes' if redis.utils.HIREDIS_AVAILABLE else 'no'}, {lookups:,} lookups)"
    )
    print()
    names = ("awaited write", "unseen write", "backlog", "killed")
    header = "".join(f"{n:>15}" for n in names)
    print(f"  {'way':<18}{'µs/drain':>10}{header}")
    for way in WAYS:
        micros = await cost(url, way, lookups)
        results = await check(url, way, backlog)
        marks = "".join(f"{'yes' if results[n] else 'NO':>15}" for n in names)
        print(f"  {way:<18}{micros:>10.2f}{marks}")
    print()
    print(f"  own socket, whole LocalLayer.get: {await own_lookup_cost(url, lookups):.2f} µs")


def main(arguments: argparse.Namespace) -> None:
    with redis_server(arguments.redis_url) as url:
        asyncio.run(measure(url, arguments.lookups, arguments.backlog))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--lookups", type=int, default=20_000)
    parser.add_argument("--backlog", type=int, default=5_000)
    parser.add_argument("--redis-url", help="use this Redis instead of starting redis-server")
    args = parser.parse_args()
    if min(args.lookups, args.backlog) < 1:
        parser.error("every count must be >= 1")
    main(args)
