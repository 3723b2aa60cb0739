"""Two real `snipix serve` replicas and one real redis-server, with Redis cut off from the
replica that writes only: replica one reaches Redis through a TCP proxy this test runs,
replica two reaches it directly.

A write acknowledged by replica one while its proxy is cut (hung: bytes are held, nothing
closes; or refused: every connection closed, the port shut) must not be answered old by
replica two for longer than SNIPIX_CACHE_LOCAL_MAX_LAG_MS (its default, 1 s): replica two
still hears from Redis, so its heartbeat sees nothing wrong, and only the invalidation
journal in the database tells it about the write.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.cache.test_hung_redis_replicas import (
    USER,
    Watched,
    project_name,
    replica,
    watch,
)
from tests.support import RedisServer, loopback_client, wait_until

pytestmark = pytest.mark.process


class RedisProxy:
    """Forwards bytes between a local port and redis-server, until cut.

    `cut("hang")`: every byte received from then on is held, in both directions, and new
    connections are accepted but get nothing (a partition that drops packets). `cut("refuse")`:
    every connection is closed and the port shut (a partition that rejects).
    """

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self._target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                thread = threading.Thread(target=self._pump, args=(source, target), daemon=True)
                thread.start()
                self._threads.append(thread)

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        source.settimeout(0.2)
        try:
            while not self._closed.is_set():
                try:
                    data = source.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    return
                # Received after (or while) the cut: held until forwarding resumes.
                while not self._flowing.wait(0.2):
                    if self._closed.is_set():
                        return
                target.sendall(data)
        except OSError:
            return
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.close()

    def cut(self, how: str) -> None:
        self._flowing.clear()
        if how == "refuse":
            self.close()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()
        for thread in self._threads:
            thread.join(timeout=5)


@pytest.mark.parametrize("how", ["hang", "refuse"])
def test_redis_cut_off_from_the_writer_only_never_lets_another_replica_answer_old(
    tmp_path: Path, mongodb_uri: str, database_name: str, how: str
) -> None:
    redis = RedisServer.find().start()
    proxy = RedisProxy(redis.port)
    try:
        with ExitStack() as stack, loopback_client(timeout=30) as http:
            one = stack.enter_context(
                replica(tmp_path, "one", mongodb_uri, database_name, proxy.url)
            )
            two = stack.enter_context(
                replica(tmp_path, "two", mongodb_uri, database_name, redis.url)
            )
            created = http.post(f"{one}/api/v1/projects", json={"name": "before"}, headers=USER)
            assert created.status_code == 201, created.text
            project_id = created.json()["id"]
            # Replica two holds the project (the second read of it is a hit).
            wait_until(
                lambda: project_name(http, two, project_id) == ("before", "hit"),
                timeout_s=10,
                what="replica two to answer the project from its cache",
            )

            proxy.cut(how)
            renamed = http.patch(
                f"{one}/api/v1/projects/{project_id}",
                json={"name": "after"},
                headers={**USER, "If-Match": f'"{created.json()["version"]}"'},
            )
            assert renamed.status_code == 200, renamed.text
            renamed_at = time.monotonic()

            # Old answers stop within the bound (a journal poll and a Redis round trip), and
            # the new name is what replica two answers from then on.
            watch(
                Watched(
                    "project",
                    lambda: project_name(http, two, project_id),
                    lambda name: name == "after",
                    renamed_at,
                )
            )
    finally:
        proxy.close()
        redis.stop()
