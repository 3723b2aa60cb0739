"""`snipix serve` against unauthenticated connection abuse: idle and slow connections are
closed, a huge request head is a 431, and a flood of sockets past the process's file
limit does not lock out `/health/live`. Each attack runs against a real server process."""

from __future__ import annotations

import contextlib
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from tests.databases import new_name
from tests.support import SnipixProcess, clean_env, free_port, http_status, wait_until

pytestmark = pytest.mark.process

HEADER_TIMEOUT_S = 1.0
KEEPALIVE_S = 1
BODY_WINDOW_S = 1.0
MIN_BODY_RATE = 2_000
MAX_HEADER_BYTES = 16 * 1024
# A file limit like a default `ulimit -n`, and more idle sockets than it allows.
SERVER_FILE_LIMIT = 1_024
FLOOD = 1_100
# Closing is timer-driven: the deadline leaves room for a busy 2-core machine.
MARGIN_S = 10.0


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    mongodb_uri: str,
    mongo: MongoClient[dict[str, Any]],
) -> Iterator[tuple[int, int]]:
    """A `snipix serve` with short limits and a 1,024-file limit: (port, pid). One for the
    module: each attack leaves it serving (the tests check that too), and a start costs
    seconds."""
    tmp_path = tmp_path_factory.mktemp("connections")
    database_name = new_name()
    port = free_port()
    process = SnipixProcess(
        ["serve", "--port", str(port)],
        env=clean_env(
            MONGODB_URI=mongodb_uri,
            MONGODB_DATABASE=database_name,
            SNIPIX_DATA_DIR=str(tmp_path / "data"),
            SNIPIX_RETENTION_INTERVAL_S="0",
            SNIPIX_HTTP_HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S),
            SNIPIX_HTTP_KEEPALIVE_S=str(KEEPALIVE_S),
            SNIPIX_HTTP_BODY_WINDOW_S=str(BODY_WINDOW_S),
            SNIPIX_HTTP_MIN_BODY_RATE=str(MIN_BODY_RATE),
            SNIPIX_HTTP_MAX_HEADER_BYTES=str(MAX_HEADER_BYTES),
        ),
        cwd=tmp_path,
        log_path=tmp_path / "serve.log",
    ).start()
    # Before it serves anything: the limit it runs under, as `ulimit -n 1024` would set.
    resource.prlimit(process.pid, resource.RLIMIT_NOFILE, (SERVER_FILE_LIMIT, SERVER_FILE_LIMIT))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: http_status(f"{base}/health/live") == 200,
            timeout_s=60,
            what="snipix serve to answer /health/live",
        )
        yield port, process.pid
    finally:
        process.stop()
        process.kill()
        mongo.drop_database(database_name)
        print(f"--- snipix serve log (tail) ---\n{process.output()[-4000:]}")


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setblocking(False)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed the connection (EOF or reset); False while it is open."""
    try:
        while chunk := sock.recv(65536):
            del chunk  # a response before the close (a 431) is read and dropped
        return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def wait_closed(socks: list[socket.socket], what: str, timeout_s: float) -> float:
    open_ = list(socks)

    def all_closed() -> bool:
        open_[:] = [s for s in open_ if not closed_by_server(s)]
        return not open_

    return wait_until(all_closed, timeout_s=timeout_s, what=what)


def raise_own_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_flood_of_idle_sockets_past_the_file_limit_leaves_health_answering(
    server: tuple[int, int],
) -> None:
    port, _ = server
    raise_own_file_limit(FLOOD + 200)
    flood: list[socket.socket] = []
    try:
        for _ in range(FLOOD):
            flood.append(connect(port))
        # More sockets than the server may hold files: the newest evict the oldest idle.
        assert http_status(f"http://127.0.0.1:{port}/health/live", timeout_s=10) == 200
        took = wait_closed(flood, "every idle socket to be closed", HEADER_TIMEOUT_S + MARGIN_S)
        assert took >= 0
        assert http_status(f"http://127.0.0.1:{port}/health/live") == 200
    finally:
        for sock in flood:
            sock.close()


def test_a_request_head_sent_slowly_is_cut_off(server: tuple[int, int]) -> None:
    port, _ = server
    sock = connect(port)
    try:
        started = time.monotonic()
        sock.send(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
        for _ in range(3):  # a byte now and then never completes the head
            sock.send(b"X")
        wait_closed([sock], "the slow head's connection to close", HEADER_TIMEOUT_S + MARGIN_S)
        assert time.monotonic() - started >= HEADER_TIMEOUT_S * 0.9
    finally:
        sock.close()


def test_an_oversized_head_is_431_and_costs_no_memory(server: tuple[int, int]) -> None:
    port, pid = server
    before = rss_kib(pid)
    for _ in range(10):  # ten unterminated 2 MB heads
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: ")
            answer = b""
            with contextlib.suppress(OSError):  # the server closes mid-upload
                for _ in range(64):
                    sock.sendall(b"a" * 32_768)
            with contextlib.suppress(OSError):
                while chunk := sock.recv(65536):
                    answer += chunk
            assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    grown_kib = rss_kib(pid) - before
    assert grown_kib < 20 * 1024, f"the server grew by {grown_kib} KiB"
    assert http_status(f"http://127.0.0.1:{port}/health/live") == 200


def test_a_trickling_body_is_cut_off_and_a_normal_one_is_served(
    server: tuple[int, int],
) -> None:
    port, _ = server
    sock = connect(port)
    try:
        sock.send(
            b"POST /api/v1/projects HTTP/1.1\r\nHost: x\r\nX-User-Id: u1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
        )
        started = time.monotonic()

        def cut_off() -> bool:
            with contextlib.suppress(OSError):
                sock.send(b" ")  # far below the minimum rate
            return closed_by_server(sock)

        wait_until(cut_off, timeout_s=BODY_WINDOW_S + MARGIN_S, interval_s=0.2, what="cut-off")
        assert time.monotonic() - started >= BODY_WINDOW_S * 0.9
    finally:
        sock.close()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        body = b'{"name": "Served"}'
        sock.sendall(
            b"POST /api/v1/projects HTTP/1.1\r\nHost: x\r\nX-User-Id: u1\r\n"
            b"Content-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        assert sock.recv(65536).startswith(b"HTTP/1.1 201 ")


def test_an_idle_keep_alive_connection_is_closed(server: tuple[int, int]) -> None:
    port, _ = server
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        sock.setblocking(False)
        wait_closed([sock], "the idle keep-alive connection to close", KEEPALIVE_S + MARGIN_S)
    finally:
        sock.close()
